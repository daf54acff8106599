"""`sweep run` says which changes it just ended as vanished.

Seen twice (on-call, a host rebuilt so its checkpoints were gone): `sweep
run` printed "0 checkpoints seen; 0 stale, 0 orphans … Nothing to decide on
the hosts that answered. No digest: nothing to report." while that very
run had moved four changes to `vanished` (`change list --all` showed them;
only `--json` had a `vanished` key). A run that changed the record says so.

The hosts are the WinRM emulator over real HTTP on loopback (their
checkpoints removed behind the bot's back, as an admin in Hyper-V Manager
would); the CLI runs in this process (tests/cli_support.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.devtools.emulator import EmulatedFleet
from bot.devtools.emulator.pointing import EMULATOR_PASSWORD_ENV
from tests.cli_support import CliResult, emulated_estate, invoke

ENV = {
    EMULATOR_PASSWORD_ENV: "Passw0rd!",
    "CHECKPOINT_BOT_SOCKET": "off",
    "CHECKPOINT_BOT_USER": "alice",
}


@pytest.fixture
def estate(tmp_path: Path) -> Iterator[tuple[Path, EmulatedFleet]]:
    with emulated_estate(tmp_path, env=ENV) as fleet:
        yield tmp_path, fleet


def _cli(cwd: Path, *args: str) -> CliResult:
    return invoke(cwd, "-c", "bot.yaml", *args, env=ENV)


def _taken(cwd: Path, vm: str) -> dict[str, str]:
    made = _cli(cwd, "checkpoint", "create", vm, "-r", "KB5044284", "--json")
    assert made.returncode == 0, made.stdout + made.stderr
    change: dict[str, str] = json.loads(made.stdout)
    return change


def test_the_sweeps_text_names_the_changes_it_ended_as_vanished(
    estate: tuple[Path, EmulatedFleet],
) -> None:
    cwd, fleet = estate
    first, second = _taken(cwd, "STG-WEB01"), _taken(cwd, "STG-APP01")
    kept = _taken(cwd, "WEB01")
    for change in (first, second):
        fleet.host("HV03").remove_behind_back(change["checkpoint_id"])

    swept = _cli(cwd, "sweep", "run")
    assert swept.returncode == 0, swept.stderr
    refs = f"{first['ref']}, {second['ref']}"
    assert (
        f"2 changes ended as vanished: their host answered without their checkpoint "
        f"(deleted outside the bot, or the host rebuilt): {refs}"
    ) in swept.stdout, swept.stdout
    assert kept["ref"] not in swept.stdout.split("vanished")[-1]

    # Said once: the next run has nothing new to end.
    again = _cli(cwd, "sweep", "run")
    assert "vanished" not in again.stdout, again.stdout
