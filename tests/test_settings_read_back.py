"""A `checkpoint settings` change whose `Set-VM` has no answer in time
(2026-12-05: the host had applied it, and the bot said "try again" and
recorded nothing). A stop does not undo what a cmdlet already did
(Cmdlet.StopProcessing,
https://learn.microsoft.com/dotnet/api/system.management.automation.cmdlet.stopprocessing),
so the bot reads the VM back and says, and records, what it finds.

The host is the WinRM emulator over real HTTP on loopback; its own model
(not the client) decides whether the change happened: `late=Set-VM` does
the work and answers late, `slow=Set-VM` waits before the work and a stop
cuts it short (bot/devtools/emulator/faults.py)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.devtools.emulator import EmulatedFleet, Faults
from bot.devtools.emulator.pointing import EMULATOR_PASSWORD_ENV
from tests.cli_support import CliResult, emulated_estate, invoke, one_line_error

ADMIN = {
    EMULATOR_PASSWORD_ENV: "Passw0rd!",
    "CHECKPOINT_BOT_SOCKET": "off",
    "CHECKPOINT_BOT_USER": "ops",
}
# Long enough for a Get-VM on a fresh pool, short enough for a test to wait.
CALL_TIMEOUT_S = 3
POLICY = "admins: {users: ['cli:ops'], groups: []}\n"


@pytest.fixture
def estate(tmp_path: Path) -> Iterator[tuple[Path, EmulatedFleet]]:
    (tmp_path / "policy.yaml").write_text(POLICY, encoding="utf-8")
    hyperv = f"{{backend: winrm, call_timeout: {CALL_TIMEOUT_S}s}}"
    with emulated_estate(tmp_path, hyperv, extra="policy: policy.yaml\n", env=ADMIN) as fleet:
        yield tmp_path, fleet


def _settings(cwd: Path, *args: str) -> CliResult:
    """`checkpoint settings STG-WEB01 ARGS`, with a reason when it changes them."""
    why = ("-r", "read-back test") if args else ()
    return invoke(
        cwd, "-c", "bot.yaml", "checkpoint", "settings", "STG-WEB01", *args, *why, env=ADMIN
    )


def _host_type(fleet: EmulatedFleet) -> str:
    """What the emulated host itself has for STG-WEB01 (its model, not the bot)."""
    vm = next(v for v in fleet.host("HV03").get_vms() if v.name == "STG-WEB01")
    return vm.checkpoint_type.name


def _recorded(cwd: Path) -> list[dict[str, Any]]:
    done = invoke(cwd, "-c", "bot.yaml", "audit", "export", "--vm", "STG-WEB01", env=ADMIN)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    return [r for r in rows if r["event"] == "settings"]


LATE = (CALL_TIMEOUT_S + 2) * 1000


def test_a_change_the_host_made_but_answered_late_is_read_back_and_recorded(
    estate: tuple[Path, EmulatedFleet],
) -> None:
    cwd, fleet = estate
    assert _host_type(fleet) == "Production"
    fleet.server("HV03").faults = Faults(late={"Set-VM": LATE})
    done = _settings(cwd, "--type", "production-only", "--reason", "no fallback")
    assert done.returncode == 0, done.stderr
    assert _host_type(fleet) == "ProductionOnly"
    assert "CheckpointType ProductionOnly" in done.stdout
    assert "changed: CheckpointType Production → ProductionOnly (recorded)" in done.stdout
    assert "read back, the VM had taken it" in done.stdout
    assert "there is no need to ask again" in done.stdout
    [row] = _recorded(cwd)
    assert row["details"]["after"]["checkpoint_type"] == "ProductionOnly"


def test_a_change_a_stop_cut_short_is_read_back_and_not_recorded(
    estate: tuple[Path, EmulatedFleet],
) -> None:
    cwd, fleet = estate
    fleet.server("HV03").faults = Faults(slow={"Set-VM": LATE})
    done = _settings(cwd, "--type", "production-only")
    assert done.returncode == 3, done.stderr
    assert _host_type(fleet) == "Production"
    line = one_line_error(done)
    assert "read back just now, STG-WEB01 still has CheckpointType Production" in line
    assert "the change has not taken so far" in line and "nothing was changed" not in line
    assert _recorded(cwd) == [] and done.stdout == ""


def test_a_change_whose_host_then_cannot_be_read_is_not_known(
    estate: tuple[Path, EmulatedFleet],
) -> None:
    """The answer is late, and once the host has changed the VM it stops
    taking connections, so the read-back cannot reach it: whether the change
    took is not known, and the bot says so instead of "try again"."""
    cwd, fleet = estate
    server = fleet.server("HV03")
    server.faults = Faults(late={"Set-VM": LATE})
    stop = threading.Event()

    def refuse_once_changed() -> None:
        while not stop.wait(0.02):
            if _host_type(fleet) == "ProductionOnly":
                server.faults = Faults(refuse=True)
                return

    watcher = threading.Thread(target=refuse_once_changed, daemon=True)
    watcher.start()
    try:
        done = _settings(cwd, "--type", "production-only")
    finally:
        stop.set()
        watcher.join()
    assert done.returncode == 3, done.stderr
    line = one_line_error(done)
    assert "whether STG-WEB01 took the new settings is not known" in line
    assert "look with `checkpoint settings STG-WEB01` once HV03 answers" in line
    assert _host_type(fleet) == "ProductionOnly"  # it had: the host's own model
    assert _recorded(cwd) == []
