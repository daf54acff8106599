"""What an interrupted create took, judged when the reconciler adopts its
checkpoint (2026-12-05: a production-only checkpoint whose create timed out
after the host took it was adopted, rightly, but listed as taken
"unknown"). The host is the WinRM emulator over real HTTP; `late=Checkpoint-VM`
makes it take the checkpoint and answer after the call's limit
(bot/devtools/emulator/faults.py). Whether the checkpoint holds memory is
the host model's, from Microsoft's documentation of production checkpoints
(https://learn.microsoft.com/windows-server/virtualization/hyper-v/manage/choose-between-standard-or-production-checkpoints-in-hyper-v)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.devtools.emulator import Faults
from bot.devtools.emulator.pointing import EMULATOR_PASSWORD_ENV
from tests.cli_support import CliResult, emulated_estate, invoke

ENV = {EMULATOR_PASSWORD_ENV: "Passw0rd!", "CHECKPOINT_BOT_SOCKET": "off"}


@pytest.mark.parametrize(
    ("asked", "taken"),
    [
        # Raised from Production to ProductionOnly, noted: proven production.
        ("production-only", "production"),
        # Run under the VM's own Production, or a stricter type an admin set;
        # no memory: a production checkpoint or one of a VM that was off,
        # which the record cannot tell apart, so not claimed either way.
        ("standard", "unknown"),
    ],
)
def test_an_adopted_checkpoint_is_judged_as_its_job_would_have(
    tmp_path: Path, asked: str, taken: str
) -> None:
    def cli(*args: str) -> CliResult:
        return invoke(tmp_path, "-c", "bot.yaml", *args, env=ENV)

    with emulated_estate(tmp_path, "{backend: winrm, call_timeout: 3s}", env=ENV) as fleet:
        fleet.server("HV03").faults = Faults(late={"Checkpoint-VM": 5000})
        created = cli("checkpoint", "create", "STG-WEB01", "-r", "x", "--type", asked)
        # Interrupted (no answer in time), its outcome unknown: 4, never 1 or 3.
        assert created.returncode == 4 and "interrupted" in created.stdout, created.stderr
        fleet.server("HV03").faults = Faults()
        assert "now active" in cli("reconcile").stdout
        change = json.loads(cli("change", "show", "CHG-1", "--json").stdout)
        listed = cli("checkpoint", "list", "--vm", "STG-WEB01", "--json")
    assert change["state"] == "active" and change["taken_type"] == taken, change
    assert change["taken_evidence"]
    [row] = json.loads(listed.stdout)["checkpoints"]
    assert row["taken"] == taken
