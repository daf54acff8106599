"""The CLI puts the cyclic garbage collector off while a command works, for a
few seconds at most (bot.cli.collector). Each case runs in a child
interpreter, so this process's collector is never touched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import gc, json, sys, time
from bot.cli.collector import DeferredCollection
from bot.cli.main import main
limit = float(sys.argv[1])
collector = DeferredCollection(limit=limit)
code = main(sys.argv[2:], collector=collector)
after = {"code": code, "enabled": gc.isenabled(), "off": collector.off}
time.sleep(limit + 0.5)
later = {"enabled": gc.isenabled(), "off": collector.off, "frozen": gc.get_freeze_count()}
sys.stdout.flush()
print(json.dumps({"after": after, "later": later}), file=sys.stderr)
"""


def probe(limit: float, *args: str, cwd: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CHECKPOINT_BOT_CONFIG": ""}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(limit), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=60,
        check=False,
    )
    report: dict[str, Any] = json.loads(done.stderr.strip().splitlines()[-1])
    return report


def test_a_command_that_works_runs_without_the_collector_then_gets_it_back(
    tmp_path: Path,
) -> None:
    report = probe(1.0, "inventory", "show", "--json", cwd=tmp_path)
    assert report["after"] == {"code": 0, "enabled": False, "off": True}
    # After the limit a timer froze what the process made and turned it on.
    assert report["later"]["enabled"] is True
    assert report["later"]["off"] is False
    assert report["later"]["frozen"] > 10_000


@pytest.mark.parametrize("args", [("--help",), ("--version",), ("checkpoint", "--help")])
def test_help_never_turns_the_collector_off(args: tuple[str, ...], tmp_path: Path) -> None:
    report = probe(0.1, *args, cwd=tmp_path)
    assert report["after"] == {"code": 0, "enabled": True, "off": False}
    assert report["later"]["frozen"] == 0


START_TWICE = """
import gc, json, time
from bot.cli.collector import DeferredCollection
collector = DeferredCollection(limit=0.1)
gc.disable()
collector.start()  # someone else turned it off: left to them
kept_off = not gc.isenabled() and not collector.off
time.sleep(0.4)
still_off = not gc.isenabled()
gc.enable()
collector.start()  # once only
again = gc.isenabled()
print(json.dumps([kept_off, still_off, again]))
"""


def test_a_collector_someone_else_turned_off_is_theirs_and_start_is_once() -> None:
    done = subprocess.run(
        [sys.executable, "-c", START_TWICE],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=30,
        check=True,
    )
    assert json.loads(done.stdout) == [True, True, True]
