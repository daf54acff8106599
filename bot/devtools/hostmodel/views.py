"""What a modelled host reports: frozen views named as the Hyper-V module
names its objects (VirtualMachine, VMSnapshot, HardDiskDrive, VMReplication,
the KVP component, a volume).

A view is read once from the state at one instant (`host.ModelHost`) and
never changes; the emulator turns it into the wire object. Nothing here
knows what the bot believes a property means.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.devtools.hostmodel.enums import (
    CheckpointType,
    ControllerType,
    SnapshotType,
    VMOperationalStatus,
    VMReplicationHealthState,
    VMReplicationMode,
    VMReplicationState,
    VMState,
)


@dataclass(frozen=True)
class VirtualMachine:
    """`Get-VM` (https://learn.microsoft.com/powershell/module/hyper-v/get-vm)."""

    vm_id: str
    name: str
    computer_name: str
    state: VMState
    checkpoint_type: CheckpointType
    automatic_checkpoints_enabled: bool
    operational_status: tuple[VMOperationalStatus, ...]
    replication_state: VMReplicationState
    replication_mode: VMReplicationMode
    replication_health: VMReplicationHealthState
    parent_snapshot_id: str | None
    parent_snapshot_name: str | None
    uptime: timedelta
    path: str
    is_clustered: bool
    generation: int
    processor_count: int
    memory_startup_bytes: int

    @property
    def merging(self) -> bool:
        return VMOperationalStatus.MergingDisks in self.operational_status

    @property
    def status(self) -> str:
        """`VirtualMachine.Status`, the localised (here en-US) text of the
        status: the secondary status when there is one."""
        for status in reversed(self.operational_status):
            if status in _STATUS_TEXT:
                return _STATUS_TEXT[status]
        return "Operating normally"


# Get-VM's Status for a checkpoint operation in progress (what Hyper-V
# Manager's Status column shows; English UI).
_STATUS_TEXT = {
    VMOperationalStatus.CreatingSnapshot: "Creating checkpoint",
    VMOperationalStatus.ApplyingSnapshot: "Applying checkpoint",
    VMOperationalStatus.DeletingSnapshot: "Deleting checkpoint",
    VMOperationalStatus.MergingDisks: "Merging disks",
}


@dataclass(frozen=True)
class VMSnapshot:
    """`Get-VMSnapshot` / `Checkpoint-VM -Passthru`
    (https://learn.microsoft.com/powershell/module/hyper-v/get-vmsnapshot).
    A VMSnapshot is a VirtualMachineBase: `state` is the state it holds."""

    id: str
    vm_id: str
    vm_name: str
    name: str
    computer_name: str
    snapshot_type: SnapshotType
    state: VMState
    parent_snapshot_id: str | None
    parent_snapshot_name: str | None
    creation_time: datetime
    is_automatic_checkpoint: bool
    # DEVIATION, kept on purpose: a real host's SizeOfSystemFiles counts the
    # saved-state and configuration files only; here it is the checkpoint's
    # whole footprint (its differencing disk too), the one size the bot reads.
    # See docs/emulator.md, "Known deviations".
    size_of_system_files: int
    path: str


@dataclass(frozen=True)
class HardDiskDrive:
    """`Get-VMHardDiskDrive`
    (https://learn.microsoft.com/powershell/module/hyper-v/get-vmharddiskdrive)."""

    vm_id: str
    vm_name: str
    computer_name: str
    path: str
    controller_type: ControllerType
    controller_number: int
    controller_location: int
    # A pass-through disk: the physical disk's number, and no file.
    disk_number: int | None
    support_persistent_reservations: bool

    @property
    def name(self) -> str:
        return (
            f"Hard Drive on {self.controller_type.name} controller number "
            f"{self.controller_number} at location {self.controller_location}"
        )


@dataclass(frozen=True)
class FibreChannelHba:
    """`Get-VMFibreChannelHba`: "the fibre channel objects for each virtual
    fibre channel controller that is connected to the specified virtual
    machine" (https://learn.microsoft.com/powershell/module/hyper-v/get-vmfibrechannelhba).
    A VM without one gets no object and no error."""

    vm_id: str
    vm_name: str
    computer_name: str
    # The virtual SAN the adapter connects to (Set-VMFibreChannelHba -SanName).
    san_name: str

    @property
    def name(self) -> str:
        return "Fibre Channel Adapter"


@dataclass(frozen=True)
class VMReplication:
    """`Get-VMReplication`
    (https://learn.microsoft.com/powershell/module/hyper-v/get-vmreplication)."""

    vm_id: str
    vm_name: str
    computer_name: str
    state: VMReplicationState
    mode: VMReplicationMode
    health: VMReplicationHealthState
    primary_server: str
    replica_server: str
    frequency_seconds: int


@dataclass(frozen=True)
class KvpComponent:
    """`Msvm_KvpExchangeComponent` of one VM
    (https://learn.microsoft.com/windows/win32/hyperv_v2/msvm-kvpexchangecomponent):
    its GuestIntrinsicExchangeItems as name -> data; empty when the guest
    does not exchange them (off, or no integration services)."""

    vm_id: str
    items: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class HostVolume:
    """`Get-Volume` on the host: one volume holding VM files."""

    computer_name: str
    path: str
    capacity_bytes: int
    free_bytes: int
    # A Cluster Shared Volume: no drive letter, mounted under C:\\ClusterStorage.
    shared: bool = False
