"""A wave on the CLI with a member that waits for its change window
(2026-12-05): `checkpoint create APP01 STG-WEB01 --yes` and `batch approve`
waited for every member's job, the scheduled one's too, so the command sat
until its window opened (hours, days); the preview said only "can be
checkpointed", and `batch show` never said when the scheduled member runs.

The console script runs in a process of its own on simulated hosts, with a
time limit: a command that waits for the window fails the test instead of
hanging it."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.cli_support import BOT, invoke

# Leap nights only: closed whenever this test runs (bar one night in four
# years), so APP01 always waits for it.
WINDOW = """
windows:
  - name: leap-night
    cron: "0 22 29 2 *"
    duration: 6h
    timezone: UTC
    scope: {names: [APP01]}
rules:
  change_window: {effect: schedule}
"""
# The same, and STG-WEB01's checkpoint needs an approver: the wave waits for one.
APPROVAL = """
  approvals:
    overrides:
      - scope: {names: [STG-WEB01]}
        params: {count: 1, actions: [create]}
"""
ALICE = {"CHECKPOINT_BOT_USER": "alice", "CHECKPOINT_BOT_SOCKET": "off"}
BOB = {"CHECKPOINT_BOT_USER": "bob", "CHECKPOINT_BOT_SOCKET": "off"}
# Far more than the members taken now need on simulated hosts.
LIMIT = 60


def _next_leap_night(now: datetime) -> datetime:
    year = now.year
    while True:
        if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
            opens = datetime(year, 2, 29, 22, 0, tzinfo=UTC)
            if opens > now:
                return opens
        year += 1


def _deployment(tmp_path: Path, policy: str) -> Path:
    (tmp_path / "policy.yaml").write_text(policy, encoding="utf-8")
    inventory = Path(__file__).parents[1] / "deploy/examples/demo-inventory.yaml"
    (tmp_path / "bot.yaml").write_text(
        f"inventory: {inventory}\npolicy: policy.yaml\nhyperv: {{backend: simulator}}\n",
        encoding="utf-8",
    )
    assert invoke(tmp_path, "-c", "bot.yaml", "db", "upgrade").returncode == 0
    return tmp_path


def _own_env() -> dict[str, str]:
    """This environment without the bot's own variables (as cli_support.run)."""
    skip = ("CHECKPOINT_BOT", "DATABASE_URL")
    return {k: v for k, v in os.environ.items() if not k.startswith(skip)}


def _cli(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The console script, failing the test if it is still running after LIMIT s."""
    try:
        return subprocess.run(
            [str(BOT), "-c", "bot.yaml", *args],
            cwd=cwd,
            env={**_own_env(), **env},
            capture_output=True,
            text=True,
            timeout=LIMIT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"`checkpoint-bot {' '.join(args)}` still waited after {LIMIT}s: {exc.stderr!r}"
        )


def test_a_wave_returns_once_what_runs_now_ran_and_says_when_the_rest_runs(
    tmp_path: Path,
) -> None:
    deployment = _deployment(tmp_path, WINDOW)
    opens = _next_leap_night(datetime.now(UTC))
    when = f"{opens:%Y-%m-%d %H:%M} UTC"
    done = _cli(deployment, ALICE, "checkpoint", "create", "APP01", "STG-WEB01", "-r", "w", "--yes")
    assert done.returncode == 0, done.stderr
    preview = done.stdout.splitlines()
    # The preview says who waits for which window, and until when.
    assert preview[0] == (
        "2 VMs: 2 can be checkpointed, 1 of them when its change window opens (APP01)"
    )
    assert f"APP01        on HV01   can be checkpointed, waits for leap-night, opens {when}" in (
        done.stdout
    )
    assert "STG-WEB01    on HV03   can be checkpointed\n" in done.stdout
    # It waited for STG-WEB01 alone, and said so.
    assert "BAT-0001: 1 checkpoint is being taken…" in done.stderr
    assert f"BAT-0001: not waiting for APP01 (runs {when}, its change window)" in done.stderr
    assert "BAT-0001: scheduled — 1 of 2 done" in done.stdout
    assert f"CHG-0001  APP01        HV01   scheduled, runs {when} (its change window)" in (
        done.stdout
    )
    assert "CHG-0002  STG-WEB01    HV03   active, production taken" in done.stdout

    shown = invoke(deployment, "-c", "bot.yaml", "batch", "show", "BAT-1", env=ALICE)
    assert f"CHG-0001  APP01        HV01   scheduled, runs {when} (its change window)" in (
        shown.stdout
    )
    data = json.loads(
        invoke(deployment, "-c", "bot.yaml", "batch", "show", "BAT-1", "--json", env=ALICE).stdout
    )
    assert [(m["vm"], m["state"], m["run_at"]) for m in data["members"]] == [
        ("APP01", "scheduled", opens.isoformat()),
        ("STG-WEB01", "active", None),
    ]


def test_batch_approve_returns_once_what_runs_now_ran(tmp_path: Path) -> None:
    deployment = _deployment(tmp_path, WINDOW + APPROVAL)
    opens = _next_leap_night(datetime.now(UTC))
    when = f"{opens:%Y-%m-%d %H:%M} UTC"
    asked = _cli(
        deployment, ALICE, "checkpoint", "create", "APP01", "STG-WEB01", "-r", "w", "--yes"
    )
    assert asked.returncode == 0, asked.stderr
    assert (
        f"APP01        on HV01   can be checkpointed, waits for the wave's approval, then for "
        f"leap-night, opens {when}"
    ) in asked.stdout
    assert "BAT-0001: awaiting approval — 0 of 2 done" in asked.stdout

    approved = _cli(deployment, BOB, "batch", "approve", "BAT-1")
    assert approved.returncode == 0, approved.stderr
    assert "BAT-0001: the approved work of 1 VM is running…" in approved.stderr
    assert "BAT-0001: scheduled — 1 of 2 done" in approved.stdout
    assert f"APP01        HV01   scheduled, runs {when} (its change window)" in approved.stdout
    assert "STG-WEB01    HV03   active, production taken" in approved.stdout
