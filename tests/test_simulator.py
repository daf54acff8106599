"""The simulator backend: the real WinRM client on modelled hosts, in process.

What the bot reads here went through its own command builders, the
emulator's command table, psrpcore's serialization, pypsrp's
deserialization and its own mapping: the expectations are the documented
host behaviour (see tests/test_hostmodel.py), as the client must read it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.devtools.emulator import EmulatorLog
from bot.devtools.hostmodel import (
    DiskSpec,
    GuestSpec,
    HostModel,
    HostSpec,
    InMemoryHostStateStore,
    ModelHost,
    ReplicationSpec,
    VMSpec,
    VolumeSpec,
    seed_missing,
)
from bot.devtools.hostmodel.host import AVHDX_INITIAL_BYTES
from bot.devtools.simulator.fleet import SimulatedFleet
from bot.hyperv import (
    CheckpointLimitReached,
    CheckpointNotFound,
    CheckpointsDisabled,
    CheckpointType,
    HostUnreachable,
    HyperVHost,
    InsufficientSpace,
    InvalidVMState,
    PowerShellError,
    ProductionCheckpointFailed,
    SnapshotType,
    VMNotFound,
    VMState,
)
from bot.hyperv.evidence import TakenKind, judge_taken
from bot.hyperv.winrm.host import WinRMHost

GiB = 1024**3
MiB = 1024**2
WEB = "6f1c2a0e-0000-4000-8000-000000000001"
SQL = "6f1c2a0e-0000-4000-8000-000000000002"
OFF = "6f1c2a0e-0000-4000-8000-000000000003"
STG = "6f1c2a0e-0000-4000-8000-000000000004"
NOCP = "6f1c2a0e-0000-4000-8000-000000000005"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def _vm(name: str, vm_id: str, **fields: object) -> VMSpec:
    values: dict[str, object] = {
        "name": name,
        "vm_id": vm_id,
        "memory_gb": 4,
        "write_mb_per_hour": 3600,  # 1 MiB/s
        "guest": GuestSpec(
            fqdn=f"{name.lower()}.corp.example", os_name="Windows Server 2022", product_type=3
        ),
    }
    values.update(fields)
    return VMSpec.model_validate(values)


ESTATE = HostModel(
    hosts=[
        HostSpec(
            name="HV01",
            volumes=[VolumeSpec(path="D:", capacity_gb=100, used_gb=40)],
            vms=[
                _vm("WEB01", WEB),
                _vm("OFF01", OFF, state="Off"),
                _vm("STG01", STG, guest=GuestSpec(vss=False)),
                _vm("SQL01", SQL, checkpoint_type="ProductionOnly", guest=GuestSpec(vss=False)),
                _vm("NOCP01", NOCP, checkpoint_type="Disabled"),
            ],
        ),
        HostSpec(name="HV02", volumes=[VolumeSpec(path="D:", capacity_gb=10)]),
    ]
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store() -> InMemoryHostStateStore:
    seeded = InMemoryHostStateStore()
    seed_missing(seeded, ESTATE)
    return seeded


@pytest.fixture
def log() -> EmulatorLog:
    return EmulatorLog()


@pytest.fixture
def fleet(store: InMemoryHostStateStore, clock: FakeClock, log: EmulatorLog) -> SimulatedFleet:
    return SimulatedFleet(store, clock, log=log)


@pytest.fixture
def host(fleet: SimulatedFleet) -> WinRMHost:
    return fleet.host("HV01")


def test_it_is_the_winrm_client_and_a_hyperv_host(host: WinRMHost, log: EmulatorLog) -> None:
    assert isinstance(host, WinRMHost) and isinstance(host, HyperVHost)
    assert [(vm.name, vm.state) for vm in host.list_vms()] == [
        ("NOCP01", VMState.Running),
        ("OFF01", VMState.Off),
        ("SQL01", VMState.Running),
        ("STG01", VMState.Running),
        ("WEB01", VMState.Running),
    ]
    # The client's own pipeline reached the modelled host's command table.
    assert [e.cmdlet for e in log.entries] == ["Get-VM", "Select-Object"]
    assert host.is_open and host.stats.calls == 1


def test_a_production_checkpoint_reads_as_the_host_reports_it(
    host: WinRMHost, clock: FakeClock
) -> None:
    cp = host.create_checkpoint(WEB, "before KB5044284")
    assert cp.snapshot_type is SnapshotType.Standard
    assert cp.captured_state is VMState.Off
    assert (cp.created_at, cp.host, cp.vm_id, cp.vm_name) == (clock.now, "HV01", WEB, "WEB01")
    assert cp.path == "D:\\Hyper-V\\WEB01\\Snapshots"
    taken = judge_taken(cp, setting=CheckpointType.Production, vm_state=VMState.Running)
    assert taken.kind is TakenKind.PRODUCTION and not taken.fell_back
    assert host.list_checkpoints(WEB) == [cp]


def test_a_fallback_holds_memory_and_is_judged_standard(host: WinRMHost) -> None:
    cp = host.create_checkpoint(STG, "vss is broken in the guest")
    assert (cp.snapshot_type, cp.captured_state) == (SnapshotType.Standard, VMState.Running)
    assert cp.size_bytes == AVHDX_INITIAL_BYTES + 4 * GiB
    taken = judge_taken(cp, setting=CheckpointType.Production, vm_state=VMState.Running)
    assert taken.kind is TakenKind.STANDARD and taken.fell_back


def test_production_only_fails_with_the_hosts_text(host: WinRMHost) -> None:
    with pytest.raises(ProductionCheckpointFailed) as err:
        host.create_checkpoint(SQL, "x")
    assert "Production checkpoints cannot be created for 'SQL01'." in err.value.message
    assert err.value.error_id == "OperationFailed,Microsoft.HyperV.PowerShell.Commands.CheckpointVM"
    assert host.list_checkpoints(SQL) == []


def test_restores_leave_the_vm_off_or_saved(host: WinRMHost) -> None:
    production = host.create_checkpoint(WEB, "no memory")
    fallback = host.create_checkpoint(STG, "memory")
    restored = host.restore_checkpoint(WEB, production.id)
    assert restored.state is VMState.Off and restored.parent_checkpoint_id == production.id
    assert host.restore_checkpoint(STG, fallback.id).state is VMState.Saved
    assert host.start_vm(WEB).state is VMState.Running


def test_a_vm_on_another_host_is_not_found(fleet: SimulatedFleet) -> None:
    hv02 = fleet.host("HV02")
    with pytest.raises(VMNotFound) as err:
        hv02.get_vm(WEB)
    assert err.value.message == f'Hyper-V was unable to find a virtual machine with ID "{WEB}".'
    assert err.value.error_id == "InvalidParameter,Microsoft.HyperV.PowerShell.Commands.GetVM"
    with pytest.raises(VMNotFound):
        hv02.create_checkpoint(WEB, "x")
    with pytest.raises(HostUnreachable):
        fleet.host("HV99")


def test_a_checkpoint_removed_behind_the_bots_back(
    host: WinRMHost, store: InMemoryHostStateStore, clock: FakeClock
) -> None:
    kept = host.create_checkpoint(WEB, "kept")
    gone = host.create_checkpoint(WEB, "gone")
    ModelHost("HV01", store, clock).remove_behind_back(gone.id)
    assert [cp.id for cp in host.list_checkpoints(WEB)] == [kept.id]
    with pytest.raises(CheckpointNotFound):
        host.restore_checkpoint(WEB, gone.id)


def test_typed_errors_keep_the_hosts_text(host: WinRMHost, clock: FakeClock) -> None:
    with pytest.raises(CheckpointsDisabled) as disabled:
        host.create_checkpoint(NOCP, "x")
    assert f"Checkpoints have been disabled for 'NOCP01'. (Virtual machine ID {NOCP.upper()})" in (
        disabled.value.message
    )
    theirs = host.create_checkpoint(OFF, "theirs")
    with pytest.raises(CheckpointNotFound, match="belongs to VM"):
        host.remove_checkpoint(WEB, theirs.id)
    a = host.create_checkpoint(WEB, "a")
    b = host.create_checkpoint(WEB, "b")
    host.remove_checkpoint(WEB, b.id)
    assert host.get_vm(WEB).merging
    with pytest.raises(InvalidVMState):
        host.restore_checkpoint(WEB, a.id)
    clock.tick(60)
    assert not host.get_vm(WEB).merging
    host.remove_checkpoint(WEB, a.id, include_children=True)
    assert host.list_checkpoints(WEB) == []


def test_fifty_checkpoints_then_the_limit(clock: FakeClock) -> None:
    store = InMemoryHostStateStore()
    seed_missing(
        store,
        HostModel(
            hosts=[
                HostSpec(
                    name="HV01",
                    volumes=[VolumeSpec(path="D:", capacity_gb=10_000)],
                    vms=[_vm("WEB01", WEB, state="Off")],
                )
            ]
        ),
    )
    host = SimulatedFleet(store, clock).host("HV01")
    for i in range(50):
        host.create_checkpoint(WEB, f"cp{i}")
    with pytest.raises(CheckpointLimitReached):
        host.create_checkpoint(WEB, "one too many")
    assert host.vm_facts(WEB).checkpoint_count == 50


def test_a_full_volume_is_insufficient_space_and_pauses_the_vm(clock: FakeClock) -> None:
    store = InMemoryHostStateStore()
    seed_missing(
        store,
        HostModel(
            hosts=[
                HostSpec(
                    name="HV01",
                    volumes=[VolumeSpec(path="D:", capacity_gb=41, used_gb=40)],
                    vms=[_vm("WEB01", WEB, write_mb_per_hour=100 * 3600)],
                )
            ]
        ),
    )
    host = SimulatedFleet(store, clock).host("HV01")
    host.create_checkpoint(WEB, "a")
    clock.tick(3600)
    assert host.get_vm(WEB).state is VMState.Paused
    assert host.volumes()[0].free_bytes == 0
    with pytest.raises(InsufficientSpace):
        host.create_checkpoint(WEB, "no room")


@pytest.mark.parametrize(
    ("disk", "text"),
    [
        (DiskSpec(path="Disk 3", passthrough=True), "passthrough disks"),
        (DiskSpec(path="C:\\ClusterStorage\\q.vhdx", shared=True), "shared virtual hard disks"),
    ],
)
def test_unsupported_disks_are_refused_by_the_host(
    clock: FakeClock, disk: DiskSpec, text: str
) -> None:
    store = InMemoryHostStateStore()
    vm = _vm("CL01", WEB, disks=[DiskSpec(path="D:\\CL01.vhdx"), disk])
    seed_missing(
        store,
        HostModel(
            hosts=[
                HostSpec(name="HV01", volumes=[VolumeSpec(path="D:", capacity_gb=100)], vms=[vm])
            ]
        ),
    )
    host = SimulatedFleet(store, clock).host("HV01")
    with pytest.raises(PowerShellError) as err:
        host.create_checkpoint(WEB, "x")
    assert text in err.value.message


def test_discovery_reads_the_hosts_facts(clock: FakeClock) -> None:
    store = InMemoryHostStateStore()
    seed_missing(
        store,
        HostModel(
            hosts=[
                HostSpec(
                    name="HV01",
                    volumes=[VolumeSpec(path="D:", capacity_gb=100, used_gb=40)],
                    vms=[
                        _vm(
                            "DC01",
                            WEB,
                            guest=GuestSpec(fqdn="dc01.corp.example", os_name="WS", product_type=2),
                            replication=ReplicationSpec(),
                            disks=[
                                DiskSpec(path="D:\\DC01.vhdx"),
                                DiskSpec(path="D:\\q.vhds", shared=True),
                            ],
                        ),
                        _vm("NOKVP", SQL, guest=GuestSpec(kvp=False, product_type=3)),
                        _vm("OFF01", OFF, state="Off"),
                    ],
                )
            ]
        ),
    )
    host = SimulatedFleet(store, clock).host("HV01")
    host.create_checkpoint(WEB, "x")
    facts = host.vm_facts(WEB)
    assert (facts.kvp_product_type, facts.kvp_fqdn, facts.kvp_os_name) == (
        2,
        "dc01.corp.example",
        "WS",
    )
    assert facts.replication_enabled is True and facts.checkpoint_count == 1
    assert [d.shared for d in facts.disks] == [False, True]
    assert facts.volume is not None and facts.volume.path == "D:\\"
    for unknown in (SQL, OFF):  # the guest exchanges no KVP: unknown, not "not a DC"
        other = host.vm_facts(unknown)
        assert (other.kvp_product_type, other.kvp_fqdn, other.kvp_os_name) == (None, None, None)
        assert other.replication_enabled is False


def test_settings_change_on_the_host(host: WinRMHost) -> None:
    vm = host.set_checkpoint_settings(WEB, checkpoint_type=CheckpointType.Disabled)
    assert vm.checkpoint_type is CheckpointType.Disabled and not vm.automatic_checkpoints
    vm = host.set_checkpoint_settings(WEB, automatic_checkpoints=True)
    assert vm.checkpoint_type is CheckpointType.Disabled and vm.automatic_checkpoints
    with pytest.raises(CheckpointsDisabled):
        host.create_checkpoint(WEB, "x")


def test_time_moves_the_host(host: WinRMHost, clock: FakeClock) -> None:
    host.create_checkpoint(WEB, "a")
    clock.tick(100)
    assert host.list_checkpoints(WEB)[0].size_bytes == AVHDX_INITIAL_BYTES + 100 * MiB
    assert host.get_vm(WEB).uptime_seconds == 100


def test_a_closed_fleet_opens_new_sessions(fleet: SimulatedFleet) -> None:
    first = fleet.host("HV01")
    assert fleet.host("HV01") is first
    fleet.close()
    assert not first.is_open
    assert fleet.host("HV01") is not first and fleet.host("HV01").list_vms()
