"""Every `Set-VM` the bot sends is in the change's record (2026-12-06: a
create that raised a VM's CheckpointType for its checkpoint recorded "it is
set back afterwards", and the host's own log showed the set-back, but no
event said it was done, nor that it failed when it did).

The hosts are the WinRM emulator over real WinRM (the real pypsrp client);
what they received is the emulator's own log (`fleet.log`), compared with
the change's events. STG-WEB01 on HV03 has CheckpointType Production in the
demo host model: a production-only checkpoint raises it and sets it back."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from bot.devtools.emulator import EmulatedFleet, Faults
from bot.devtools.emulator.pointing import EMULATOR_PASSWORD_ENV
from tests.cli_support import CliResult, emulated_estate, invoke

ENV = {EMULATOR_PASSWORD_ENV: "Passw0rd!", "CHECKPOINT_BOT_SOCKET": "off"}
VM, HOST = "STG-WEB01", "HV03"


def _cli(cwd: Path, *args: str) -> CliResult:
    return invoke(cwd, "-c", "bot.yaml", *args, env=ENV)


def _set_vm_sent(fleet: EmulatedFleet) -> list[str]:
    """The CheckpointType of each Set-VM the host received, in order."""
    return [
        str(e.parameters.get("CheckpointType"))
        for e in fleet.log.for_host(HOST)
        if e.cmdlet == "Set-VM"
    ]


def _events(cwd: Path, ref: str) -> list[dict[str, Any]]:
    shown = _cli(cwd, "change", "show", ref, "--json")
    assert shown.returncode == 0, shown.stderr
    events: list[dict[str, Any]] = json.loads(shown.stdout)["events"]
    return events


def _host_type(fleet: EmulatedFleet) -> str:
    vm = next(v for v in fleet.host(HOST).get_vms() if v.name == VM)
    return vm.checkpoint_type.name


def test_the_set_back_the_host_received_is_recorded(tmp_path: Path) -> None:
    with emulated_estate(tmp_path, env=ENV) as fleet:
        assert _host_type(fleet) == "Production"
        made = _cli(tmp_path, "checkpoint", "create", VM, "-r", "x", "--type", "production-only")
        assert made.returncode == 0, made.stdout + made.stderr
        sent = _set_vm_sent(fleet)
        events = _events(tmp_path, "CHG-1")
        assert _host_type(fleet) == "Production"
        exported = _cli(tmp_path, "audit", "export", "--change", "CHG-1")
    assert sent == ["ProductionOnly", "Production"]
    settings = [e for e in events if e["kind"].startswith("setting")]
    assert [(e["kind"], e["message"]) for e in settings] == [
        (
            "setting",
            "CheckpointType raised from Production to ProductionOnly for this checkpoint; "
            "it is set back afterwards",
        ),
        (
            "setting_restored",
            "CheckpointType set back from ProductionOnly to Production after the checkpoint",
        ),
    ]
    # In the order the host received them: raised, taken, set back, recorded.
    kinds = [e["kind"] for e in events]
    assert kinds.index("setting") < kinds.index("setting_restored") < kinds.index("created")
    rows = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [r["event"] for r in rows if r["event"].startswith("setting")] == [
        "setting",
        "setting_restored",
    ]


def created_with_set_back_refused(cwd: Path, fleet: EmulatedFleet) -> CliResult:
    """`checkpoint create` of a production-only checkpoint of VM whose
    set-back the host refuses: it stops exposing Set-VM while the checkpoint
    is being taken (a JEA role changed under the bot)."""
    fleet.server(HOST).faults = Faults(slow={"Checkpoint-VM": 1500})

    def refuse_set_vm_once_taking() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(e.cmdlet == "Checkpoint-VM" for e in fleet.log.for_host(HOST)):
                fleet.server(HOST).faults = Faults(hidden=frozenset({"Set-VM"}))
                return
            time.sleep(0.01)

    watcher = threading.Thread(target=refuse_set_vm_once_taking, daemon=True)
    watcher.start()
    made = _cli(cwd, "checkpoint", "create", VM, "-r", "x", "--type", "production-only")
    watcher.join()
    return made


def test_a_set_back_the_host_refused_is_recorded_with_what_to_do(tmp_path: Path) -> None:
    """The host stops exposing Set-VM while the checkpoint is being taken
    (a JEA role changed under the bot): the set-back is sent and refused.
    The checkpoint was taken and stays the change's; the record says the
    VM may keep ProductionOnly and how to set it back."""
    with emulated_estate(tmp_path, env=ENV) as fleet:
        made = created_with_set_back_refused(tmp_path, fleet)
        sent = _set_vm_sent(fleet)
        events = _events(tmp_path, "CHG-1")
        state = json.loads(_cli(tmp_path, "change", "show", "CHG-1", "--json").stdout)["state"]
        left = _host_type(fleet)
    assert made.returncode == 0, made.stdout + made.stderr
    assert state == "active"  # the checkpoint taken is the change's
    assert sent == ["ProductionOnly", "Production"]  # both sent, the second refused
    assert left == "ProductionOnly"
    [failed] = [e for e in events if e["kind"] == "setting_restore_failed"]
    assert not any(e["kind"] == "setting_restored" for e in events)
    message = failed["message"]
    assert message.startswith(
        "CheckpointType could not be set back from ProductionOnly to Production after the "
        "checkpoint ("
    )
    assert f"{VM} may still have ProductionOnly" in message
    # Said in the change's Slack thread too: Slack's command first, then the CLI's.
    assert f"`/checkpoint settings {VM} --type production --reason" in message
    assert f"(on the CLI: checkpoint-bot checkpoint settings {VM} --type production -r" in message
    assert failed["details"]["original"] == "Production"
    assert failed["details"]["host_said"]
