"""One modelled Hyper-V host: what its cmdlets do to its state.

    ModelHost(name, store, clock)
      reads     get_vms, get_vm, get_snapshots, hard_disk_drives, replication,
                kvp, volumes                         -> views (bot.devtools.hostmodel.views)
      cmdlets   checkpoint_vm, restore_snapshot, remove_snapshot, start_vm, set_vm
      an admin  remove_behind_back (Hyper-V Manager, behind the bot's back),
                live_migrate (to another node of its failover cluster)

Every operation raises `HostError` with the host's own text. A change runs
in one `store.edit(host)` transaction: the state is first advanced to
`clock()` (`engine`), then the operation acts, and a failure leaves the
stored state untouched. A read advances a copy and stores nothing, so
reading never blocks a writer. A VM is found only on the host that holds
it: asking another host is "unable to find a virtual machine", as on a
real estate.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta

from bot.devtools.hostmodel import errors
from bot.devtools.hostmodel.engine import (
    advance,
    checkpoint_size,
    free_bytes,
    is_merging,
    peer_bytes,
)
from bot.devtools.hostmodel.enums import (
    CheckpointType,
    SnapshotType,
    VMOperationalStatus,
    VMReplicationHealthState,
    VMReplicationMode,
    VMReplicationState,
    VMState,
)
from bot.devtools.hostmodel.errors import HostError
from bot.devtools.hostmodel.migration import live_migrate
from bot.devtools.hostmodel.state import (
    HostState,
    ModelCheckpoint,
    ModelMerge,
    ModelOperation,
    ModelVM,
)
from bot.devtools.hostmodel.store import HostStateStore, UnknownHost
from bot.devtools.hostmodel.views import (
    FibreChannelHba,
    HardDiskDrive,
    HostVolume,
    KvpComponent,
    VirtualMachine,
    VMReplication,
    VMSnapshot,
)

Clock = Callable[[], datetime]

# A new .avhdx starts at a few MiB (its header, BAT and metadata regions).
AVHDX_INITIAL_BYTES = 4 * 1024**2
# Merge speed: sequential copy on ordinary server storage. A small merge
# still takes a few seconds on a real host (the job, the config rewrite).
MERGE_BYTES_PER_SECOND = 128 * 1024**2
MERGE_MINIMUM = timedelta(seconds=5)

# States whose memory a standard checkpoint saves with it.
_HOLDS_MEMORY = frozenset({VMState.Running, VMState.Paused, VMState.Saved})
# Restoring a checkpoint that holds memory puts the VM in Saved, not
# Running: Hyper-V applies "the disk state, runtime state, and configuration
# values for a snapshot ... This information serves as the starting point
# for the virtual computer system when it is next activated"
# (https://learn.microsoft.com/previous-versions/windows/desktop/virtual/
# applyvirtualsystemsnapshot-msvm-virtualsystemmanagementservice), i.e. the
# memory comes back as a saved state that Start-VM resumes. Not verified on a
# live host; if one shows otherwise, change this and its test.
_RESTORED_WITH_MEMORY = VMState.Saved


def _new_id() -> str:
    return str(uuid.uuid4())


class ModelHost:
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
        return f"ModelHost({self._name!r})"

    @property
    def name(self) -> str:
        return self._name

    # -- state ---------------------------------------------------------------

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the host model's clock must return aware datetimes")
        return now

    @contextmanager
    def _edit(self) -> Iterator[tuple[HostState, datetime]]:
        now = self._now()
        # Read before the edit: a SQLite store holds its one write lock for
        # the whole edit, so reading another node inside it would wait forever.
        peers = self._peer_bytes(self._store.read(self._name), now)
        with self._store.edit(self._name) as state:
            advance(state, now, peers)
            yield state, now

    def _read(self) -> tuple[HostState, datetime]:
        now = self._now()
        state = self._store.read(self._name)
        if state.as_of is None:
            # The first sight starts the running VMs' uptime: store it once.
            with self._edit():
                pass
            state = self._store.read(self._name)
        advance(state, now, self._peer_bytes(state, now))
        return state, now

    def _peer_bytes(self, state: HostState, now: datetime) -> dict[str, int]:
        """What the other nodes' VMs hold on this node's Cluster Shared
        Volumes. A CSV is one volume that "all nodes in a failover cluster can
        simultaneously read from and write to"
        (https://learn.microsoft.com/windows-server/failover-clustering/failover-cluster-csvs),
        so its free space is the cluster's, the same from every node. (Each
        peer is advanced on its own view; a CSV filling up pauses the VMs of
        the node being advanced first: a known approximation.)"""
        shared = [path for path, volume in state.volumes.items() if volume.shared]
        totals = dict.fromkeys(shared, 0)
        for node in state.cluster_nodes:
            if not shared or node.casefold() == self._name.casefold():
                continue
            try:
                peer = self._store.read(node)
            except UnknownHost:
                continue
            advance(peer, now)
            for path in shared:
                if path in peer.volumes:
                    totals[path] += peer_bytes(peer, path)
        return totals

    @staticmethod
    def _vm(state: HostState, vm_id: str) -> ModelVM:
        vm = state.vms.get(vm_id.casefold())
        if vm is None:
            raise errors.vm_not_found(vm_id)
        return vm

    @staticmethod
    def _checkpoint(state: HostState, checkpoint_id: str) -> ModelCheckpoint:
        checkpoint = state.checkpoints.get(checkpoint_id.casefold())
        if checkpoint is None:
            raise errors.checkpoint_not_found()
        return checkpoint

    # -- views ---------------------------------------------------------------

    def _vm_view(self, state: HostState, vm: ModelVM, now: datetime) -> VirtualMachine:
        uptime = timedelta(0)
        if vm.state in (VMState.Running, VMState.Paused) and vm.started_at is not None:
            uptime = max(timedelta(0), now - vm.started_at)
        parent = state.checkpoints.get(vm.parent_checkpoint_id or "")
        operational: tuple[VMOperationalStatus, ...] = (VMOperationalStatus.Ok,)
        if is_merging(state, vm.vm_id):
            operational = (VMOperationalStatus.MergingDisks,)
        running = [op for op in state.operations if op.vm_id == vm.vm_id]
        if running:
            # A checkpoint operation in progress: the primary status "In
            # Service", the secondary the operation ("Creating Snapshot",
            # "Applying Snapshot", "Deleting Snapshot"), as
            # Msvm_ComputerSystem.OperationalStatus lists them
            # (https://learn.microsoft.com/windows/win32/hyperv_v2/msvm-computersystem).
            operational = (
                VMOperationalStatus.InService,
                VMOperationalStatus(running[-1].status),
            )
        replication = vm.replication
        return VirtualMachine(
            vm_id=vm.vm_id,
            name=vm.name,
            computer_name=self._name,
            state=vm.state,
            checkpoint_type=vm.checkpoint_type,
            automatic_checkpoints_enabled=vm.automatic_checkpoints,
            operational_status=operational,
            replication_state=(replication.state if replication else VMReplicationState.Disabled),
            replication_mode=(replication.mode if replication else VMReplicationMode.NotReplicated),
            replication_health=(
                replication.health if replication else VMReplicationHealthState.NotApplicable
            ),
            parent_snapshot_id=parent.id if parent else None,
            parent_snapshot_name=parent.name if parent else None,
            # Whole seconds, as the host's TimeSpan shows them in practice.
            uptime=timedelta(seconds=int(uptime.total_seconds())),
            path=vm.folder,
            is_clustered=vm.is_clustered,
            generation=vm.generation,
            processor_count=vm.processor_count,
            memory_startup_bytes=vm.memory_bytes,
        )

    def _snapshot_view(self, state: HostState, checkpoint: ModelCheckpoint) -> VMSnapshot:
        vm = state.vms[checkpoint.vm_id]
        parent = state.checkpoints.get(checkpoint.parent_id or "")
        return VMSnapshot(
            id=checkpoint.id,
            vm_id=vm.vm_id,
            vm_name=vm.name,
            name=checkpoint.name,
            computer_name=self._name,
            snapshot_type=checkpoint.snapshot_type,
            state=checkpoint.captured_state,
            parent_snapshot_id=parent.id if parent else None,
            parent_snapshot_name=parent.name if parent else None,
            creation_time=checkpoint.created_at,
            is_automatic_checkpoint=checkpoint.is_automatic,
            size_of_system_files=checkpoint_size(state, checkpoint),
            path=checkpoint.path,
        )

    def _volume_view(self, state: HostState, path: str, peers: dict[str, int]) -> HostVolume:
        return HostVolume(
            computer_name=self._name,
            path=path,
            capacity_bytes=state.volumes[path].capacity_bytes,
            free_bytes=free_bytes(state, path, peers),
            shared=state.volumes[path].shared,
        )

    # -- reads ---------------------------------------------------------------

    def get_vms(self) -> list[VirtualMachine]:
        state, now = self._read()
        vms = sorted(state.vms.values(), key=lambda vm: (vm.name.casefold(), vm.vm_id))
        return [self._vm_view(state, vm, now) for vm in vms]

    def get_vm(self, vm_id: str) -> VirtualMachine:
        state, now = self._read()
        return self._vm_view(state, self._vm(state, vm_id), now)

    def get_snapshots(self) -> list[VMSnapshot]:
        """Every checkpoint on the host, oldest first."""
        state, _now = self._read()
        found = sorted(state.checkpoints.values(), key=lambda cp: (cp.created_at, cp.seq))
        return [self._snapshot_view(state, cp) for cp in found]

    def hard_disk_drives(self, vm_id: str) -> list[HardDiskDrive]:
        """`Get-VMHardDiskDrive` of one VM
        (https://learn.microsoft.com/powershell/module/hyper-v/get-vmharddiskdrive).
        A virtual Fibre Channel adapter is not a hard disk drive (it is
        `Get-VMFibreChannelHba`'s), so it is not listed here."""
        state, _now = self._read()
        return self._drives(self._vm(state, vm_id))

    def hard_disk_drives_of(self, vm_ids: list[str]) -> list[list[HardDiskDrive] | HostError]:
        """The same for several VMs read at one instant (`Get-VM |
        Get-VMHardDiskDrive`): each VM's drives, or its not-found error."""
        state, _now = self._read()
        found: list[list[HardDiskDrive] | HostError] = []
        for vm_id in vm_ids:
            try:
                found.append(self._drives(self._vm(state, vm_id)))
            except HostError as exc:
                found.append(exc)
        return found

    def fibre_channel_hbas_of(self, vm_ids: list[str]) -> list[list[FibreChannelHba] | HostError]:
        """`Get-VMFibreChannelHba` of several VMs read at one instant (`Get-VM
        | Get-VMFibreChannelHba`,
        https://learn.microsoft.com/powershell/module/hyper-v/get-vmfibrechannelhba):
        each VM's virtual Fibre Channel adapters (none for most), or its
        not-found error. The model file writes an adapter as a disk with
        `fibre_channel: true`, its path the virtual SAN's name."""
        state, _now = self._read()
        found: list[list[FibreChannelHba] | HostError] = []
        for vm_id in vm_ids:
            try:
                vm = self._vm(state, vm_id)
            except HostError as exc:
                found.append(exc)
                continue
            found.append(
                [
                    FibreChannelHba(vm.vm_id, vm.name, self._name, san_name=disk.path)
                    for disk in vm.disks
                    if disk.fibre_channel
                ]
            )
        return found

    def _drives(self, vm: ModelVM) -> list[HardDiskDrive]:
        drives = []
        location: dict[int, int] = {}
        for disk in vm.disks:
            if disk.fibre_channel:
                continue
            slot = location.get(disk.controller, 0)
            location[disk.controller] = slot + 1
            drives.append(
                HardDiskDrive(
                    vm_id=vm.vm_id,
                    vm_name=vm.name,
                    computer_name=self._name,
                    path=disk.path,
                    controller_type=disk.controller,
                    controller_number=0,
                    controller_location=slot,
                    # A pass-through disk is a physical disk attached by its
                    # number: the drive reports the DiskNumber, and its Path
                    # names the physical disk, not a virtual hard disk file
                    # (https://learn.microsoft.com/powershell/module/hyper-v/
                    # add-vmharddiskdrive, -DiskNumber).
                    disk_number=disk.disk_number if disk.passthrough else None,
                    # A shared VHDX or VHD Set is attached with
                    # -SupportPersistentReservations (same page).
                    support_persistent_reservations=disk.shared,
                )
            )
        return drives

    def replication(self, vm_id: str) -> VMReplication:
        state, _now = self._read()
        vm = self._vm(state, vm_id)
        if vm.replication is None:
            raise errors.replication_not_enabled(vm.name)
        return VMReplication(
            vm_id=vm.vm_id,
            vm_name=vm.name,
            computer_name=self._name,
            state=vm.replication.state,
            mode=vm.replication.mode,
            health=vm.replication.health,
            primary_server=self._name,
            replica_server=vm.replication.replica_server,
            frequency_seconds=vm.replication.frequency_seconds,
        )

    def kvp(self, vm_id: str) -> KvpComponent:
        """The guest's intrinsic KVP items: published by its integration
        services, so there are none while it does not run or exchange them
        (the fact is then unknown, never "not a DC")."""
        state, _now = self._read()
        return self._kvp(self._vm(state, vm_id))

    def kvps(self) -> list[KvpComponent]:
        """Every VM's KVP component at one instant: `Get-CimInstance` of
        Msvm_KvpExchangeComponent without a filter returns one instance per VM
        (https://learn.microsoft.com/windows/win32/hyperv_v2/msvm-kvpexchangecomponent)."""
        state, _now = self._read()
        vms = sorted(state.vms.values(), key=lambda vm: (vm.name.casefold(), vm.vm_id))
        return [self._kvp(vm) for vm in vms]

    @staticmethod
    def _kvp(vm: ModelVM) -> KvpComponent:
        # The intrinsic items' names are the documented keys of
        # Msvm_KvpExchangeDataItem.Name: "FullyQualifiedDomainName", "OSName",
        # "OSVersion", "ProductType"
        # (https://learn.microsoft.com/windows/win32/hyperv_v2/msvm-kvpexchangedataitem).
        guest = vm.guest
        if vm.state is not VMState.Running or not guest.kvp:
            return KvpComponent(vm.vm_id, ())
        items = [
            ("FullyQualifiedDomainName", guest.fqdn),
            ("OSName", guest.os_name),
            ("OSVersion", guest.os_version),
            ("ProductType", None if guest.product_type is None else str(guest.product_type)),
        ]
        return KvpComponent(vm.vm_id, tuple((k, v) for k, v in items if v is not None))

    def volumes(self) -> list[HostVolume]:
        state, now = self._read()
        peers = self._peer_bytes(state, now)
        return [self._volume_view(state, path, peers) for path in sorted(state.volumes)]

    # -- Checkpoint-VM ---------------------------------------------------------

    def checkpoint_vm(self, vm_id: str, name: str = "") -> VMSnapshot:
        """`Checkpoint-VM` with the VM's CheckpointType
        (https://learn.microsoft.com/powershell/module/hyper-v/checkpoint-vm).
        Whatever kind it takes, the snapshot's SnapshotType is Standard;
        what differs is the state it holds (see `_captures`)."""
        peers = self._peer_bytes(self._store.read(self._name), self._now())
        with self._edit() as (state, now):
            vm = self._vm(state, vm_id)
            self._check_can_checkpoint(state, vm)
            captured = self._captures(vm)
            memory = vm.memory_bytes if captured in _HOLDS_MEMORY else 0
            if free_bytes(state, vm.volume_path, peers) < AVHDX_INITIAL_BYTES + memory:
                raise errors.insufficient_space(vm.name, vm.vm_id)
            parent = state.checkpoints.get(vm.parent_checkpoint_id or "")
            if parent is not None:
                # The live disk is frozen into the parent's chain.
                parent.avhdx_bytes += vm.live_bytes
            vm.live_bytes = 0
            checkpoint = ModelCheckpoint(
                id=self._new_id(),
                vm_id=vm.vm_id,
                # Checkpoint-VM without -SnapshotName names it "<VM> - (<time>)".
                name=name or f"{vm.name} - ({now:%m/%d/%Y - %I:%M:%S %p})",
                parent_id=vm.parent_checkpoint_id,
                created_at=now,
                snapshot_type=SnapshotType.Standard,
                captured_state=captured,
                path=f"{vm.folder}\\Snapshots",
                seq=state.next_seq,
                avhdx_bytes=AVHDX_INITIAL_BYTES,
                memory_bytes=memory,
            )
            state.next_seq += 1
            state.checkpoints[checkpoint.id] = checkpoint
            vm.parent_checkpoint_id = checkpoint.id
            return self._snapshot_view(state, checkpoint)

    def _check_can_checkpoint(self, state: HostState, vm: ModelVM) -> None:
        if vm.checkpoint_type is CheckpointType.Disabled:
            # Set-VM -CheckpointType Disabled: "Block creation of checkpoints."
            raise errors.checkpoints_disabled(vm.name, vm.vm_id)
        for disk in vm.disks:
            # Pass-through disks, virtual Fibre Channel and shared VHDX are
            # outside what a checkpoint can capture; VHD Sets (.vhds,
            # Windows Server 2016 and later) can be checkpointed.
            if disk.passthrough:
                raise errors.unsupported_disk(vm.name, vm.vm_id, "passthrough")
            if disk.fibre_channel:
                raise errors.unsupported_disk(vm.name, vm.vm_id, "fibre_channel")
            if disk.shared and not disk.path.lower().endswith(".vhds"):
                raise errors.unsupported_disk(vm.name, vm.vm_id, "shared")
        mine = sum(1 for cp in state.checkpoints.values() if cp.vm_id == vm.vm_id)
        if mine >= errors.MAX_CHECKPOINTS_PER_VM:
            raise errors.limit_reached(vm.name, vm.vm_id)

    @staticmethod
    def _captures(vm: ModelVM) -> VMState:
        """The state the new checkpoint holds.

        A production checkpoint "uses Volume Shadow Copy Service or File
        System Freeze ... No snapshot of the virtual machine memory state is
        taken"; a standard one "takes a snapshot of the virtual machine and
        virtual machine memory state"
        (https://learn.microsoft.com/virtualization/hyper-v-on-windows/user-guide/checkpoints).
        So a production checkpoint holds Off, a standard one the VM's state.
        Production falls back to standard when the guest cannot make a
        production checkpoint, ProductionOnly fails instead
        (https://learn.microsoft.com/powershell/module/hyper-v/set-vm,
        -CheckpointType). A VM that is off needs no VSS: its disks are at
        rest. A saved or paused guest cannot freeze (its VSS does not run)."""
        if vm.checkpoint_type is CheckpointType.Standard:
            return vm.state
        if vm.state is VMState.Off or (vm.state is VMState.Running and vm.guest.vss):
            return VMState.Off
        if vm.checkpoint_type is CheckpointType.ProductionOnly:
            raise errors.production_failed(vm.name, vm.vm_id)
        return vm.state

    # -- an operation in progress ---------------------------------------------

    @contextmanager
    def operation(self, vm_id: str, status: VMOperationalStatus) -> Iterator[None]:
        """While the body runs, the VM reports `status` (a checkpoint being
        created, applied or deleted) in Get-VM's OperationalStatus and
        Status. The emulator wraps a slow or hung Checkpoint-VM,
        Restore-VMSnapshot and Remove-VMSnapshot in it: the work goes on on
        the host whether or not whoever sent it still listens (a PSRP
        pipeline runs on the server), so another client sees the VM busy."""
        op_id = self._new_id()
        with self._edit() as (state, now):
            vm = self._vm(state, vm_id)
            state.operations.append(ModelOperation(op_id, vm.vm_id, int(status), now))
        try:
            yield
        finally:
            with self._edit() as (state, _now):
                state.operations = [op for op in state.operations if op.op_id != op_id]

    def restarted(self) -> int:
        """The host's management service started again (the emulator serving
        it was killed and started, as a host that crashed or rebooted): an
        operation the old one was running ended with it, so no VM reports it
        any more (Hyper-V's Virtual Machine Management Service runs a VM's
        checkpoint operations as its jobs, https://learn.microsoft.com/windows/win32/hyperv_v2/msvm-concretejob,
        and a job does not outlive the service). What the cut-off operation
        had not yet done stays undone. How many operations ended."""
        with self._edit() as (state, _now):
            ended = len(state.operations)
            state.operations = []
        return ended

    # -- Restore-VMSnapshot / Remove-VMSnapshot --------------------------------

    def restore_snapshot(self, snapshot_id: str) -> None:
        """`Restore-VMSnapshot`
        (https://learn.microsoft.com/powershell/module/hyper-v/restore-vmsnapshot):
        the VM goes back to the checkpoint and what it wrote since is gone.
        A checkpoint without memory leaves the VM Off; one with memory
        leaves it Saved (`_RESTORED_WITH_MEMORY`)."""
        with self._edit() as (state, _now):
            checkpoint = self._checkpoint(state, snapshot_id)
            vm = state.vms[checkpoint.vm_id]
            if is_merging(state, vm.vm_id):
                raise errors.merging(
                    vm.name,
                    vm.vm_id,
                    summary="Failed to restore the checkpoint.",
                    cmdlet="RestoreVMSnapshot",
                )
            vm.live_bytes = 0
            vm.parent_checkpoint_id = checkpoint.id
            if checkpoint.captured_state in _HOLDS_MEMORY:
                vm.state = _RESTORED_WITH_MEMORY
            else:
                vm.state = VMState.Off
            vm.started_at = None
            if vm.replication is not None and vm.replication.mode is VMReplicationMode.Primary:
                # Modelled: reverting the primary breaks the chain of changes
                # the replica holds; replication waits to be resynchronized.
                vm.replication = replace(
                    vm.replication, state=VMReplicationState.WaitingForStartResynchronize
                )

    def remove_snapshot(self, snapshot_id: str, *, include_children: bool = False) -> None:
        """`Remove-VMSnapshot`
        (https://learn.microsoft.com/powershell/module/hyper-v/remove-vmsnapshot):
        the checkpoint (with -IncludeAllChildSnapshots, its subtree) goes at
        once; its differencing disk merges in the background, and until that
        ends the VM reports MergingDisks and the space is not back."""
        with self._edit() as (state, now):
            checkpoint = self._checkpoint(state, snapshot_id)
            vm = state.vms[checkpoint.vm_id]
            if is_merging(state, vm.vm_id):
                raise errors.merging(
                    vm.name,
                    vm.vm_id,
                    summary="Failed to remove the checkpoint.",
                    cmdlet="RemoveVMSnapshot",
                )
            doomed = _subtree(state, checkpoint.id) if include_children else [checkpoint.id]
            released = _detach(state, vm, checkpoint, set(doomed))
            merged = sum(state.checkpoints[cp_id].avhdx_bytes for cp_id in doomed)
            for cp_id in doomed:
                released += state.checkpoints[cp_id].avhdx_bytes
                released += state.checkpoints.pop(cp_id).memory_bytes
            duration = max(MERGE_MINIMUM, timedelta(seconds=merged / MERGE_BYTES_PER_SECOND))
            state.merges.append(ModelMerge(vm.vm_id, vm.volume_path, released, now + duration))

    def remove_behind_back(self, checkpoint_id: str, *, include_children: bool = False) -> None:
        """An administrator deletes a checkpoint in Hyper-V Manager: the same
        deletion, not asked for by the bot and not told to it."""
        self.remove_snapshot(checkpoint_id, include_children=include_children)

    def remove_vm(self, vm_id: str) -> None:
        """An administrator removes a VM from this host (`Remove-VM`, which
        "deletes a virtual machine": its configuration and its checkpoints
        leave the host, https://learn.microsoft.com/powershell/module/hyper-v/remove-vm);
        the bot is not told."""
        with self._edit() as (state, _now):
            vm = self._vm(state, vm_id)
            del state.vms[vm.vm_id]
            for checkpoint_id in [c.id for c in state.checkpoints.values() if c.vm_id == vm.vm_id]:
                del state.checkpoints[checkpoint_id]
            state.merges = [m for m in state.merges if m.vm_id != vm.vm_id]

    def live_migrate(self, vm_id: str, destination: str) -> None:
        """An administrator live-migrates a VM of this node to another node of
        its cluster (Move-ClusterVirtualMachineRole; bot.devtools.hostmodel.migration)."""
        live_migrate(self._store, vm_id, self._name, destination, self._now)

    # -- Start-VM / Set-VM -------------------------------------------------------

    def start_vm(self, vm_id: str) -> None:
        """`Start-VM`: Off starts afresh, Saved resumes its memory, Paused
        resumes; a running VM stays as it is."""
        with self._edit() as (state, now):
            vm = self._vm(state, vm_id)
            if vm.state is not VMState.Running:
                if vm.state is not VMState.Paused:
                    vm.started_at = now
                vm.state = VMState.Running

    def rename_vm(self, vm_id: str, new_name: str) -> None:
        """`Rename-VM` (https://learn.microsoft.com/powershell/module/hyper-v/rename-vm):
        the VM keeps its Id, and the host's messages name it by its new name
        (the checkpoint failures quote it, `errors._failed`). Whoever may
        manage the VM on its host chooses the name."""
        with self._edit() as (state, _now):
            self._vm(state, vm_id).name = new_name

    def write_other_files(self, volume_path: str, size_bytes: int) -> None:
        """Files that are not the VMs' written to a volume (a backup dump, a
        log that grew): what fills a disk from outside Hyper-V. On a Cluster
        Shared Volume every node sees them: "all nodes in a failover cluster
        can simultaneously read from and write to" the same volume
        (https://learn.microsoft.com/windows-server/failover-clustering/failover-cluster-csvs),
        so they are this node's `written_bytes`, which the others count as
        they count its checkpoints (`_peer_bytes`)."""
        with self._edit() as (state, _now):
            state.volumes[volume_path].written_bytes += size_bytes

    def set_vm(
        self,
        vm_id: str,
        *,
        checkpoint_type: CheckpointType | None = None,
        automatic_checkpoints: bool | None = None,
    ) -> None:
        """`Set-VM -CheckpointType / -AutomaticCheckpointsEnabled`."""
        with self._edit() as (state, _now):
            vm = self._vm(state, vm_id)
            if checkpoint_type is not None:
                vm.checkpoint_type = CheckpointType(checkpoint_type)
            if automatic_checkpoints is not None:
                vm.automatic_checkpoints = automatic_checkpoints


def _subtree(state: HostState, root_id: str) -> list[str]:
    found = [root_id]
    index = 0
    while index < len(found):
        parent = found[index]
        found.extend(cp.id for cp in state.checkpoints.values() if cp.parent_id == parent)
        index += 1
    return found


def _detach(state: HostState, vm: ModelVM, removed: ModelCheckpoint, doomed: set[str]) -> int:
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
    # No checkpoint left above the VM: the live disk merges into the base
    # disk, which the model counts as already allocated.
    live, vm.live_bytes = vm.live_bytes, 0
    return live


__all__ = [
    "AVHDX_INITIAL_BYTES",
    "MERGE_BYTES_PER_SECOND",
    "MERGE_MINIMUM",
    "HostError",
    "ModelHost",
]
