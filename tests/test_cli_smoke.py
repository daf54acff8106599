"""One smoke test per command group with the installed `checkpoint-bot`
console script, in a process of its own (demo mode, a fresh directory):
the entry point, its lazy loading and its exit codes are the real ones.
What each command does is tested in this process (tests/cli_support.py);
data a smoke test needs is made that way too.

Groups proven as processes elsewhere: `worker` (tests/test_cli.py, stopped
by SIGTERM), `sweep` (tests/test_sweep.py), `serve` and `emulator`
(tests/test_multiprocess.py), `demo` (tests/test_playground_*.py), and
`--help`/`--version` (tests/test_cli_start.py)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli_support import invoke, one_line_error, run

DEMO = "DEMO MODE"


def _one_change(cwd: Path) -> None:
    made = invoke(cwd, "checkpoint", "create", "APP01", "-r", "deploy 4.2")
    assert made.returncode == 0, made.stderr


def test_checkpoint(tmp_path: Path) -> None:
    created = run(tmp_path, "checkpoint", "create", "WEB01", "--reason", "smoke")
    assert created.returncode == 0, created.stderr
    assert DEMO in created.stderr and "CHG-0001: active" in created.stdout
    assert (tmp_path / "var" / "checkpoint-bot.db").exists()


def test_change(tmp_path: Path) -> None:
    _one_change(tmp_path)
    shown = run(tmp_path, "change", "show", "CHG-1", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["state"] == "active"
    missing = run(tmp_path, "change", "show", "CHG-77")
    assert missing.returncode == 1
    assert one_line_error(missing) == (
        "checkpoint-bot: error: no change CHG-0077: the newest is CHG-0001"
    )


def test_batch(tmp_path: Path) -> None:
    listed = run(tmp_path, "batch", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == {"batches": []}


def test_db(tmp_path: Path) -> None:
    upgraded = run(tmp_path, "db", "upgrade", "--json")
    assert upgraded.returncode == 0, upgraded.stderr
    assert json.loads(upgraded.stdout)["changed"] is True
    unknown = run(tmp_path, "db", "downgrade", "0099", "--yes")
    assert unknown.returncode == 2
    assert "no schema revision '0099'" in one_line_error(unknown)


def test_audit(tmp_path: Path) -> None:
    _one_change(tmp_path)
    exported = run(tmp_path, "audit", "export", "--format", "jsonl")
    assert exported.returncode == 0, exported.stderr
    events = [json.loads(line) for line in exported.stdout.splitlines()]
    assert events[0]["change"] == "CHG-0001" and events[0]["actor"] == "cli:tester"


def test_inventory(tmp_path: Path) -> None:
    shown = run(tmp_path, "inventory", "show")
    assert shown.returncode == 0, shown.stderr
    assert "CORP-DC01" in shown.stdout and "roles: domain_controller" in shown.stdout


def test_policy(tmp_path: Path) -> None:
    explained = run(tmp_path, "policy", "explain", "CORP-DC01", "--json")
    assert explained.returncode == 0, explained.stderr
    assert json.loads(explained.stdout)["verdict"] == "deny"


def test_outbox(tmp_path: Path) -> None:
    _one_change(tmp_path)
    shown = run(tmp_path, "outbox", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["undelivered_jobs"] == []


def test_windows(tmp_path: Path) -> None:
    shown = run(tmp_path, "windows")
    assert shown.returncode == 0, shown.stderr
    assert "no change windows" in shown.stdout


def test_reconcile(tmp_path: Path) -> None:
    looked = run(tmp_path, "reconcile", "--json")
    assert looked.returncode == 0, looked.stderr
    assert json.loads(looked.stdout) == {"looked_at": [], "handed_over": []}
