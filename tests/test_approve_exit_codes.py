"""`change approve CHG-n` runs what it approved and waits for it: when that
rollback, checkpoint or merge fails, the command fails too (exit 1, the
last line saying so, `--json` carrying it), as `checkpoint rollback` does
(README: "1 refused or failed"). Seen 2026-12-06: an approved rollback that
failed on the host exited 0, because a failed rollback leaves the change
active, which is not one of the states that end badly.

The hosts are the WinRM emulator over real HTTP on loopback, the failure
the host's own (`Faults.hidden`: the endpoint does not run the cmdlet);
the CLI runs in this process (tests/cli_support.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.devtools.emulator import EmulatedFleet, Faults
from bot.devtools.emulator.pointing import EMULATOR_PASSWORD_ENV
from tests.cli_support import CliResult, emulated_estate, invoke

ENV = {EMULATOR_PASSWORD_ENV: "Passw0rd!", "CHECKPOINT_BOT_SOCKET": "off"}
ALICE = {**ENV, "CHECKPOINT_BOT_USER": "alice"}
BOB = {**ENV, "CHECKPOINT_BOT_USER": "bob"}
# STG-WEB01 (on HV03) needs an approver for all three; WEB01 (prod) for a
# rollback, as shipped.
POLICY = """
rules:
  approvals:
    overrides:
      - scope: {names: [STG-WEB01]}
        params: {count: 1, actions: [create, rollback, merge]}
"""


@pytest.fixture
def estate(tmp_path: Path) -> Iterator[tuple[Path, EmulatedFleet]]:
    (tmp_path / "policy.yaml").write_text(POLICY, encoding="utf-8")
    with emulated_estate(tmp_path, extra="policy: policy.yaml\n", env=ENV) as fleet:
        yield tmp_path, fleet


def _cli(cwd: Path, env: dict[str, str], *args: str) -> CliResult:
    return invoke(cwd, "-c", "bot.yaml", *args, env=env)


def _last_line(result: CliResult) -> str:
    return result.stdout.rstrip().splitlines()[-1]


def _taken(cwd: Path, fleet: EmulatedFleet) -> None:
    """STG-WEB01's checkpoint, asked by alice and approved by bob: CHG-0001."""
    asked = _cli(cwd, ALICE, "checkpoint", "create", "STG-WEB01", "-r", "patch")
    assert asked.returncode == 0 and "WAITING FOR APPROVAL" in asked.stdout, asked.stdout
    approved = _cli(cwd, BOB, "change", "approve", "CHG-1")
    assert approved.returncode == 0, approved.stdout + approved.stderr
    assert "CHG-0001: active" in approved.stdout


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_an_approved_rollback_that_fails_exits_1_and_says_so(
    estate: tuple[Path, EmulatedFleet], as_json: bool
) -> None:
    cwd, fleet = estate
    _taken(cwd, fleet)
    asked = _cli(cwd, ALICE, "checkpoint", "rollback", "CHG-1")
    assert asked.returncode == 0 and "WAITING FOR APPROVAL" in asked.stdout
    fleet.server("HV03").faults = Faults(hidden=frozenset({"Restore-VMSnapshot"}))
    approved = _cli(cwd, BOB, "change", "approve", "CHG-1", *(["--json"] if as_json else []))
    assert approved.returncode == 1, approved.stdout + approved.stderr
    assert "Traceback" not in approved.stderr
    if as_json:
        body = json.loads(approved.stdout)
        assert body["approval"]["state"] == "approved"
        assert body["job_succeeded"] is False
        assert body["state"] == "active"  # the checkpoint is still there
        # As `checkpoint rollback --json` carries it: the event, the failed job.
        assert body["events"][-1]["kind"] == "rollback_failed"
        assert body["events"][-1]["message"].startswith("rollback failed: The term 'Restore")
        assert body["jobs"][-1]["state"] == "failed"
    else:
        assert "CHG-0001: rollback approved (1 of 1)" in approved.stdout
        assert _last_line(approved).startswith("  last error: rollback failed: The term")


def test_an_approved_rollback_that_works_still_exits_0(
    estate: tuple[Path, EmulatedFleet],
) -> None:
    cwd, fleet = estate
    _taken(cwd, fleet)
    assert _cli(cwd, ALICE, "checkpoint", "rollback", "CHG-1").returncode == 0
    approved = _cli(cwd, BOB, "change", "approve", "CHG-1", "--json")
    assert approved.returncode == 0, approved.stdout + approved.stderr
    body = json.loads(approved.stdout)
    assert body["state"] == "rolled_back" and body["job_succeeded"] is True


def test_an_approved_merge_that_fails_exits_1(estate: tuple[Path, EmulatedFleet]) -> None:
    cwd, fleet = estate
    _taken(cwd, fleet)
    asked = _cli(cwd, ALICE, "checkpoint", "merge", "CHG-1")
    assert asked.returncode == 0 and "WAITING FOR APPROVAL" in asked.stdout
    fleet.server("HV03").faults = Faults(hidden=frozenset({"Remove-VMSnapshot"}))
    approved = _cli(cwd, BOB, "change", "approve", "CHG-1")
    assert approved.returncode == 1, approved.stdout + approved.stderr
    assert "merge failed" in _last_line(approved)


def test_an_approved_checkpoint_that_fails_exits_1(estate: tuple[Path, EmulatedFleet]) -> None:
    cwd, fleet = estate
    asked = _cli(cwd, ALICE, "checkpoint", "create", "STG-WEB01", "-r", "patch")
    assert asked.returncode == 0 and "WAITING FOR APPROVAL" in asked.stdout
    fleet.server("HV03").faults = Faults(hidden=frozenset({"Checkpoint-VM"}))
    approved = _cli(cwd, BOB, "change", "approve", "CHG-1", "--json")
    assert approved.returncode == 1, approved.stdout + approved.stderr
    body = json.loads(approved.stdout)
    assert body["state"] == "failed" and body["job_succeeded"] is False


def test_reject_and_withdraw_run_nothing_and_exit_0(estate: tuple[Path, EmulatedFleet]) -> None:
    """They run no job: nothing of theirs can fail; the answer is theirs."""
    cwd, fleet = estate
    _taken(cwd, fleet)
    assert _cli(cwd, ALICE, "checkpoint", "rollback", "CHG-1").returncode == 0
    rejected = _cli(cwd, BOB, "change", "reject", "CHG-1", "--reason", "not now", "--json")
    assert rejected.returncode == 0, rejected.stdout + rejected.stderr
    assert json.loads(rejected.stdout)["job_succeeded"] is None
    assert _cli(cwd, ALICE, "checkpoint", "merge", "CHG-1").returncode == 0
    withdrawn = _cli(cwd, ALICE, "checkpoint", "withdraw", "CHG-1")
    assert withdrawn.returncode == 0, withdrawn.stdout + withdrawn.stderr
    assert "merge withdrawn; nothing runs for it" in withdrawn.stdout
