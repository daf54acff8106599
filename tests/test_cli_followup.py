"""The CLI commands that follow changes to their end: `windows`,
`reconcile` and `change resolve`, run as the installed console script."""

from __future__ import annotations

import json
from pathlib import Path

from bot.changes import Command
from bot.changes.record import get_change, transition
from bot.context import build_context
from bot.service.reconcile import Reconciler
from bot.store.db import session_scope
from tests.cli_support import invoke, one_line_error
from tests.helpers import settings_for

WINDOW_POLICY = """
rules:
  change_window: {effect: schedule}
windows:
  # Leap days only: closed whenever this test runs (bar one night in four years).
  - name: leap-night
    cron: "0 22 29 2 *"
    duration: 6h
    timezone: Europe/Berlin
    scope: {tags: {tier: web}}
"""


def _config(tmp_path: Path) -> Path:
    (tmp_path / "policy.yaml").write_text(WINDOW_POLICY, encoding="utf-8")
    inventory = Path(__file__).parents[1] / "deploy/examples/demo-inventory.yaml"
    config = tmp_path / "config.yaml"
    config.write_text(
        f"inventory: {inventory}\npolicy: policy.yaml\nhyperv: {{backend: simulator}}\n",
        encoding="utf-8",
    )
    assert invoke(tmp_path, "--config", str(config), "db", "upgrade").returncode == 0
    return config


def test_windows_lists_each_opening_and_what_is_scheduled_for_it(tmp_path: Path) -> None:
    config = _config(tmp_path)
    created = invoke(
        tmp_path, "--config", str(config), "checkpoint", "create", "WEB01", "-r", "KB1", "--no-wait"
    )
    assert created.returncode == 0, created.stderr
    shown = invoke(tmp_path, "--config", str(config), "windows")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("leap-night: opens ")
    assert "-02-29 22:00 Europe/Berlin (cron 0 22 29 2 *, applies to VMs tagged tier=web)" in (
        shown.stdout
    )
    assert "  scheduled: CHG-0001" in shown.stdout
    data = json.loads(invoke(tmp_path, "--config", str(config), "windows", "--json").stdout)
    assert data["windows"][0]["scheduled"] == ["CHG-0001"]
    assert data["windows"][0]["timezone"] == "Europe/Berlin"


def test_no_windows_says_where_they_are_defined(tmp_path: Path) -> None:
    shown = invoke(tmp_path, "windows")
    assert shown.returncode == 0 and "`windows:` in the policy file" in shown.stdout


def test_reconcile_and_resolve_an_interrupted_rollback(tmp_path: Path) -> None:
    created = invoke(tmp_path, "checkpoint", "create", "STG-WEB01", "-r", "upgrade")
    assert created.returncode == 0, created.stderr
    assert json.loads(invoke(tmp_path, "reconcile", "--json").stdout) == {
        "looked_at": [],
        "handed_over": [],
    }
    # A worker died during the restore: the change is interrupted and the
    # host cannot say whether the restore ran.
    ctx = build_context(settings_for(tmp_path), huey_kind="memory")
    try:
        with session_scope(ctx.engine) as s:
            for command in (Command.START_ROLLBACK, Command.INTERRUPT):
                transition(s, get_change(s, 1), command, actor="cli:tester", now=ctx.clock())
    finally:
        ctx.close()
    looked = invoke(tmp_path, "reconcile")
    assert looked.returncode == 0, looked.stderr
    assert "CHG-0001  STG-WEB01    now interrupted" in looked.stdout
    shown = json.loads(invoke(tmp_path, "change", "show", "CHG-0001", "--json").stdout)
    assert shown["events"][-1]["kind"] == "needs_human"

    wrong = invoke(tmp_path, "change", "resolve", "CHG-0001", "merged")
    assert wrong.returncode == 1
    assert "outcomes that can be recorded now: rolled_back, active" in one_line_error(wrong)
    other = invoke(
        tmp_path, "change", "resolve", "CHG-0001", "active", env={"CHECKPOINT_BOT_USER": "eve"}
    )
    assert other.returncode == 1 and "only the requester" in one_line_error(other)
    done = invoke(tmp_path, "change", "resolve", "CHG-0001", "rolled_back")
    assert done.returncode == 0, done.stderr
    assert "rolled_back" in done.stdout or "rolled back" in done.stdout
    bad = invoke(tmp_path, "change", "resolve", "CHG-0001", "sideways")
    assert bad.returncode == 2 and "'sideways' is not one of" in one_line_error(bad)


def test_reconciler_is_idle_on_a_fresh_database(tmp_path: Path) -> None:
    ctx = build_context(settings_for(tmp_path), huey_kind="memory")
    try:
        assert Reconciler(ctx).stuck() == []
    finally:
        ctx.close()


def test_an_enqueue_only_replica_needs_a_queue_others_can_reach(tmp_path: Path) -> None:
    inventory = Path(__file__).parents[1] / "deploy/examples/demo-inventory.yaml"
    config = tmp_path / "config.yaml"
    config.write_text(
        f"inventory: {inventory}\njobs: {{queue: memory}}\nhyperv: {{backend: simulator}}\n",
        encoding="utf-8",
    )
    env = {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "test-secret"}
    refused = invoke(tmp_path, "--config", str(config), "serve", "--http", "--no-worker", env=env)
    assert refused.returncode == 2
    assert "--no-worker needs a queue other processes can reach" in one_line_error(refused)


def test_resolve_without_an_outcome_lists_them_on_one_line(tmp_path: Path) -> None:
    """Click lists a missing choice's values one per line; the CLI's usage
    errors are one line, and the help names every outcome the record takes."""
    from bot.changes import RESOLUTIONS

    missing = invoke(tmp_path, "change", "resolve", "CHG-1")
    assert missing.returncode == 2
    line = one_line_error(missing)
    assert line == (
        "checkpoint-bot: error: Missing argument 'OUTCOME'. Choose from: "
        + ", ".join(sorted(RESOLUTIONS))
        + " (see 'checkpoint-bot change resolve --help')"
    )
    assert missing.stderr.count("\n") == 1
    helped = " ".join(invoke(tmp_path, "change", "resolve", "--help").stdout.split())
    assert "OUTCOME is one of " + ", ".join(sorted(RESOLUTIONS)) + "." in helped
