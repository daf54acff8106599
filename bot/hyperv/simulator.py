"""A simulated Hyper-V host with Hyper-V's checkpoint semantics.

    SimulatedFleet(store, clock).host(name) -> SimulatedHost   (a HyperVHost)

Every call runs in one `store.edit(host)` transaction: the state is first
advanced to `clock()` (see `sim_engine`), then the operation acts, and a
failing operation leaves the stored state untouched. The error texts are in
`sim_messages`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from bot.hyperv import sim_messages as msg
from bot.hyperv.sim_engine import advance, checkpoint_size, free_bytes, is_merging
from bot.hyperv.sim_state import HostState, SimCheckpoint, SimMerge, SimVM
from bot.hyperv.sim_store import HostStateStore, UnknownHost
from bot.hyperv.types import (
    Checkpoint,
    CheckpointType,
    SnapshotType,
    VMFacts,
    VMInfo,
    VMState,
    Volume,
)

Clock = Callable[[], datetime]

# A new .avhdx starts at a few MiB (its header, BAT and metadata regions).
AVHDX_INITIAL_BYTES = 4 * 1024**2
# Merge speed: sequential copy on ordinary server storage. A small merge
# still takes a few seconds on a real host (the job, the config rewrite).
MERGE_BYTES_PER_SECOND = 128 * 1024**2
MERGE_MINIMUM = timedelta(seconds=5)

# Restoring a standard checkpoint taken while the VM ran puts the VM in
# Saved, not Running: Hyper-V applies "the disk state, runtime state, and
# configuration values ... [as] the starting point for the virtual computer
# system when it is next activated" (Msvm_VirtualSystemManagementService.
# ApplyVirtualSystemSnapshot, learn.microsoft.com), i.e. the memory comes
# back as a saved state that Start-VM resumes. Not verified on a live host;
# if one shows otherwise, change this table and its test.
_RESTORED_STATE = {
    VMState.Running: VMState.Saved,
    VMState.Paused: VMState.Saved,
    VMState.Saved: VMState.Saved,
}
# "Resynchronization required": reverting a replicated VM breaks the
# replica's chain (DOMAIN.md), shown by Get-VM as this ReplicationState.
_RESYNC_REQUIRED = "WaitingForStartResynchronize"


def _new_id() -> str:
    return str(uuid.uuid4())


class SimulatedHost:
    def __init__(
        self,
        name: str,
        store: HostStateStore,
        clock: Clock,
        *,
        new_id: Callable[[], str] = _new_id,
    ) -> None:
        self._name = name
        self._store = store
        self._clock = clock
        self._new_id = new_id

    def __repr__(self) -> str:
        return f"SimulatedHost({self._name!r})"

    @property
    def name(self) -> str:
        return self._name

    @contextmanager
    def _state(self) -> Iterator[tuple[HostState, datetime]]:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the simulator's clock must return aware datetimes")
        try:
            with self._store.edit(self._name) as state:
                advance(state, now)
                yield state, now
        except UnknownHost as exc:
            raise msg.host_unknown(self._name) from exc

    def _vm(self, state: HostState, vm_id: str) -> SimVM:
        vm = state.vms.get(vm_id)
        if vm is None:
            raise msg.vm_not_found(self._name, vm_id)
        return vm

    def _checkpoint(self, state: HostState, vm: SimVM, checkpoint_id: str) -> SimCheckpoint:
        checkpoint = state.checkpoints.get(checkpoint_id)
        # `Get-VM -Id | Get-VMSnapshot -Id` finds nothing for another VM's id.
        if checkpoint is None or checkpoint.vm_id != vm.vm_id:
            raise msg.checkpoint_not_found(self._name)
        return checkpoint

    def _info(self, state: HostState, vm: SimVM, now: datetime) -> VMInfo:
        uptime = 0
        if vm.state in (VMState.Running, VMState.Paused) and vm.started_at is not None:
            uptime = max(0, int((now - vm.started_at).total_seconds()))
        return VMInfo(
            vm_id=vm.vm_id,
            name=vm.name,
            host=self._name,
            state=vm.state,
            checkpoint_type=vm.checkpoint_type,
            automatic_checkpoints=vm.automatic_checkpoints,
            merging=is_merging(state, vm.vm_id),
            replication_state=vm.replication_state,
            parent_checkpoint_id=vm.parent_checkpoint_id,
            uptime_seconds=uptime,
        )

    def _public(self, state: HostState, checkpoint: SimCheckpoint) -> Checkpoint:
        return Checkpoint(
            id=checkpoint.id,
            vm_id=checkpoint.vm_id,
            vm_name=state.vms[checkpoint.vm_id].name,
            host=self._name,
            name=checkpoint.name,
            parent_id=checkpoint.parent_id,
            created_at=checkpoint.created_at,
            snapshot_type=checkpoint.snapshot_type,
            size_bytes=checkpoint_size(state, checkpoint),
            path=checkpoint.path,
        )

    def _volume(self, state: HostState, path: str) -> Volume:
        volume = state.volumes[path]
        return Volume(
            host=self._name,
            path=path,
            capacity_bytes=volume.capacity_bytes,
            free_bytes=free_bytes(state, path),
        )

    # -- queries -------------------------------------------------------------

    def list_vms(self) -> list[VMInfo]:
        with self._state() as (state, now):
            vms = sorted(state.vms.values(), key=lambda vm: (vm.name.lower(), vm.vm_id))
            return [self._info(state, vm, now) for vm in vms]

    def get_vm(self, vm_id: str) -> VMInfo:
        with self._state() as (state, now):
            return self._info(state, self._vm(state, vm_id), now)

    def vm_facts(self, vm_id: str) -> VMFacts:
        with self._state() as (state, now):
            vm = self._vm(state, vm_id)
            # KVP items come from the guest's integration services: nothing
            # to read unless the guest runs and exchanges them (unknown, not
            # "not a DC").
            kvp = vm.state == VMState.Running and vm.kvp_available
            return VMFacts(
                vm=self._info(state, vm, now),
                disks=vm.disks,
                kvp_product_type=vm.kvp_product_type if kvp else None,
                kvp_fqdn=vm.fqdn if kvp else None,
                kvp_os_name=vm.os_name if kvp else None,
                replication_enabled=vm.replication_enabled,
                checkpoint_count=self._count(state, vm.vm_id),
                volume=self._volume(state, vm.volume_path),
            )

    def list_checkpoints(self, vm_id: str | None = None) -> list[Checkpoint]:
        with self._state() as (state, _now):
            if vm_id is not None:
                self._vm(state, vm_id)
            found = [cp for cp in state.checkpoints.values() if vm_id is None or cp.vm_id == vm_id]
            found.sort(key=lambda cp: (cp.created_at, cp.seq))
            return [self._public(state, cp) for cp in found]

    def volumes(self) -> list[Volume]:
        with self._state() as (state, _now):
            return [self._volume(state, path) for path in sorted(state.volumes)]

    @staticmethod
    def _count(state: HostState, vm_id: str) -> int:
        return sum(1 for cp in state.checkpoints.values() if cp.vm_id == vm_id)

    # -- checkpoints ---------------------------------------------------------

    def create_checkpoint(self, vm_id: str, name: str) -> Checkpoint:
        with self._state() as (state, now):
            vm = self._vm(state, vm_id)
            self._check_can_checkpoint(state, vm)
            snapshot_type = self._snapshot_type(vm)
            memory = 0
            if snapshot_type == SnapshotType.Standard and vm.state in _RESTORED_STATE:
                memory = vm.memory_bytes
            if free_bytes(state, vm.volume_path) < AVHDX_INITIAL_BYTES + memory:
                raise msg.insufficient_space(self._name, vm.name, vm.vm_id)
            checkpoint_id = self._new_id()
            parent = state.checkpoints.get(vm.parent_checkpoint_id or "")
            if parent is not None:
                # The live disk is frozen into the parent's chain.
                parent.avhdx_bytes += vm.live_bytes
            vm.live_bytes = 0
            checkpoint = SimCheckpoint(
                id=checkpoint_id,
                vm_id=vm.vm_id,
                # Checkpoint-VM without -SnapshotName names it "<VM> - (<time>)".
                name=name or f"{vm.name} - ({now:%m/%d/%Y - %I:%M:%S %p})",
                parent_id=vm.parent_checkpoint_id,
                created_at=now,
                snapshot_type=snapshot_type,
                vm_state=vm.state,
                path=_snapshot_path(vm, checkpoint_id),
                seq=state.next_seq,
                avhdx_bytes=AVHDX_INITIAL_BYTES,
                memory_bytes=memory,
            )
            state.next_seq += 1
            state.checkpoints[checkpoint_id] = checkpoint
            vm.parent_checkpoint_id = checkpoint_id
            return self._public(state, checkpoint)

    def _check_can_checkpoint(self, state: HostState, vm: SimVM) -> None:
        if vm.checkpoint_type == CheckpointType.Disabled:
            raise msg.checkpoints_disabled(self._name, vm.name, vm.vm_id)
        for disk in vm.disks:
            if disk.passthrough:
                raise msg.unsupported_disk(self._name, vm.name, vm.vm_id, "passthrough")
            if disk.fibre_channel:
                raise msg.unsupported_disk(self._name, vm.name, vm.vm_id, "fibre_channel")
            # VHD Sets (.vhds, WS2016+) can be checkpointed; shared .vhdx cannot.
            if disk.shared and not disk.path.lower().endswith(".vhds"):
                raise msg.unsupported_disk(self._name, vm.name, vm.vm_id, "shared")
        if self._count(state, vm.vm_id) >= msg.MAX_CHECKPOINTS_PER_VM:
            raise msg.limit_reached(self._name, vm.name, vm.vm_id)

    def _snapshot_type(self, vm: SimVM) -> SnapshotType:
        if vm.checkpoint_type == CheckpointType.Standard:
            return SnapshotType.Standard
        # A production checkpoint needs the guest's VSS (or nothing at all
        # when the VM is off); a saved or paused guest cannot freeze.
        if vm.state == VMState.Off or (vm.state == VMState.Running and vm.vss_available):
            return SnapshotType.Planned
        if vm.checkpoint_type == CheckpointType.ProductionOnly:
            raise msg.production_failed(self._name, vm.name, vm.vm_id)
        # Production silently falls back to a standard checkpoint.
        return SnapshotType.Standard

    def restore_checkpoint(self, vm_id: str, checkpoint_id: str) -> VMInfo:
        with self._state() as (state, now):
            vm = self._vm(state, vm_id)
            checkpoint = self._checkpoint(state, vm, checkpoint_id)
            if is_merging(state, vm.vm_id):
                raise msg.merging(
                    self._name,
                    vm.name,
                    vm.vm_id,
                    summary="Failed to restore the checkpoint.",
                    cmdlet="RestoreVMSnapshot",
                )
            # Everything written since the parent checkpoint is discarded.
            vm.live_bytes = 0
            vm.parent_checkpoint_id = checkpoint.id
            if checkpoint.snapshot_type == SnapshotType.Standard:
                vm.state = _RESTORED_STATE.get(checkpoint.vm_state, VMState.Off)
            else:
                # Production checkpoints hold no memory: the VM comes back Off.
                vm.state = VMState.Off
            vm.started_at = None
            if vm.replication_enabled:
                vm.replication_state = _RESYNC_REQUIRED
            return self._info(state, vm, now)

    def remove_checkpoint(
        self, vm_id: str, checkpoint_id: str, *, include_children: bool = False
    ) -> None:
        with self._state() as (state, now):
            vm = self._vm(state, vm_id)
            checkpoint = self._checkpoint(state, vm, checkpoint_id)
            if is_merging(state, vm.vm_id):
                raise msg.merging(
                    self._name,
                    vm.name,
                    vm.vm_id,
                    summary="Failed to remove the checkpoint.",
                    cmdlet="RemoveVMSnapshot",
                )
            doomed = _subtree(state, checkpoint.id) if include_children else [checkpoint.id]
            released = self._detach(state, vm, checkpoint, set(doomed))
            merged = sum(state.checkpoints[cp_id].avhdx_bytes for cp_id in doomed)
            for cp_id in doomed:
                released += state.checkpoints[cp_id].avhdx_bytes
                released += state.checkpoints.pop(cp_id).memory_bytes
            duration = max(MERGE_MINIMUM, timedelta(seconds=merged / MERGE_BYTES_PER_SECOND))
            state.merges.append(SimMerge(vm.vm_id, vm.volume_path, released, now + duration))

    @staticmethod
    def _detach(state: HostState, vm: SimVM, removed: SimCheckpoint, doomed: set[str]) -> int:
        """Re-parent what survives; returns live-disk bytes the merge frees."""
        for other in state.checkpoints.values():
            if other.parent_id in doomed and other.id not in doomed:
                other.parent_id = removed.parent_id
        if vm.parent_checkpoint_id not in doomed:
            return 0
        vm.parent_checkpoint_id = removed.parent_id
        if removed.parent_id is not None:
            # The live disk now hangs off the surviving ancestor.
            return 0
        # No checkpoint left above the VM: the live disk merges into the
        # base disk, which the model counts as already allocated.
        live, vm.live_bytes = vm.live_bytes, 0
        return live

    # -- VM settings and power -----------------------------------------------

    def start_vm(self, vm_id: str) -> VMInfo:
        with self._state() as (state, now):
            vm = self._vm(state, vm_id)
            if vm.state != VMState.Running:
                if vm.state != VMState.Paused:
                    vm.started_at = now
                vm.state = VMState.Running
            return self._info(state, vm, now)

    def set_checkpoint_settings(
        self,
        vm_id: str,
        *,
        checkpoint_type: CheckpointType | None = None,
        automatic_checkpoints: bool | None = None,
    ) -> VMInfo:
        with self._state() as (state, now):
            vm = self._vm(state, vm_id)
            if checkpoint_type is not None:
                vm.checkpoint_type = CheckpointType(checkpoint_type)
            if automatic_checkpoints is not None:
                vm.automatic_checkpoints = automatic_checkpoints
            return self._info(state, vm, now)


def _subtree(state: HostState, root_id: str) -> list[str]:
    found = [root_id]
    index = 0
    while index < len(found):
        parent = found[index]
        found.extend(cp.id for cp in state.checkpoints.values() if cp.parent_id == parent)
        index += 1
    return found


def _snapshot_path(vm: SimVM, checkpoint_id: str) -> str:
    root = vm.volume_path.rstrip("\\/")
    return f"{root}\\Hyper-V\\{vm.name}\\Snapshots\\{checkpoint_id.upper()}.avhdx"


class SimulatedFleet:
    """Every host in a store, sharing one clock."""

    def __init__(self, store: HostStateStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def host(self, name: str) -> SimulatedHost:
        if name not in self._store.hosts():
            raise msg.host_unknown(name)
        return SimulatedHost(name, self._store, self._clock)

    def hosts(self) -> list[SimulatedHost]:
        return [SimulatedHost(name, self._store, self._clock) for name in self._store.hosts()]
