"""Virtual Fibre Channel, as the host says it (docs/host-truth.md, "Virtual
Fibre Channel").

A virtual Fibre Channel adapter is not a hard disk drive: `Get-VMHardDiskDrive`
does not list it, `Get-VMFibreChannelHba` lists "the fibre channel objects for
each virtual fibre channel controller that is connected to the specified
virtual machine"
(https://learn.microsoft.com/powershell/module/hyper-v/get-vmfibrechannelhba),
and Hyper-V cannot checkpoint what it connects. Seen before: the bot never
asked, read "no adapter" from a host that was never asked, said "the host does
not show virtual Fibre Channel" and passed `unsupported_disks` for a VM whose
adapter the inventory did not record ("has only virtual hard disks").

The hosts are the WinRM emulator over real HTTP on loopback, read by the
bot's own pypsrp client; the host model, not the inventory, holds the adapter.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.devtools.emulator import EmulatedFleet, Faults
from bot.devtools.emulator.pointing import EMULATOR_PASSWORD_ENV
from bot.devtools.hostmodel import HostModel, demo_hosts_path, parse_host_model
from tests.cli_support import emulated_estate, invoke
from tests.emulator_support import pool, run
from tests.test_host_truth_kvp import _row

ENV = {EMULATOR_PASSWORD_ENV: "Passw0rd!", "CHECKPOINT_BOT_SOCKET": "off"}
ROLE = "deploy/jea/CheckpointBot.psrc"
VM = "STG-WEB01"  # on HV03; the demo inventory records no adapter for it
VM_ID = "6a1e4c8d-2b9f-4d73-b0a6-9c5e7f3d1b28"
SAN = "SAN-FABRIC-A"


def _with_adapter() -> HostModel:
    """The demo host model with a virtual Fibre Channel adapter on STG-WEB01
    (the model file writes one as a disk with `fibre_channel: true`)."""
    doc: dict[str, Any] = yaml.safe_load(demo_hosts_path().read_text(encoding="utf-8"))
    for host in doc["hosts"]:
        for vm in host["vms"]:
            if vm["name"] == VM:
                vm["disks"] = [
                    {"path": f"D:\\Hyper-V\\{VM}\\Virtual Hard Disks\\{VM}.vhdx"},
                    {"path": SAN, "fibre_channel": True},
                ]
    return parse_host_model(yaml.safe_dump(doc), "demo-hosts (test)")


@contextlib.contextmanager
def _estate(tmp_path: Path, model: HostModel | None = None) -> Iterator[EmulatedFleet]:
    with emulated_estate(tmp_path, model=model, env=ENV) as fleet:
        yield fleet


def _explain(cwd: Path, *extra: str) -> str:
    out = invoke(cwd, "-c", "bot.yaml", "policy", "explain", VM, *extra, env=ENV)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_the_emulated_host_lists_adapters_as_get_vmfibrechannelhba_does(tmp_path: Path) -> None:
    with _estate(tmp_path, _with_adapter()) as fleet, pool(fleet.port_of("HV03")) as hv03:
        every = run(hv03, lambda p: p.add_cmdlet("Get-VM").add_cmdlet("Get-VMFibreChannelHba"))
        assert not every.had_errors and not every.streams.error
        [hba] = every.output
        assert hba.types[0] == "Microsoft.HyperV.PowerShell.VMFibreChannelHba"
        props = hba.adapted_properties
        assert str(props["VMId"]) == VM_ID and props["VMName"] == VM
        assert props["SanName"] == SAN
        # A VM without an adapter: no object and no error.
        other = run(
            hv03,
            lambda p: (
                p.add_cmdlet("Get-VM")
                .add_parameter("Name", "STG-APP01")
                .add_cmdlet("Get-VMFibreChannelHba")
            ),
        )
        assert other.output == [] and not other.streams.error and not other.had_errors
        # Not a hard disk drive: Get-VMHardDiskDrive lists the VHDX alone.
        drives = run(
            hv03,
            lambda p: (
                p.add_cmdlet("Get-VM").add_parameter("Name", VM).add_cmdlet("Get-VMHardDiskDrive")
            ),
        )
        assert [d.adapted_properties["Path"] for d in drives.output] == [
            f"D:\\Hyper-V\\{VM}\\Virtual Hard Disks\\{VM}.vhdx"
        ]


def test_an_adapter_the_inventory_does_not_record_refuses_the_checkpoint(
    tmp_path: Path,
) -> None:
    with _estate(tmp_path, _with_adapter()) as fleet:
        text = _explain(tmp_path)
        disks = _row(text, "unsupported_disks")
        assert "✗" in disks and f"{VM} uses virtual Fibre Channel" in disks, disks
        drift = _row(text, "inventory_drift")
        assert "the host shows virtual Fibre Channel, the inventory says no" in drift, drift
        assert text.startswith(f"create {VM} as cli:tester: DENY"), text

        created = invoke(
            tmp_path, "-c", "bot.yaml", "checkpoint", "create", VM, "--reason", "patch", env=ENV
        )
        assert created.returncode == 1, (created.stdout, created.stderr)
        assert "virtual Fibre Channel" in created.stdout + created.stderr
        assert "Traceback" not in created.stderr
        sent = [e.cmdlet for e in fleet.log.for_host("HV03")]
        assert "Get-VMFibreChannelHba" in sent and "Checkpoint-VM" not in sent


def test_a_vm_without_an_adapter_is_said_to_have_only_virtual_disks(tmp_path: Path) -> None:
    with _estate(tmp_path):
        text = _explain(tmp_path)
    disks = _row(text, "unsupported_disks")
    assert "✓" in disks and "has only virtual hard disks" in disks, disks


def test_a_role_without_get_vmfibrechannelhba_leaves_it_unknown_not_no(tmp_path: Path) -> None:
    with _estate(tmp_path) as fleet:
        fleet.server("HV03").faults = Faults(hidden=frozenset({"Get-VMFibreChannelHba"}))
        text = _explain(tmp_path)
        disks = _row(text, "unsupported_disks")
        assert "✗" in disks, disks
        assert "does not let the bot run Get-VMFibreChannelHba" in disks, disks
        assert "VisibleCmdlets" in disks and ROLE in disks, disks
        # Not asked is not "the host does not show it".
        assert "does not show virtual Fibre Channel" not in text
        assert text.startswith(f"create {VM} as cli:tester: DENY"), text

        data = json.loads(_explain(tmp_path, "--json"))
        (rule,) = [r for r in data["rules"] if r["id"] == "unsupported_disks"]
        fact = rule["facts"]["disk_fibre_channel"]
        assert fact["known"] is False and fact["source"] == "host HV03"

        # Once the role lets the bot ask, the same VM passes.
        fleet.server("HV03").faults = Faults()
        assert "✓" in _row(_explain(tmp_path), "unsupported_disks")


def _diff(cwd: Path) -> dict[str, Any]:
    out = invoke(cwd, "-c", "bot.yaml", "inventory", "diff", "--json", env=ENV)
    assert out.returncode == 0, out.stderr
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def test_discovery_records_the_adapter_and_keeps_a_persons_word_when_not_asked(
    tmp_path: Path,
) -> None:
    with _estate(tmp_path, _with_adapter()) as fleet:
        data = _diff(tmp_path)
        (entry,) = [e for e in data["entries"] if e["name"] == VM]
        assert entry["kind"] == "updated"
        assert {"key": "disks", "old": {}, "new": {"virtual_fibre_channel": True}} in entry[
            "changes"
        ], entry
        (found,) = [f for f in data["found"] if f["name"] == VM]
        assert found["disks"]["virtual_fibre_channel"] is True

        # An endpoint that hides the cmdlet: unknown, and nothing changed for it.
        fleet.server("HV03").faults = Faults(hidden=frozenset({"Get-VMFibreChannelHba"}))
        data = _diff(tmp_path)
        (entry,) = [e for e in data["entries"] if e["name"] == VM]
        assert entry["kind"] == "unchanged", entry
        (found,) = [f for f in data["found"] if f["name"] == VM]
        assert found["disks"]["virtual_fibre_channel"] is None


@pytest.mark.parametrize("hidden", [False, True], ids=["asked", "hidden"])
def test_a_new_vm_says_what_is_known_of_its_adapter(tmp_path: Path, hidden: bool) -> None:
    """A VM discovery adds: its adapter in its entry, or a note that the
    host could not be asked."""
    with _estate(tmp_path, _with_adapter()) as fleet:
        if hidden:
            fleet.server("HV03").faults = Faults(hidden=frozenset({"Get-VMFibreChannelHba"}))
        inventory = tmp_path / "inventory.yaml"
        doc = yaml.safe_load(inventory.read_text(encoding="utf-8"))
        doc["vms"] = [vm for vm in doc["vms"] if vm["name"] != VM]
        doc["groups"] = {
            name: [m for m in members if m != VM] for name, members in doc["groups"].items()
        }
        inventory.write_text(yaml.safe_dump(doc), encoding="utf-8")
        data = _diff(tmp_path)
    (entry,) = [e for e in data["entries"] if e["name"] == VM]
    assert entry["kind"] == "added"
    record = dict(entry["record"])
    if hidden:
        assert "disks" not in record
        assert any(
            "did not list virtual Fibre Channel adapters" in n
            and "Get-VMFibreChannelHba" in n
            and "whether it has one is unknown" in n
            for n in entry["notes"]
        ), entry["notes"]
    else:
        assert record["disks"] == {"virtual_fibre_channel": True}
        assert not any("Fibre Channel" in n for n in entry["notes"])
