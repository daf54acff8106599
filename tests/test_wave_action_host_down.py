"""A wave's Roll back all (or Keep & merge all) with one host down
(2026-12-07, on-call, 42 VMs over 3 hosts, HV03 down): the first member
on HV03 stopped the whole action with "could not check PW03: HV03 could
not be reached …" (exit 3), and nothing was restored on HV01 or HV02.

What holds now: a member whose host cannot be asked is never decided on
facts nobody has: it is left as it is, said as not started with its host
("HV03 could not be reached: not rolled back; try again once it answers"),
and recorded nowhere as a refusal. The others are decided as before (the
strictest need among them; if it needs an approver, only they wait) and
act. Once the host answers, the same Roll back all takes only what is left.
With every member's host down it is as before: nothing decided or recorded,
exit 3.

The hosts are the WinRM emulator over real HTTP on loopback; the CLI runs
in this process (tests/cli_support.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.devtools.emulator import EmulatedFleet, Faults
from bot.devtools.emulator.pointing import EMULATOR_PASSWORD_ENV
from tests.cli_support import CliResult, emulated_estate, invoke, one_line_error

ENV = {EMULATOR_PASSWORD_ENV: "Passw0rd!", "CHECKPOINT_BOT_SOCKET": "off"}
ALICE = {**ENV, "CHECKPOINT_BOT_USER": "alice"}
BOB = {**ENV, "CHECKPOINT_BOT_USER": "bob"}
# WEB01 (HV01) and WEB02 (HV02) are prod: as shipped, their rollback needs
# one approver. STG-WEB01 and STG-APP01 are on HV03, staging.
WAVE = ("WEB01", "WEB02", "STG-WEB01", "STG-APP01")
LIVE = {"WEB01", "WEB02"}
ON_HV03 = {"STG-WEB01", "STG-APP01"}


@pytest.fixture
def estate(tmp_path: Path) -> Iterator[tuple[Path, EmulatedFleet]]:
    with emulated_estate(tmp_path, env=ENV) as fleet:
        yield tmp_path, fleet


def _cli(cwd: Path, env: dict[str, str], *args: str) -> CliResult:
    return invoke(cwd, "-c", "bot.yaml", *args, env=env)


def _wave(cwd: Path) -> None:
    made = _cli(cwd, ALICE, "checkpoint", "create", *WAVE, "-r", "KB5044284", "--yes")
    assert made.returncode == 0, made.stdout + made.stderr


def _states(cwd: Path) -> dict[str, str]:
    shown = _cli(cwd, ALICE, "batch", "show", "BAT-1", "--json")
    assert shown.returncode == 0, shown.stderr
    return {m["vm"]: m["state"] for m in json.loads(shown.stdout)["members"]}


def _history(cwd: Path) -> list[dict[str, object]]:
    shown = _cli(cwd, ALICE, "batch", "show", "BAT-1", "--json")
    events: list[dict[str, object]] = json.loads(shown.stdout)["events"]
    return events


def _not_started(result: CliResult) -> dict[str, str]:
    """vm -> why, from the `  ! VM (CHG-n) was not started: why` lines."""
    found = {}
    for line in result.stdout.splitlines():
        if line.startswith("  ! ") and " was not started: " in line:
            head, why = line[4:].split(" was not started: ", 1)
            found[head.split(" ", 1)[0]] = why
    return found


def _restores(fleet: EmulatedFleet, host: str) -> int:
    return sum(1 for e in fleet.log.for_host(host) if "Restore-VMSnapshot" in e.cmdlet)


def test_roll_back_all_with_a_host_down_rolls_back_the_others(
    estate: tuple[Path, EmulatedFleet],
) -> None:
    cwd, fleet = estate
    _wave(cwd)
    fleet.server("HV03").faults = Faults(refuse=True)

    asked = _cli(cwd, ALICE, "batch", "rollback", "BAT-1", "--yes")
    # Not the whole wave's "could not check" (exit 3): it went ahead for the
    # members it could decide, and says which it did not start (exit 1).
    assert asked.returncode == 1, asked.stdout + asked.stderr
    assert "Traceback" not in asked.stderr and "error" not in asked.stderr
    assert "rollback WAITING FOR APPROVAL" in asked.stdout
    why = "HV03 could not be reached: not rolled back; try again once it answers"
    assert _not_started(asked) == dict.fromkeys(sorted(ON_HV03), why)
    assert "REFUSED" not in asked.stdout

    body = json.loads(_cli(cwd, ALICE, "batch", "rollback", "BAT-1", "--yes", "--json").stdout)
    acted = {m["vm"]: (m["result"], m["detail"]) for m in body["members_acted"]}
    # A second click while it waits asks nothing new; HV03's are still said.
    assert body["already_asked"] is True
    assert acted == {
        "WEB01": ("awaits_approval", acted["WEB01"][1]),
        "WEB02": ("awaits_approval", acted["WEB02"][1]),
        "STG-WEB01": ("not_started", why),
        "STG-APP01": ("not_started", why),
    }
    # Asked of the approvers once, for the two it could decide; no refusal.
    kinds = [e["kind"] for e in _history(cwd)]
    assert kinds.count("rollback_awaits_approval") == 1 and "rollback_refused" not in kinds
    asking = next(e for e in _history(cwd) if e["kind"] == "rollback_awaits_approval")
    assert str(asking["message"]).endswith(
        "the most that any one of its members needs; left out, their hosts could not be asked: "
        "STG-WEB01, STG-APP01"
    )

    approved = _cli(cwd, BOB, "batch", "approve", "BAT-1")
    assert approved.returncode == 0, approved.stdout + approved.stderr
    states = _states(cwd)
    assert {vm: states[vm] for vm in LIVE} == dict.fromkeys(LIVE, "rolled_back")
    assert {vm: states[vm] for vm in ON_HV03} == dict.fromkeys(ON_HV03, "active")
    # Nothing of HV03's waits for an approver, nor was refused.
    for vm in ON_HV03:
        shown = _cli(cwd, ALICE, "change", "show", _change_of(cwd, vm), "--json")
        events = json.loads(shown.stdout)["events"]
        assert not [e for e in events if "refused" in e["kind"] or "denied" in e["kind"]]
        assert not [e for e in events if "awaits_approval" in e["kind"]]

    # HV03 answers again: the same Roll back all takes only what is left.
    fleet.server("HV03").faults = Faults()
    before = {h: _restores(fleet, h) for h in ("HV01", "HV02", "HV03")}
    again = _cli(cwd, ALICE, "batch", "rollback", "BAT-1", "--yes")
    assert again.returncode == 0, again.stdout + again.stderr
    assert _not_started(again) == {}
    assert _states(cwd) == dict.fromkeys(WAVE, "rolled_back")
    after = {h: _restores(fleet, h) for h in ("HV01", "HV02", "HV03")}
    assert after["HV01"] == before["HV01"] and after["HV02"] == before["HV02"]
    assert after["HV03"] == before["HV03"] + 2


def _change_of(cwd: Path, vm: str) -> str:
    shown = _cli(cwd, ALICE, "batch", "show", "BAT-1", "--json")
    return next(m["change"] for m in json.loads(shown.stdout)["members"] if m["vm"] == vm)


def test_keep_and_merge_all_with_a_host_down_merges_the_others(
    estate: tuple[Path, EmulatedFleet],
) -> None:
    cwd, fleet = estate
    _wave(cwd)
    fleet.server("HV03").faults = Faults(refuse=True)

    merged = _cli(cwd, ALICE, "batch", "merge", "BAT-1", "--yes")
    assert merged.returncode == 1, merged.stdout + merged.stderr
    assert "Traceback" not in merged.stderr and "error" not in merged.stderr
    why = "HV03 could not be reached: not merged; try again once it answers"
    assert _not_started(merged) == dict.fromkeys(sorted(ON_HV03), why)
    states = _states(cwd)
    assert {vm: states[vm] for vm in LIVE} == dict.fromkeys(LIVE, "merged")
    assert {vm: states[vm] for vm in ON_HV03} == dict.fromkeys(ON_HV03, "active")
    started = [e for e in _history(cwd) if e["kind"] == "merge_started"]
    assert len(started) == 1 and "merge of 2 members" in str(started[0]["message"])
    assert "left out, their hosts could not be asked: STG-WEB01" in str(started[0]["message"])
    assert "merge_refused" not in [e["kind"] for e in _history(cwd)]

    fleet.server("HV03").faults = Faults()
    again = _cli(cwd, ALICE, "batch", "merge", "BAT-1", "--yes")
    assert again.returncode == 0, again.stdout + again.stderr
    assert _states(cwd) == dict.fromkeys(WAVE, "merged")


def test_with_every_members_host_down_nothing_is_decided(
    estate: tuple[Path, EmulatedFleet],
) -> None:
    cwd, fleet = estate
    made = _cli(cwd, ALICE, "checkpoint", "create", *sorted(ON_HV03), "-r", "KB", "--yes")
    assert made.returncode == 0, made.stdout + made.stderr
    history = _history(cwd)
    fleet.server("HV03").faults = Faults(refuse=True)

    asked = _cli(cwd, ALICE, "batch", "rollback", "BAT-1", "--yes")
    assert asked.returncode == 3, asked.stdout + asked.stderr
    said = one_line_error(asked)
    assert "HV03 could not be reached" in said and "nothing was decided or recorded" in said
    assert _history(cwd) == history
    assert _states(cwd) == dict.fromkeys(ON_HV03, "active")
