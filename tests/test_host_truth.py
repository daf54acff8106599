"""What a Hyper-V host really reports, read by the real client over real WinRM.

The hosts are modelled from Microsoft's documentation (bot.devtools.hostmodel)
and served by the emulator over HTTP; the client is pypsrp under
`WinRMHost`. The expectations are the documented behaviour, never the
client's beliefs:

- a production checkpoint of a running VM reads `SnapshotType Standard`
  with `State Off` (no memory); a Production VM whose VSS fails gets a
  standard checkpoint (`State Running`, memory); ProductionOnly then fails
  with the host's text and leaves nothing;
- restoring them leaves the VM Off / Saved;
- a VM asked on a host that does not hold it is not found;
- a checkpoint an admin removed in Hyper-V Manager is gone from Get-VMSnapshot;
- the host model may disagree with the inventory, and discovery reports
  the host's facts (and the guardrails take the riskier reading).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.clock import ManualClock
from bot.config import load_settings
from bot.context import build_context
from bot.devtools.emulator import EmulatedFleet, EmulatorLog
from bot.devtools.hostmodel import (
    DiskSpec,
    GuestSpec,
    HostModel,
    HostSpec,
    InMemoryHostStateStore,
    ReplicationSpec,
    VMSpec,
    VolumeSpec,
    demo_hosts_path,
)
from bot.facts import FactSources, gather
from bot.hyperv.errors import CheckpointNotFound, ProductionCheckpointFailed, VMNotFound
from bot.hyperv.evidence import TakenKind, judge_taken
from bot.hyperv.types import CheckpointType, SnapshotType, VMState
from bot.hyperv.winrm.connect import Credentials
from bot.hyperv.winrm.host import WinRMHost
from bot.hyperv.winrm.pool import WinRMTimeouts
from bot.inventory import Inventory, demo_inventory_path
from bot.service import request_checkpoint
from bot.store.db import make_engine
from bot.store.migrate import upgrade

USER, PASSWORD = "hvadmin", "Passw0rd!"
T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
WEB01 = "aaaaaaaa-1111-4111-8111-111111111111"
STG01 = "aaaaaaaa-1111-4111-8111-222222222222"
SQL01 = "aaaaaaaa-1111-4111-8111-333333333333"
APP01 = "aaaaaaaa-1111-4111-8111-444444444444"

HOSTS = HostModel(
    hosts=[
        HostSpec(
            name="HV01",
            volumes=[VolumeSpec(path="D:", capacity_gb=2000, used_gb=700)],
            vms=[
                VMSpec(name="WEB01", vm_id=WEB01, guest=GuestSpec(product_type=3)),
                VMSpec(name="STG01", vm_id=STG01, guest=GuestSpec(product_type=3, vss=False)),
                VMSpec(
                    name="SQL01",
                    vm_id=SQL01,
                    checkpoint_type="ProductionOnly",
                    guest=GuestSpec(product_type=3, vss=False),
                ),
                # What the inventory calls a plain app server, as its host sees it.
                VMSpec(
                    name="APP01",
                    vm_id=APP01,
                    guest=GuestSpec(fqdn="app01.corp.example", product_type=2),
                    disks=[
                        DiskSpec(path="D:\\Hyper-V\\APP01\\APP01.vhdx"),
                        DiskSpec(path="C:\\ClusterStorage\\Volume1\\APP.vhdx", shared=True),
                    ],
                    replication=ReplicationSpec(replica_server="dr.corp.example"),
                ),
            ],
        ),
        HostSpec(name="HV02", volumes=[VolumeSpec(path="D:", capacity_gb=2000)]),
    ]
)


def inventory(ports: dict[str, int]) -> Inventory:
    host = {
        "address": "127.0.0.1",
        "transport": "http",
        "auth": "basic",
        "allow_basic": True,
        "credential": {"username": USER, "password_env": "HV_PASSWORD"},
        "volumes": [{"path": "D:\\", "capacity_gb": 2000}],
    }
    return Inventory.model_validate(
        {
            "hosts": [{**host, "name": name, "port": port} for name, port in ports.items()],
            "vms": [
                {"name": "WEB01", "vm_id": WEB01, "host": "HV01", "roles": ["web"]},
                {"name": "STG01", "vm_id": STG01, "host": "HV01", "roles": ["app"]},
                {"name": "SQL01", "vm_id": SQL01, "host": "HV01", "roles": ["sql_server"]},
                {"name": "APP01", "vm_id": APP01, "host": "HV01", "roles": ["app"],
                 "domain": "corp.example"},
            ],
        }
    )  # fmt: skip


@pytest.fixture
def fleet(clock: ManualClock) -> Iterator[EmulatedFleet]:
    started = EmulatedFleet.start(
        InMemoryHostStateStore(),
        model=HOSTS,
        users={USER: PASSWORD},
        auth=("basic",),
        log=EmulatorLog(),
        clock=clock,
    )
    yield started
    started.stop()


@pytest.fixture
def estate(fleet: EmulatedFleet) -> Inventory:
    return inventory({name: server.port for name, server in fleet.servers.items()})


def client(estate: Inventory, name: str) -> WinRMHost:
    spec = estate.host(name)
    timeouts = WinRMTimeouts(call=10, connect=2, read=10, operation=2)
    return WinRMHost(spec, Credentials({"HV_PASSWORD": PASSWORD}).for_host(spec), timeouts=timeouts)


@pytest.fixture
def hv01(estate: Inventory) -> Iterator[WinRMHost]:
    host = client(estate, "HV01")
    yield host
    host.close()


def test_a_production_checkpoint_is_standard_and_holds_no_memory(hv01: WinRMHost) -> None:
    cp = hv01.create_checkpoint(WEB01, "before patching")
    assert cp.snapshot_type is SnapshotType.Standard
    assert cp.captured_state is VMState.Off
    assert hv01.get_vm(WEB01).state is VMState.Running  # the VM itself ran on
    taken = judge_taken(cp, setting=CheckpointType.Production, vm_state=VMState.Running)
    assert (taken.kind, taken.fell_back) == (TakenKind.PRODUCTION, False)


def test_a_production_vm_whose_vss_fails_gets_a_standard_checkpoint(hv01: WinRMHost) -> None:
    cp = hv01.create_checkpoint(STG01, "vss broken")
    assert (cp.snapshot_type, cp.captured_state) == (SnapshotType.Standard, VMState.Running)
    assert cp.size_bytes > 4 * 1024**3  # the guest's memory came with it
    taken = judge_taken(cp, setting=CheckpointType.Production, vm_state=VMState.Running)
    assert (taken.kind, taken.fell_back) == (TakenKind.STANDARD, True)


def test_production_only_with_failing_vss_fails_and_leaves_nothing(hv01: WinRMHost) -> None:
    with pytest.raises(ProductionCheckpointFailed) as err:
        hv01.create_checkpoint(SQL01, "must be consistent")
    assert err.value.message.startswith(
        "Checkpoint operation failed.\nProduction checkpoints cannot be created."
    )
    assert f"(Virtual machine ID {SQL01.upper()})" in err.value.message
    assert err.value.error_id == "OperationFailed,Microsoft.HyperV.PowerShell.Commands.CheckpointVM"
    assert hv01.list_checkpoints(SQL01) == []


def test_restores_leave_the_vm_off_or_saved(hv01: WinRMHost) -> None:
    production = hv01.create_checkpoint(WEB01, "no memory")
    standard = hv01.create_checkpoint(STG01, "with memory")
    assert hv01.restore_checkpoint(WEB01, production.id).state is VMState.Off
    assert hv01.restore_checkpoint(STG01, standard.id).state is VMState.Saved


def test_a_vm_asked_on_the_wrong_host_is_not_found(estate: Inventory) -> None:
    hv02 = client(estate, "HV02")
    try:
        with pytest.raises(VMNotFound) as err:
            hv02.get_vm(WEB01)
        assert err.value.message == (
            f'Hyper-V was unable to find a virtual machine with ID "{WEB01}".'
        )
        assert err.value.error_id == "InvalidParameter,Microsoft.HyperV.PowerShell.Commands.GetVM"
        with pytest.raises(VMNotFound):
            hv02.create_checkpoint(WEB01, "x")
    finally:
        hv02.close()


def test_a_checkpoint_removed_behind_the_bots_back_is_gone(
    hv01: WinRMHost, fleet: EmulatedFleet
) -> None:
    kept = hv01.create_checkpoint(WEB01, "kept")
    gone = hv01.create_checkpoint(WEB01, "an admin deletes this one")
    fleet.host("HV01").remove_behind_back(gone.id)
    assert [cp.id for cp in hv01.list_checkpoints(WEB01)] == [kept.id]
    assert hv01.get_vm(WEB01).merging  # the host merges it as any deletion
    with pytest.raises(CheckpointNotFound):
        hv01.restore_checkpoint(WEB01, gone.id)


def test_discovery_reports_the_hosts_facts_not_the_inventorys(
    hv01: WinRMHost, estate: Inventory, clock: ManualClock
) -> None:
    vm = estate.vm("APP01")
    assert not vm.is_domain_controller and not vm.disks.shared and not vm.hyperv_replica
    facts = hv01.vm_facts(APP01)
    assert facts.kvp_product_type == 2
    assert facts.kvp_fqdn == "app01.corp.example"
    assert any(d.shared for d in facts.disks)
    assert facts.replication_enabled is True
    gathered = gather(estate, vm, hv01, sources=FactSources("inventory", "host HV01"), now=clock())
    found = gathered.get("contradictions").value
    assert any("ProductType 2" in c for c in found)
    assert any("shared disk" in c for c in found)
    assert any("Hyper-V Replica" in c for c in found)


def _demo_hosts_where(change: dict[str, Any]) -> dict[str, Any]:
    """The demo host model with one VM's facts changed."""
    doc: dict[str, Any] = yaml.safe_load(demo_hosts_path().read_text(encoding="utf-8"))
    for host in doc["hosts"]:
        for vm in host["vms"]:
            if vm["name"] == change["name"]:
                vm.update({k: v for k, v in change.items() if k != "guest"})
                vm["guest"] = {**vm.get("guest", {}), **change.get("guest", {})}
    return doc


def test_the_bot_takes_the_riskier_reading_of_a_host_that_disagrees(tmp_path: Path) -> None:
    """Through the simulator backend (the same client, in process) and the
    whole service: the inventory's WEB01 is a web server, its host model's
    guest says it is a domain controller."""
    doc = _demo_hosts_where({"name": "WEB01", "guest": {"product_type": 2}})
    (tmp_path / "hosts.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    (tmp_path / "bot.yaml").write_text(
        f"inventory: {demo_inventory_path()}\n"
        "hyperv:\n  backend: simulator\n  simulator_hosts: hosts.yaml\n",
        encoding="utf-8",
    )
    settings = load_settings(tmp_path / "bot.yaml", {}, tmp_path)
    assert settings.hyperv.simulator_hosts == tmp_path / "hosts.yaml"
    engine = make_engine(settings.database_url)
    upgrade(engine)
    engine.dispose()
    ctx = build_context(settings, clock=ManualClock(T0), huey_kind="memory")
    try:
        out = request_checkpoint(ctx, "WEB01", reason="patching", requester="alice")
    finally:
        ctx.close()
    reasons = " ".join(out.decision.reasons)
    assert out.refused, reasons
    assert "ProductType 2" in reasons or "domain controller" in reasons
