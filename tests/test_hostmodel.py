"""The host model on its own, against Microsoft's documentation of Hyper-V.

Each expectation here comes from a documented behaviour, not from what the
bot's client expects:

- production checkpoints "use Volume Shadow Copy Service ... No snapshot of
  the virtual machine memory state is taken"; standard ones take "the
  virtual machine memory state"
  (learn.microsoft.com/virtualization/hyper-v-on-windows/user-guide/checkpoints);
- `Get-VMSnapshot -SnapshotType` names Standard, Recovery, Planned, ...:
  Planned is a planned VM's snapshot, never what Checkpoint-VM takes;
- `Set-VM -CheckpointType Production`: "Create production checkpoints if
  supported by guest operating system. Otherwise, create standard
  checkpoints"; ProductionOnly: "Otherwise, the operation fails".
"""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.devtools.hostmodel import (
    CheckpointType,
    DiskSpec,
    GuestSpec,
    HostError,
    HostModel,
    HostSpec,
    InMemoryHostStateStore,
    ModelHost,
    ReplicationSpec,
    SnapshotType,
    VMOperationalStatus,
    VMReplicationState,
    VMSpec,
    VMState,
    VolumeSpec,
    seed_missing,
)
from bot.devtools.hostmodel.engine import checkpoint_size
from bot.devtools.hostmodel.host import AVHDX_INITIAL_BYTES, MERGE_BYTES_PER_SECOND

GiB = 1024**3
MiB = 1024**2
WEB = "6f1c2a0e-0000-4000-8000-000000000001"
SQL = "6f1c2a0e-0000-4000-8000-000000000002"
OFF = "6f1c2a0e-0000-4000-8000-000000000003"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
# 1 MiB/s, as a write rate in the file's unit.
ONE_MIB_PER_S = 3600.0


class FakeClock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def vm(name: str, vm_id: str, **fields: object) -> VMSpec:
    values: dict[str, object] = {
        "name": name,
        "vm_id": vm_id,
        "memory_gb": 4,
        "write_mb_per_hour": ONE_MIB_PER_S,
        "guest": GuestSpec(fqdn=f"{name.lower()}.corp.example", product_type=3),
    }
    values.update(fields)
    return VMSpec.model_validate(values)


def model_host(
    clock: FakeClock, *vms: VMSpec, capacity_gb: float = 100, used_gb: float = 40
) -> tuple[ModelHost, InMemoryHostStateStore]:
    store = InMemoryHostStateStore()
    specs = list(vms) or [vm("WEB01", WEB), vm("OFF01", OFF, state="Off")]
    model = HostModel(
        hosts=[
            HostSpec(
                name="HV01",
                volumes=[VolumeSpec(path="D:\\", capacity_gb=capacity_gb, used_gb=used_gb)],
                vms=specs,
            )
        ]
    )
    seed_missing(store, model)
    return ModelHost("HV01", store, clock), store


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def host(clock: FakeClock) -> ModelHost:
    return model_host(clock)[0]


# -- what a checkpoint is ---------------------------------------------------------


def test_a_production_checkpoint_of_a_running_vm_is_standard_and_holds_no_memory(
    host: ModelHost, clock: FakeClock
) -> None:
    snap = host.checkpoint_vm(WEB, "before KB5044284")
    assert snap.snapshot_type is SnapshotType.Standard  # never Planned
    assert snap.state is VMState.Off  # no memory state was taken
    assert snap.size_of_system_files == AVHDX_INITIAL_BYTES  # no saved memory with it
    assert snap.creation_time == clock.now and not snap.is_automatic_checkpoint
    assert (snap.vm_name, snap.computer_name) == ("WEB01", "HV01")
    assert snap.path == "D:\\Hyper-V\\WEB01\\Snapshots"
    assert host.get_vm(WEB).state is VMState.Running  # the VM itself ran on


def test_production_falls_back_to_a_standard_checkpoint_when_vss_fails(clock: FakeClock) -> None:
    host, _ = model_host(clock, vm("WEB01", WEB, guest=GuestSpec(vss=False), memory_gb=2))
    snap = host.checkpoint_vm(WEB, "fallback")
    assert snap.snapshot_type is SnapshotType.Standard
    assert snap.state is VMState.Running  # it holds the running VM's memory
    assert snap.size_of_system_files == AVHDX_INITIAL_BYTES + 2 * GiB


def test_production_only_fails_with_the_hosts_text_and_leaves_nothing(clock: FakeClock) -> None:
    spec = vm("SQL01", SQL, guest=GuestSpec(vss=False), checkpoint_type="ProductionOnly")
    host, store = model_host(clock, spec)
    with pytest.raises(HostError) as err:
        host.checkpoint_vm(SQL, "x")
    text = err.value.message
    assert text.startswith(
        "Checkpoint operation failed.\nProduction checkpoints cannot be created."
    )
    assert (
        f"Production checkpoints cannot be created for 'SQL01'. (Virtual machine ID {SQL.upper()})"
        in text
    )
    assert err.value.category == "InvalidOperation"
    assert err.value.error_id == "OperationFailed,Microsoft.HyperV.PowerShell.Commands.CheckpointVM"
    assert host.get_snapshots() == [] and store.read("HV01").checkpoints == {}


@pytest.mark.parametrize("state", ["Saved", "Paused"])
def test_a_guest_that_does_not_run_cannot_freeze(clock: FakeClock, state: str) -> None:
    host, _ = model_host(
        clock,
        vm("WEB01", WEB, state=state),
        vm("SQL01", SQL, state=state, checkpoint_type="ProductionOnly"),
    )
    fallback = host.checkpoint_vm(WEB, "x")
    assert fallback.state is VMState[state]  # standard, with the saved/paused memory
    with pytest.raises(HostError, match="Production checkpoints cannot be created"):
        host.checkpoint_vm(SQL, "x")


def test_a_vm_that_is_off_needs_no_vss(clock: FakeClock) -> None:
    host, _ = model_host(clock, vm("OFF01", OFF, state="Off", guest=GuestSpec(vss=False)))
    snap = host.checkpoint_vm(OFF, "x")
    assert (snap.snapshot_type, snap.state) == (SnapshotType.Standard, VMState.Off)
    assert snap.size_of_system_files == AVHDX_INITIAL_BYTES


def test_a_standard_checkpoint_holds_the_vms_state(clock: FakeClock) -> None:
    host, _ = model_host(
        clock,
        vm("WEB01", WEB, checkpoint_type="Standard"),
        vm("OFF01", OFF, checkpoint_type="Standard", state="Off"),
    )
    running = host.checkpoint_vm(WEB, "std")
    assert (running.snapshot_type, running.state) == (SnapshotType.Standard, VMState.Running)
    assert running.size_of_system_files == AVHDX_INITIAL_BYTES + 4 * GiB
    assert host.checkpoint_vm(OFF, "std").state is VMState.Off


def test_unnamed_checkpoints_are_named_by_the_host(host: ModelHost) -> None:
    assert host.checkpoint_vm(OFF, "").name == "OFF01 - (03/02/2026 - 09:00:00 AM)"


# -- restore ----------------------------------------------------------------------


def test_restoring_a_checkpoint_without_memory_leaves_the_vm_off(
    host: ModelHost, clock: FakeClock
) -> None:
    snap = host.checkpoint_vm(WEB, "prod")
    clock.tick(600)
    host.restore_snapshot(snap.id)
    restored = host.get_vm(WEB)
    assert restored.state is VMState.Off and restored.uptime == timedelta(0)
    assert restored.parent_snapshot_id == snap.id
    host.start_vm(WEB)
    clock.tick(30)
    assert host.get_vm(WEB).uptime == timedelta(seconds=30)


def test_restoring_a_checkpoint_with_memory_leaves_the_vm_saved(clock: FakeClock) -> None:
    host, _ = model_host(clock, vm("WEB01", WEB, guest=GuestSpec(vss=False)))
    snap = host.checkpoint_vm(WEB, "fell back, with memory")
    host.restore_snapshot(snap.id)
    assert host.get_vm(WEB).state is VMState.Saved
    host.start_vm(WEB)  # resumes the saved memory
    assert host.get_vm(WEB).state is VMState.Running


def test_restore_breaks_hyperv_replica(clock: FakeClock) -> None:
    host, _ = model_host(clock, vm("WEB01", WEB, replication=ReplicationSpec()))
    assert host.get_vm(WEB).replication_state is VMReplicationState.Replicating
    snap = host.checkpoint_vm(WEB, "x")
    host.restore_snapshot(snap.id)
    assert host.get_vm(WEB).replication_state is VMReplicationState.WaitingForStartResynchronize
    assert host.replication(WEB).state is VMReplicationState.WaitingForStartResynchronize


# -- the checkpoint tree ------------------------------------------------------------


def test_the_tree_follows_the_vms_parent(host: ModelHost, clock: FakeClock) -> None:
    a = host.checkpoint_vm(WEB, "a")
    clock.tick(60)
    b = host.checkpoint_vm(WEB, "b")
    assert (a.parent_snapshot_id, b.parent_snapshot_id, b.parent_snapshot_name) == (None, a.id, "a")
    assert host.get_vm(WEB).parent_snapshot_name == "b"
    host.restore_snapshot(a.id)
    c = host.checkpoint_vm(WEB, "c")  # a branch beside b
    assert c.parent_snapshot_id == a.id
    assert [s.name for s in host.get_snapshots()] == ["a", "b", "c"]


def test_remove_reparents_children_and_with_children_removes_the_subtree(
    host: ModelHost, clock: FakeClock
) -> None:
    a = host.checkpoint_vm(WEB, "a")
    b = host.checkpoint_vm(WEB, "b")
    c = host.checkpoint_vm(WEB, "c")
    host.checkpoint_vm(OFF, "other vm")
    host.remove_snapshot(b.id)
    by_id = {s.id: s for s in host.get_snapshots() if s.vm_id == WEB}
    assert set(by_id) == {a.id, c.id} and by_id[c.id].parent_snapshot_id == a.id
    clock.tick(3600)
    host.remove_snapshot(a.id, include_children=True)
    assert [s.vm_id for s in host.get_snapshots()] == [OFF]
    assert host.get_vm(WEB).parent_snapshot_id is None


def test_fifty_checkpoints_then_the_limit(clock: FakeClock) -> None:
    host, _ = model_host(clock, vm("WEB01", WEB, state="Off"), capacity_gb=10_000)
    for i in range(50):
        host.checkpoint_vm(WEB, f"cp{i}")
    with pytest.raises(HostError, match="maximum number of checkpoints"):
        host.checkpoint_vm(WEB, "one too many")
    assert len(host.get_snapshots()) == 50


def test_disabled_checkpoints_fail_with_the_hosts_text(clock: FakeClock) -> None:
    host, _ = model_host(clock, vm("WEB01", WEB, checkpoint_type="Disabled"))
    with pytest.raises(HostError) as err:
        host.checkpoint_vm(WEB, "x")
    assert err.value.message.startswith(
        "Checkpoint operation failed.\nCheckpoints have been disabled."
    )
    assert f"Checkpoints have been disabled for 'WEB01'. (Virtual machine ID {WEB.upper()})" in (
        err.value.message
    )
    assert err.value.error_id.endswith("Microsoft.HyperV.PowerShell.Commands.CheckpointVM")
    assert host.get_vm(WEB).parent_snapshot_id is None  # nothing half done


@pytest.mark.parametrize(
    ("disk", "text"),
    [
        (DiskSpec(path="Disk 3", passthrough=True), "passthrough disks"),
        (DiskSpec(path="vfc0", fibre_channel=True), "virtual Fibre Channel"),
        (DiskSpec(path="C:\\ClusterStorage\\q.vhdx", shared=True), "shared virtual hard disks"),
    ],
)
def test_unsupported_disks_block_checkpoints(clock: FakeClock, disk: DiskSpec, text: str) -> None:
    host, _ = model_host(clock, vm("CL01", WEB, disks=[DiskSpec(path="D:\\a.vhdx"), disk]))
    with pytest.raises(HostError) as err:
        host.checkpoint_vm(WEB, "x")
    assert text in err.value.message and "Checkpoint operation failed." in err.value.message


def test_a_vhd_set_can_be_checkpointed(clock: FakeClock) -> None:
    host, _ = model_host(clock, vm("CL01", WEB, disks=[DiskSpec(path="C:\\q.vhds", shared=True)]))
    assert host.checkpoint_vm(WEB, "x").vm_id == WEB


# -- hosts and VMs ---------------------------------------------------------------------


def test_a_vm_asked_on_the_wrong_host_is_not_found(clock: FakeClock) -> None:
    store = InMemoryHostStateStore()
    seed_missing(
        store,
        HostModel(
            hosts=[
                HostSpec(
                    name="HV01",
                    volumes=[VolumeSpec(path="D:", capacity_gb=10)],
                    vms=[vm("WEB01", WEB)],
                ),
                HostSpec(name="HV02", volumes=[VolumeSpec(path="D:", capacity_gb=10)]),
            ]
        ),
    )
    hv02 = ModelHost("HV02", store, clock)
    for attempt in (lambda: hv02.get_vm(WEB), lambda: hv02.checkpoint_vm(WEB, "x")):
        with pytest.raises(HostError) as err:
            attempt()
        assert err.value.message == f'Hyper-V was unable to find a virtual machine with ID "{WEB}".'
        assert err.value.category == "InvalidArgument"
        assert err.value.error_id == "InvalidParameter,Microsoft.HyperV.PowerShell.Commands.GetVM"
    assert ModelHost("HV01", store, clock).get_vm(WEB).name == "WEB01"


def test_a_checkpoint_removed_behind_the_bots_back_is_gone(
    host: ModelHost, clock: FakeClock
) -> None:
    kept = host.checkpoint_vm(WEB, "kept")
    gone = host.checkpoint_vm(WEB, "deleted in Hyper-V Manager")
    host.remove_behind_back(gone.id)
    assert [s.id for s in host.get_snapshots()] == [kept.id]
    assert host.get_vm(WEB).merging  # the host merges it like any other deletion
    with pytest.raises(HostError, match="Unable to find a snapshot matching the given criteria"):
        host.restore_snapshot(gone.id)


def test_kvp_items_come_only_from_a_running_guest_that_exchanges_them(clock: FakeClock) -> None:
    host, _ = model_host(
        clock,
        vm(
            "DC01",
            WEB,
            guest=GuestSpec(fqdn="dc01.corp.example", os_name="WS 2022", product_type=2),
        ),
        vm("NOKVP", SQL, guest=GuestSpec(fqdn="nokvp.corp.example", kvp=False)),
        vm("OFF01", OFF, state="Off", guest=GuestSpec(product_type=3)),
    )
    assert dict(host.kvp(WEB).items) == {
        "FullyQualifiedDomainName": "dc01.corp.example",
        "OSName": "WS 2022",
        "ProductType": "2",
    }
    assert host.kvp(SQL).items == () and host.kvp(OFF).items == ()


def test_replication_and_disks_are_the_hosts(clock: FakeClock) -> None:
    host, _ = model_host(
        clock,
        vm(
            "APP01",
            WEB,
            replication=ReplicationSpec(replica_server="dr.example"),
            disks=[
                DiskSpec(path="D:\\APP01.vhdx"),
                DiskSpec(path="Disk 2", passthrough=True),
                DiskSpec(path="vfc", fibre_channel=True),
                DiskSpec(path="D:\\boot.vhdx", controller="IDE"),
            ],
        ),
        vm("WEB01", SQL),
    )
    drives = host.hard_disk_drives(WEB)
    # A virtual Fibre Channel adapter is not a hard disk drive.
    assert [(d.path, d.controller_type.name, d.controller_location) for d in drives] == [
        ("D:\\APP01.vhdx", "SCSI", 0),
        ("Disk 2", "SCSI", 1),
        ("D:\\boot.vhdx", "IDE", 0),
    ]
    assert drives[1].disk_number == 2 and drives[0].disk_number is None
    assert host.replication(WEB).replica_server == "dr.example"
    with pytest.raises(HostError, match="Replication is not enabled for virtual machine 'WEB01'"):
        host.replication(SQL)


# -- time and space ---------------------------------------------------------------------


def test_merge_takes_time_and_blocks_restore_and_remove(host: ModelHost, clock: FakeClock) -> None:
    a = host.checkpoint_vm(WEB, "a")
    b = host.checkpoint_vm(WEB, "b")
    clock.tick(1000)  # 1000 MiB written into b's differencing disk
    free_before = host.volumes()[0].free_bytes
    host.remove_snapshot(b.id)
    assert host.get_vm(WEB).operational_status == (VMOperationalStatus.MergingDisks,)
    for attempt in (lambda: host.restore_snapshot(a.id), lambda: host.remove_snapshot(a.id)):
        with pytest.raises(HostError) as err:
            attempt()
        assert "in its current state" in err.value.message
        assert err.value.error_id.startswith("InvalidState,")
    merge_seconds = max(5.0, AVHDX_INITIAL_BYTES / MERGE_BYTES_PER_SECOND)
    clock.tick(merge_seconds - 0.5)
    assert host.get_vm(WEB).merging
    clock.tick(1)
    assert not host.get_vm(WEB).merging
    grown = int((merge_seconds + 0.5) * MiB)
    assert host.volumes()[0].free_bytes == free_before + AVHDX_INITIAL_BYTES - grown
    host.restore_snapshot(a.id)  # allowed again


def test_disk_growth_consumes_the_volume(host: ModelHost, clock: FakeClock) -> None:
    start = host.volumes()[0]
    assert (start.capacity_bytes, start.free_bytes) == (100 * GiB, 60 * GiB)
    clock.tick(100)  # no checkpoint yet: writes land in the base disk
    assert host.volumes()[0].free_bytes == 60 * GiB
    snap = host.checkpoint_vm(WEB, "a")
    clock.tick(100)
    assert host.get_snapshots()[0].size_of_system_files == AVHDX_INITIAL_BYTES + 100 * MiB
    assert host.volumes()[0].free_bytes == 60 * GiB - AVHDX_INITIAL_BYTES - 100 * MiB
    host.restore_snapshot(snap.id)  # discards the writes; the VM is off now
    clock.tick(100)
    assert host.volumes()[0].free_bytes == 60 * GiB - AVHDX_INITIAL_BYTES


def test_a_full_volume_pauses_running_vms(clock: FakeClock) -> None:
    host, _ = model_host(
        clock, vm("WEB01", WEB, write_mb_per_hour=100 * ONE_MIB_PER_S), capacity_gb=41
    )
    host.checkpoint_vm(WEB, "a")
    clock.tick(5)
    assert host.get_vm(WEB).state is VMState.Running
    clock.tick(3600)
    assert host.get_vm(WEB).state is VMState.Paused
    assert host.volumes()[0].free_bytes == 0
    with pytest.raises(HostError, match=r"There is not enough space on the disk\."):
        host.checkpoint_vm(WEB, "no room")


def test_reads_store_nothing(host: ModelHost, clock: FakeClock) -> None:
    host.checkpoint_vm(WEB, "a")
    store_state = host._store.read("HV01")  # type: ignore[attr-defined]
    clock.tick(3600)
    host.get_vms()
    host.get_snapshots()
    assert host._store.read("HV01") == store_state  # type: ignore[attr-defined]


# -- the model stays its own ----------------------------------------------------------------

_CLIENT = (
    "bot.hyperv.types",
    "bot.hyperv.interface",
    "bot.hyperv.errors",
    "bot.hyperv.winrm",
    "bot.hyperv.evidence",
    "bot.devtools.simulator.fleet",
    "bot.devtools.simulator.session",
    "bot.inventory",
)


@pytest.mark.parametrize("package", ["hostmodel", "emulator"])
def test_the_model_and_the_emulator_import_nothing_of_the_client(package: str) -> None:
    folder = Path(__file__).resolve().parents[1] / "bot" / "hyperv" / package
    for module in folder.glob("*.py"):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                assert not name.startswith(_CLIENT), f"{package}/{module.name} imports {name}"


# -- property: random operation sequences keep the invariants ------------------------------

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
    host, store = model_host(
        clock,
        vm("WEB01", WEB, write_mb_per_hour=20 * ONE_MIB_PER_S, memory_gb=1),
        vm("SQL01", SQL, checkpoint_type="Standard", memory_gb=1),
        capacity_gb=12,
        used_gb=4,
    )
    for op, vm_id, n in ops:
        mine = [s.id for s in host.get_snapshots() if s.vm_id == vm_id]
        pick = mine[n % len(mine)] if mine else "00000000-0000-4000-8000-00000000dead"
        try:
            if op == "create":
                host.checkpoint_vm(vm_id, "same name")
            elif op == "restore":
                host.restore_snapshot(pick)
            elif op in ("remove", "remove_tree"):
                host.remove_snapshot(pick, include_children=op == "remove_tree")
            elif op == "start":
                host.start_vm(vm_id)
            else:
                clock.tick(n)
        except HostError:
            pass
        _check_invariants(store, clock)


def _check_invariants(store: InMemoryHostStateStore, clock: FakeClock) -> None:
    state = store.read("HV01")
    for vm_id in state.vms:
        mine = {cp.id: cp for cp in state.checkpoints.values() if cp.vm_id == vm_id}
        assert len(mine) <= 50
        for cp in mine.values():
            assert cp.snapshot_type is SnapshotType.Standard
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
    as_of = state.as_of or T0
    assert ModelHost("HV01", store, lambda: as_of).volumes()[0].free_bytes == free
    assert CheckpointType.Disabled not in {v.checkpoint_type for v in state.vms.values()}
