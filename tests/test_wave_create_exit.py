"""A wave's create exits 1 when the policy refused one of its members
(README "Exit codes": `1` when it was refused or failed on one of them).
Until 2026-12-06 `checkpoint create SQL01 APP01 -r x --yes` said "1 is
refused (SQL01)" and exited 0, so `checkpoint create --group web-tier --yes
&& patch` patched a VM that had no checkpoint. Members taken, or left
waiting (for an approver, for their change window), still exit 0."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_support import invoke

# SQL01 is an availability group replica: the shipped policy refuses it.
REFUSED_WAVE = ("checkpoint", "create", "SQL01", "APP01", "-r", "KB5044284", "--yes")


def _refusal_said(stderr: str) -> None:
    assert "Traceback" not in stderr
    assert (
        "BAT-0001: 1 VM refused (SQL01): it has no checkpoint from this wave; "
        "`checkpoint-bot policy explain VM create` says why" in stderr
    )


def test_a_member_refused_in_the_preview_makes_the_create_exit_1(tmp_path: Path) -> None:
    done = invoke(tmp_path, *REFUSED_WAVE)
    assert done.returncode == 1, done.stderr
    # The others were taken all the same, and the refused one is named.
    assert done.stdout.startswith("2 VMs: 1 can be checkpointed, 1 is refused (SQL01)\n")
    assert "BAT-0001: active — 1 of 1 done, 1 refused" in done.stdout
    _refusal_said(done.stderr)


@pytest.mark.parametrize("more", [("--json",), ("--no-wait",), ("--json", "--no-wait")])
def test_json_and_no_wait_exit_1_too(tmp_path: Path, more: tuple[str, ...]) -> None:
    done = invoke(tmp_path, *REFUSED_WAVE, *more)
    assert done.returncode == 1, done.stderr
    _refusal_said(done.stderr)
    if "--json" in more:
        # stdout stays one document: the wave, its refused member in it.
        data = json.loads(done.stdout)
        assert data["preview"]["refused"] == 1
        assert ("SQL01", "denied") in [(m["vm"], m["state"]) for m in data["members"]]


def test_a_wave_with_nothing_refused_still_exits_0(tmp_path: Path) -> None:
    done = invoke(tmp_path, "checkpoint", "create", "APP01", "WEB01", "-r", "x", "--yes")
    assert done.returncode == 0, done.stderr
    assert "refused" not in done.stdout + done.stderr


def test_a_member_waiting_for_its_window_still_exits_0(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(
        "rules:\n  change_window: {effect: schedule}\nwindows:\n"
        "  - name: leap-night\n    cron: '0 22 29 2 *'\n    duration: 6h\n"
        "    timezone: UTC\n    scope: {names: [APP01]}\n",
        encoding="utf-8",
    )
    inventory = Path(__file__).parents[1] / "deploy/examples/demo-inventory.yaml"
    (tmp_path / "bot.yaml").write_text(
        f"inventory: {inventory}\npolicy: policy.yaml\nhyperv: {{backend: simulator}}\n",
        encoding="utf-8",
    )
    assert invoke(tmp_path, "-c", "bot.yaml", "db", "upgrade").returncode == 0
    done = invoke(
        tmp_path, "-c", "bot.yaml", "checkpoint", "create", "APP01", "WEB01", "-r", "x", "--yes"
    )
    assert done.returncode == 0, done.stderr
    assert "not waiting for APP01" in done.stderr


def test_a_wave_of_refused_vms_records_nothing_and_exits_1(tmp_path: Path) -> None:
    """Refused (exit 1), as README's exit codes say; it was Click's usage
    error (exit 2), which tells a script its input was wrong."""
    done = invoke(tmp_path, "checkpoint", "create", "SQL01", "CORP-DC01", "-r", "x", "--yes")
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "checkpoint-bot: error: every VM of this selection is refused, so nothing was "
        "recorded; `checkpoint-bot policy explain VM create` says why"
    )
    assert "No batches yet" in invoke(tmp_path, "batch", "list").stdout
