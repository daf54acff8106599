"""The simulated host keeps Hyper-V's checkpoint semantics, under a hand-driven clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.hyperv import (
    CheckpointLimitReached,
    CheckpointNotFound,
    CheckpointsDisabled,
    CheckpointType,
    DiskInfo,
    HostUnreachable,
    HyperVError,
    HyperVHost,
    InsufficientSpace,
    InvalidVMState,
    PowerShellError,
    ProductionCheckpointFailed,
    SnapshotType,
    VMNotFound,
    VMState,
)
from bot.hyperv.sim_engine import checkpoint_size
from bot.hyperv.sim_state import SimVMSpec, SimVolumeSpec, seed_host_state
from bot.hyperv.sim_store import InMemoryHostStateStore
from bot.hyperv.simulator import (
    AVHDX_INITIAL_BYTES,
    MERGE_BYTES_PER_SECOND,
    SimulatedFleet,
    SimulatedHost,
)

GiB = 1024**3
MiB = 1024**2
WEB = "6f1c2a0e-0000-4000-8000-000000000001"
SQL = "6f1c2a0e-0000-4000-8000-000000000002"
OFF = "6f1c2a0e-0000-4000-8000-000000000003"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def _vm(name: str, vm_id: str, **overrides: object) -> SimVMSpec:
    fields: dict[str, object] = {
        "name": name,
        "vm_id": vm_id,
        "state": VMState.Running,
        "checkpoint_type": CheckpointType.Production,
        "kvp_product_type": 3,
        "fqdn": f"{name.lower()}.corp.example",
        "os_name": "Windows Server 2022 Datacenter",
        "memory_bytes": 4 * GiB,
        "write_rate_bytes_per_s": 1 * MiB,
        "volume_path": "D:\\",
        "disks": (DiskInfo(path=f"D:\\Hyper-V\\{name}\\Virtual Hard Disks\\{name}.vhdx"),),
    }
    fields.update(overrides)
    return SimVMSpec(**fields)  # type: ignore[arg-type]


def _host(clock: FakeClock, *vms: SimVMSpec, capacity: int = 100 * GiB) -> SimulatedHost:
    store = InMemoryHostStateStore()
    specs = vms or (_vm("WEB01", WEB), _vm("OFF01", OFF, state=VMState.Off))
    volumes = [SimVolumeSpec("D:\\", capacity, 40 * GiB)]
    store.seed(seed_host_state("HV01", specs, volumes))
    return SimulatedFleet(store, clock).host("HV01")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def host(clock: FakeClock) -> SimulatedHost:
    return _host(clock)


def test_implements_the_protocol_and_lists_vms(host: SimulatedHost) -> None:
    assert isinstance(host, HyperVHost)
    assert [(vm.name, vm.state) for vm in host.list_vms()] == [
        ("OFF01", VMState.Off),
        ("WEB01", VMState.Running),
    ]


def test_checkpoint_tree_follows_the_vms_parent(host: SimulatedHost, clock: FakeClock) -> None:
    a = host.create_checkpoint(WEB, "a")
    clock.tick(60)
    b = host.create_checkpoint(WEB, "b")
    assert (a.parent_id, b.parent_id) == (None, a.id)
    assert host.get_vm(WEB).parent_checkpoint_id == b.id
    host.restore_checkpoint(WEB, a.id)
    assert host.get_vm(WEB).parent_checkpoint_id == a.id
    c = host.create_checkpoint(WEB, "c")  # a branch beside b
    assert c.parent_id == a.id
    assert [cp.name for cp in host.list_checkpoints(WEB)] == ["a", "b", "c"]


def test_created_checkpoint_fields(host: SimulatedHost, clock: FakeClock) -> None:
    cp = host.create_checkpoint(WEB, "before KB5044284")
    assert cp.created_at == clock.now
    assert cp.snapshot_type == SnapshotType.Planned
    assert cp.path == f"D:\\Hyper-V\\WEB01\\Snapshots\\{cp.id.upper()}.avhdx"
    assert (cp.host, cp.vm_id, cp.vm_name) == ("HV01", WEB, "WEB01")
    unnamed = host.create_checkpoint(OFF, "")
    assert unnamed.name == "OFF01 - (03/02/2026 - 09:00:00 AM)"


def test_remove_reparents_children(host: SimulatedHost, clock: FakeClock) -> None:
    a = host.create_checkpoint(WEB, "a")
    b = host.create_checkpoint(WEB, "b")
    c = host.create_checkpoint(WEB, "c")
    host.remove_checkpoint(WEB, b.id)
    by_id = {cp.id: cp for cp in host.list_checkpoints(WEB)}
    assert set(by_id) == {a.id, c.id}
    assert by_id[c.id].parent_id == a.id
    clock.tick(3600)
    host.remove_checkpoint(WEB, a.id)
    assert host.list_checkpoints(WEB)[0].parent_id is None


def test_remove_with_children_removes_the_subtree(host: SimulatedHost, clock: FakeClock) -> None:
    a = host.create_checkpoint(WEB, "a")
    b = host.create_checkpoint(WEB, "b")
    host.restore_checkpoint(WEB, a.id)
    c = host.create_checkpoint(WEB, "c")
    host.create_checkpoint(OFF, "other vm")
    host.remove_checkpoint(WEB, b.id, include_children=True)
    assert {cp.id for cp in host.list_checkpoints(WEB)} == {a.id, c.id}
    clock.tick(60)  # let the merge finish
    host.remove_checkpoint(WEB, a.id, include_children=False)
    host_after = host.list_checkpoints(WEB)
    assert [cp.id for cp in host_after] == [c.id] and host_after[0].parent_id is None
    assert host.get_vm(WEB).parent_checkpoint_id == c.id
    assert len(host.list_checkpoints(OFF)) == 1


def test_fifty_checkpoints_then_the_limit(clock: FakeClock) -> None:
    host = _host(clock, _vm("WEB01", WEB, state=VMState.Off), capacity=10_000 * GiB)
    for i in range(50):
        host.create_checkpoint(WEB, f"cp{i}")
    with pytest.raises(CheckpointLimitReached) as err:
        host.create_checkpoint(WEB, "one too many")
    assert "maximum number of checkpoints" in err.value.message
    assert len(host.list_checkpoints(WEB)) == 50
    assert host.vm_facts(WEB).checkpoint_count == 50


def test_disabled_checkpoints_fail_with_hyperv_text(clock: FakeClock) -> None:
    host = _host(clock, _vm("WEB01", WEB, checkpoint_type=CheckpointType.Disabled))
    with pytest.raises(CheckpointsDisabled) as err:
        host.create_checkpoint(WEB, "x")
    text = err.value.message
    assert text.startswith("Checkpoint operation failed.")
    assert f"Checkpoints have been disabled for 'WEB01'. (Virtual machine ID {WEB.upper()})" in text
    assert err.value.host == "HV01"
    assert err.value.error_id.endswith("Microsoft.HyperV.PowerShell.Commands.CheckpointVM")
    assert host.list_checkpoints(WEB) == []


def test_production_falls_back_to_standard_without_vss(clock: FakeClock) -> None:
    host = _host(clock, _vm("WEB01", WEB, vss_available=False, memory_bytes=2 * GiB))
    cp = host.create_checkpoint(WEB, "fallback")
    assert cp.snapshot_type == SnapshotType.Standard
    assert cp.size_bytes == AVHDX_INITIAL_BYTES + 2 * GiB  # memory state included


def test_production_only_fails_without_vss(clock: FakeClock) -> None:
    spec = _vm("SQL01", SQL, vss_available=False, checkpoint_type=CheckpointType.ProductionOnly)
    host = _host(clock, spec)
    with pytest.raises(ProductionCheckpointFailed) as err:
        host.create_checkpoint(SQL, "x")
    assert "Production checkpoints cannot be created for 'SQL01'." in err.value.message
    assert host.list_checkpoints(SQL) == []


def test_production_of_an_off_vm_needs_no_vss(clock: FakeClock) -> None:
    spec = _vm("OFF01", OFF, state=VMState.Off, vss_available=False)
    cp = _host(clock, spec).create_checkpoint(OFF, "x")
    assert cp.snapshot_type == SnapshotType.Planned
    assert cp.size_bytes == AVHDX_INITIAL_BYTES


def test_standard_checkpoint_of_running_vm_holds_memory(clock: FakeClock) -> None:
    host = _host(clock, _vm("WEB01", WEB, checkpoint_type=CheckpointType.Standard))
    cp = host.create_checkpoint(WEB, "std")
    assert cp.snapshot_type == SnapshotType.Standard
    assert cp.size_bytes == AVHDX_INITIAL_BYTES + 4 * GiB


def test_restoring_production_leaves_vm_off(host: SimulatedHost, clock: FakeClock) -> None:
    cp = host.create_checkpoint(WEB, "prod")
    clock.tick(600)
    vm = host.restore_checkpoint(WEB, cp.id)
    assert vm.state == VMState.Off and vm.uptime_seconds == 0
    started = host.start_vm(WEB)
    assert started.state == VMState.Running
    clock.tick(30)
    assert host.get_vm(WEB).uptime_seconds == 30


def test_restoring_standard_returns_to_the_state_when_taken(clock: FakeClock) -> None:
    host = _host(
        clock,
        _vm("WEB01", WEB, checkpoint_type=CheckpointType.Standard),
        _vm("OFF01", OFF, checkpoint_type=CheckpointType.Standard, state=VMState.Off),
    )
    running = host.create_checkpoint(WEB, "while running")
    off = host.create_checkpoint(OFF, "while off")
    host.start_vm(OFF)
    # Running-state checkpoints come back Saved (memory restored, resumed by Start-VM).
    assert host.restore_checkpoint(WEB, running.id).state == VMState.Saved
    assert host.restore_checkpoint(OFF, off.id).state == VMState.Off


def test_restore_breaks_hyperv_replica(clock: FakeClock) -> None:
    host = _host(clock, _vm("WEB01", WEB, replication_enabled=True))
    assert host.get_vm(WEB).replication_state == "Replicating"
    cp = host.create_checkpoint(WEB, "x")
    assert host.restore_checkpoint(WEB, cp.id).replication_state == "WaitingForStartResynchronize"


def test_merge_takes_time_and_blocks_restore_and_remove(
    host: SimulatedHost, clock: FakeClock
) -> None:
    a = host.create_checkpoint(WEB, "a")
    b = host.create_checkpoint(WEB, "b")
    clock.tick(1000)  # 1000 MiB written into b's differencing disk
    free_before = host.volumes()[0].free_bytes
    host.remove_checkpoint(WEB, b.id)
    assert host.get_vm(WEB).merging
    for attempt in (
        lambda: host.restore_checkpoint(WEB, a.id),
        lambda: host.remove_checkpoint(WEB, a.id),
    ):
        with pytest.raises(InvalidVMState) as err:
            attempt()
        assert "in its current state" in err.value.message
    # b's disk (4 MiB + its frozen share) merges at MERGE_BYTES_PER_SECOND, at least 5 s.
    merge_seconds = max(5.0, AVHDX_INITIAL_BYTES / MERGE_BYTES_PER_SECOND)
    clock.tick(merge_seconds - 0.5)
    assert host.get_vm(WEB).merging
    clock.tick(1)
    assert not host.get_vm(WEB).merging
    # The live disk kept growing while merging; b's own .avhdx came back.
    free_after = host.volumes()[0].free_bytes
    grown = int((merge_seconds + 0.5) * MiB)
    assert free_after == free_before + AVHDX_INITIAL_BYTES - grown
    host.restore_checkpoint(WEB, a.id)  # allowed again


def test_merge_duration_is_proportional_to_size(host: SimulatedHost, clock: FakeClock) -> None:
    a = host.create_checkpoint(WEB, "a")
    clock.tick(1280)  # 1280 MiB live under a
    host.create_checkpoint(WEB, "b")  # freezes them into a
    host.remove_checkpoint(WEB, a.id)
    expected = (1280 * MiB + AVHDX_INITIAL_BYTES) / MERGE_BYTES_PER_SECOND
    clock.tick(expected - 1)
    assert host.get_vm(WEB).merging
    clock.tick(1)
    assert not host.get_vm(WEB).merging


def test_names_are_not_unique(host: SimulatedHost) -> None:
    one = host.create_checkpoint(WEB, "pre-patch")
    two = host.create_checkpoint(WEB, "pre-patch")
    assert one.id != two.id
    host.remove_checkpoint(WEB, one.id)
    assert [cp.id for cp in host.list_checkpoints(WEB)] == [two.id]


def test_checkpoint_of_another_vm_is_not_found(host: SimulatedHost) -> None:
    theirs = host.create_checkpoint(OFF, "theirs")
    for attempt in (
        lambda: host.restore_checkpoint(WEB, theirs.id),
        lambda: host.remove_checkpoint(WEB, theirs.id),
    ):
        with pytest.raises(CheckpointNotFound) as err:
            attempt()
        assert err.value.message == "Unable to find a snapshot matching the given criteria."
        assert err.value.category == "ObjectNotFound"
    assert len(host.list_checkpoints(OFF)) == 1


def test_unknown_vm_and_host(host: SimulatedHost, clock: FakeClock) -> None:
    missing = "00000000-0000-0000-0000-00000000dead"
    for attempt in (
        lambda: host.get_vm(missing),
        lambda: host.vm_facts(missing),
        lambda: host.list_checkpoints(missing),
        lambda: host.create_checkpoint(missing, "x"),
        lambda: host.start_vm(missing),
    ):
        with pytest.raises(VMNotFound) as err:
            attempt()
        assert (
            err.value.message
            == f'Hyper-V was unable to find a virtual machine with ID "{missing}".'
        )
        assert err.value.error_id == "InvalidParameter,Microsoft.HyperV.PowerShell.Commands.GetVM"
    with pytest.raises(HostUnreachable):
        SimulatedFleet(InMemoryHostStateStore(), clock).host("HV99")


def test_disk_growth_consumes_the_volume(host: SimulatedHost, clock: FakeClock) -> None:
    start = host.volumes()[0]
    assert (start.capacity_bytes, start.free_bytes) == (100 * GiB, 60 * GiB)
    clock.tick(100)  # no checkpoint yet: writes land in the base disk
    assert host.volumes()[0].free_bytes == 60 * GiB
    cp = host.create_checkpoint(WEB, "a")
    clock.tick(100)
    assert host.list_checkpoints(WEB)[0].size_bytes == AVHDX_INITIAL_BYTES + 100 * MiB
    assert host.volumes()[0].free_bytes == 60 * GiB - AVHDX_INITIAL_BYTES - 100 * MiB
    host.restore_checkpoint(WEB, cp.id)  # discards the writes; VM is off now
    clock.tick(100)
    assert host.volumes()[0].free_bytes == 60 * GiB - AVHDX_INITIAL_BYTES


def test_full_volume_pauses_running_vms(clock: FakeClock) -> None:
    host = _host(clock, _vm("WEB01", WEB, write_rate_bytes_per_s=100 * MiB), capacity=41 * GiB)
    host.create_checkpoint(WEB, "a")
    clock.tick(5)
    assert host.get_vm(WEB).state == VMState.Running
    clock.tick(3600)
    assert host.get_vm(WEB).state == VMState.Paused
    assert host.volumes()[0].free_bytes == 0
    with pytest.raises(InsufficientSpace) as err:
        host.create_checkpoint(WEB, "no room")
    assert "There is not enough space on the disk." in err.value.message


@pytest.mark.parametrize(
    ("disk", "text"),
    [
        (DiskInfo(path="Disk 3", passthrough=True), "passthrough disks"),
        (DiskInfo(path="vfc0", fibre_channel=True), "virtual Fibre Channel"),
        (DiskInfo(path="C:\\ClusterStorage\\q.vhdx", shared=True), "shared virtual hard disks"),
    ],
)
def test_unsupported_disks_block_checkpoints(clock: FakeClock, disk: DiskInfo, text: str) -> None:
    host = _host(clock, _vm("CL01", WEB, disks=(disk,)))
    with pytest.raises(PowerShellError) as err:
        host.create_checkpoint(WEB, "x")
    assert text in err.value.message and "Checkpoint operation failed." in err.value.message


def test_vhd_set_can_be_checkpointed(clock: FakeClock) -> None:
    host = _host(clock, _vm("CL01", WEB, disks=(DiskInfo(path="C:\\q.vhds", shared=True),)))
    assert host.create_checkpoint(WEB, "x").vm_id == WEB


def test_vm_facts(clock: FakeClock) -> None:
    host = _host(
        clock,
        _vm("DC01", WEB, kvp_product_type=2, replication_enabled=True),
        _vm("NOKVP", SQL, kvp_available=False),
        _vm("OFF01", OFF, state=VMState.Off),
    )
    host.create_checkpoint(WEB, "x")
    facts = host.vm_facts(WEB)
    assert (facts.kvp_product_type, facts.kvp_fqdn) == (2, "dc01.corp.example")
    assert facts.kvp_os_name == "Windows Server 2022 Datacenter"
    assert facts.replication_enabled is True and facts.checkpoint_count == 1
    assert facts.disks[0].path.endswith("DC01.vhdx")
    assert facts.volume is not None and facts.volume.path == "D:\\"
    for unknown in (SQL, OFF):  # guest not exchanging KVP: the fact is unknown
        other = host.vm_facts(unknown)
        assert (other.kvp_product_type, other.kvp_fqdn, other.kvp_os_name) == (None, None, None)


def test_set_checkpoint_settings(host: SimulatedHost) -> None:
    vm = host.set_checkpoint_settings(WEB, checkpoint_type=CheckpointType.Disabled)
    assert vm.checkpoint_type == CheckpointType.Disabled and not vm.automatic_checkpoints
    vm = host.set_checkpoint_settings(WEB, automatic_checkpoints=True)
    assert vm.checkpoint_type == CheckpointType.Disabled and vm.automatic_checkpoints
    with pytest.raises(CheckpointsDisabled):
        host.create_checkpoint(WEB, "x")


def test_failed_call_changes_nothing(clock: FakeClock) -> None:
    host = _host(clock, _vm("WEB01", WEB, checkpoint_type=CheckpointType.Disabled))
    with pytest.raises(CheckpointsDisabled):
        host.create_checkpoint(WEB, "x")
    assert host.get_vm(WEB).parent_checkpoint_id is None


# -- property: random operation sequences keep the invariants ----------------

_ops = st.lists(
    st.one_of(
        st.tuples(st.just("create"), st.sampled_from([WEB, SQL]), st.integers(0, 0)),
        st.tuples(st.just("restore"), st.sampled_from([WEB, SQL]), st.integers(0, 60)),
        st.tuples(st.just("remove"), st.sampled_from([WEB, SQL]), st.integers(0, 60)),
        st.tuples(st.just("remove_tree"), st.sampled_from([WEB, SQL]), st.integers(0, 60)),
        st.tuples(st.just("tick"), st.just(WEB), st.integers(0, 400)),
        st.tuples(st.just("start"), st.sampled_from([WEB, SQL]), st.integers(0, 0)),
    ),
    max_size=80,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=_ops)
def test_random_operations_keep_invariants(ops: list[tuple[str, str, int]]) -> None:
    clock = FakeClock()
    store = InMemoryHostStateStore()
    vms = (
        _vm("WEB01", WEB, write_rate_bytes_per_s=20 * MiB, memory_bytes=1 * GiB),
        _vm("SQL01", SQL, checkpoint_type=CheckpointType.Standard, memory_bytes=1 * GiB),
    )
    store.seed(seed_host_state("HV01", vms, [SimVolumeSpec("D:\\", 12 * GiB, 4 * GiB)]))
    host = SimulatedHost("HV01", store, clock)
    for op, vm_id, n in ops:
        mine = host.list_checkpoints(vm_id)
        pick = mine[n % len(mine)].id if mine else "no-such-checkpoint"
        try:
            if op == "create":
                host.create_checkpoint(vm_id, "same name")
            elif op == "restore":
                host.restore_checkpoint(vm_id, pick)
            elif op in ("remove", "remove_tree"):
                host.remove_checkpoint(vm_id, pick, include_children=op == "remove_tree")
            elif op == "start":
                host.start_vm(vm_id)
            else:
                clock.tick(n)
        except HyperVError:
            pass
        _check_invariants(store)


def _check_invariants(store: InMemoryHostStateStore) -> None:
    state = store.read("HV01")
    for vm_id in state.vms:
        mine = {cp.id: cp for cp in state.checkpoints.values() if cp.vm_id == vm_id}
        assert len(mine) <= 50
        for cp in mine.values():
            seen: set[str] = set()
            node = cp
            while node.parent_id is not None:
                assert node.parent_id in mine, "parent missing or on another VM"
                assert node.id not in seen, "cycle"
                seen.add(node.id)
                node = mine[node.parent_id]
        parent = state.vms[vm_id].parent_checkpoint_id
        assert parent is None or parent in mine
        if parent is None:
            assert state.vms[vm_id].live_bytes == 0
    volume = state.volumes["D:\\"]
    sizes = sum(checkpoint_size(state, cp) for cp in state.checkpoints.values())
    merging = sum(m.release_bytes for m in state.merges)
    free = volume.capacity_bytes - volume.used_bytes - sizes - merging
    assert free >= 0
    host = SimulatedHost("HV01", store, lambda: state.as_of or T0)
    assert host.volumes()[0].free_bytes == free
