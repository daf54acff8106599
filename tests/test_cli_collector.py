"""The console script puts the cyclic garbage collector off while a command
works, for a few seconds at most (bot.cli.collector). Each case runs in a
child interpreter, so this process's collector is never touched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bot.cli.collector import START_LIMIT_SECONDS
from tests.cli_support import REPO, probe, run_script

PROBE = """
import gc, json, sys, time
from bot.cli.collector import DeferredCollection
from bot.cli.main import main
limit = float(sys.argv[1])
collector = DeferredCollection(limit=limit)
collector.start()  # as bot.cli.main `run` does
code = main(sys.argv[2:])
after = {"code": code, "enabled": gc.isenabled(), "off": collector.off}
deadline = time.monotonic() + limit + 10
while not gc.isenabled() and time.monotonic() < deadline:
    time.sleep(0.05)
later = {"enabled": gc.isenabled(), "off": collector.off, "frozen": gc.get_freeze_count()}
sys.stdout.flush()
print(json.dumps({"after": after, "later": later}), file=sys.stderr)
"""


def test_a_command_runs_without_the_collector_then_gets_it_back(
    tmp_path: Path,
) -> None:
    report = probe(PROBE, "5.0", "inventory", "show", "--json", cwd=tmp_path)
    assert report["after"] == {"code": 0, "enabled": False, "off": True}
    # After the limit a timer froze what the process made and turned it on.
    assert report["later"]["enabled"] is True
    assert report["later"]["off"] is False
    assert report["later"]["frozen"] > 10_000


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
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=30,
        check=True,
    )
    assert json.loads(done.stdout) == [True, True, True]


AT_EXIT = """
import atexit, gc, sys, time
started = time.monotonic()
atexit.register(
    lambda: print(
        "collector on at exit:", gc.isenabled(), round(time.monotonic() - started, 3),
        file=sys.stderr,
    )
)
from bot.cli.main import run
run()
"""


def test_the_console_script_runs_a_short_command_without_the_collector(tmp_path: Path) -> None:
    done = run_script(AT_EXIT, "inventory", "show", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)  # the command's answer, whole
    words = done.stderr.strip().splitlines()[-1].split()
    assert words[:4] == ["collector", "on", "at", "exit:"], done.stderr
    enabled, took = words[4] == "True", float(words[5])
    # Off for the whole of a short command; one that outlived the limit (a
    # CI machine loaded by other suites: seen at 13 min of pytest) has it
    # back, as it should, and proves nothing about a short one.
    if took < START_LIMIT_SECONDS - 0.5:
        assert not enabled, done.stderr
    elif took > START_LIMIT_SECONDS + 0.5:
        assert enabled, done.stderr
