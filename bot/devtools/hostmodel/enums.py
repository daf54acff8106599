"""The Hyper-V module's enums, as a host reports them, written from Microsoft's
documentation and nothing else.

These are deliberately NOT the bot's (`bot.hyperv.types`): the host model
must be able to say something the client does not expect, so it keeps its
own vocabulary. Each enum names the page it was written from. Where a page
lists the names but not their integers, the integers follow the documented
order and say so; the emulator sends enum-valued properties by name (depth-1
serialization), so only `Select-Object -ExpandProperty` ever shows them.
"""

from __future__ import annotations

import enum
import functools
from typing import Any, Self


@functools.cache
def _by_folded_name(kind: type[enum.IntEnum]) -> dict[str, Any]:
    # Every state read parses each stored name (the emulator's hot path): one
    # dict per enum instead of a scan of its members; the first member with
    # a name wins, as the scan's did.
    found: dict[str, Any] = {}
    for member in kind:
        found.setdefault(member.name.lower(), member)
    return found


class _HostEnum(enum.IntEnum):
    """Parses the names a host-model file or a state document uses."""

    @classmethod
    def named(cls, value: object) -> Self:
        if isinstance(value, cls):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(value)
        folded = str(value).strip().replace(" ", "").replace("-", "").replace("_", "").lower()
        found = _by_folded_name(cls).get(folded)
        if found is not None:
            member: Self = found
            return member
        names = ", ".join(member.name for member in cls)
        raise ValueError(f"expected one of: {names}, got {value!r}")


class VMState(_HostEnum):
    """`Microsoft.HyperV.PowerShell.VMState`: the module's names for
    `Msvm_ComputerSystem.EnabledState` (2 Enabled = Running, 3 Disabled = Off,
    6 Enabled but Offline = Saved, 9 Quiesce = Paused, and Hyper-V's own
    transitional values), https://learn.microsoft.com/windows/win32/hyperv_v2/msvm-computersystem.
    A VMSnapshot is a VirtualMachineBase too: its `State` is the state it
    captured."""

    Other = 1
    Running = 2
    Off = 3
    Stopping = 4
    Saved = 6
    Paused = 9
    Starting = 10
    Reset = 11
    Saving = 32773
    Pausing = 32776
    Resuming = 32777


class CheckpointType(_HostEnum):
    """`Set-VM -CheckpointType`
    (https://learn.microsoft.com/powershell/module/hyper-v/set-vm): Disabled
    blocks checkpoints; Standard takes standard ones; Production takes a
    production checkpoint "if supported by guest operating system. Otherwise,
    create standard checkpoints"; ProductionOnly: "Otherwise, the operation
    fails"."""

    Disabled = 2
    Production = 3
    ProductionOnly = 4
    Standard = 5


class SnapshotType(_HostEnum):
    """`VMSnapshot.SnapshotType`, the kind of snapshot *settings*: Standard for
    every checkpoint `Checkpoint-VM` takes of a realized VM, production or
    standard alike; Planned only for a snapshot of a planned VM; the rest are
    Hyper-V Replica's and backup's. Names from `Get-VMSnapshot -SnapshotType`
    (https://learn.microsoft.com/powershell/module/hyper-v/get-vmsnapshot);
    the numbering is the module's and is not dense (3 and 4 are VM types)."""

    Standard = 0
    Recovery = 1
    Planned = 2
    Missing = 5
    Replica = 6
    AppConsistentReplica = 7
    SyncedReplica = 8


class VMReplicationState(_HostEnum):
    """`Get-VMReplication -ReplicationState`
    (https://learn.microsoft.com/powershell/module/hyper-v/get-vmreplication).
    Integers in the documented order."""

    Disabled = 0
    ReadyForInitialReplication = 1
    InitialReplicationInProgress = 2
    WaitingForInitialReplication = 3
    Replicating = 4
    PreparedForFailover = 5
    FailedOverWaitingCompletion = 6
    FailedOver = 7
    Suspended = 8
    Error = 9
    WaitingForStartResynchronize = 10
    Resynchronizing = 11
    ResynchronizeSuspended = 12
    RecoveryInProgress = 13
    FailbackInProgress = 14
    FailbackComplete = 15
    WaitingForUpdateCompletion = 16
    UpdateError = 17
    WaitingForRepurposeCompletion = 18
    PreparedForSyncReplication = 19
    PreparedForGroupReverseReplication = 20
    FiredrillInProgress = 21


class VMReplicationMode(_HostEnum):
    """`Get-VMReplication -ReplicationMode` (same page); `None` is spelled
    `NotReplicated` here because `None` cannot be a Python member name.
    Integers in the documented order."""

    NotReplicated = 0
    Primary = 1
    Replica = 2
    TestReplica = 3
    ExtendedReplica = 4

    @property
    def shown(self) -> str:
        """The name the host prints."""
        return "None" if self is VMReplicationMode.NotReplicated else self.name


class VMReplicationHealthState(_HostEnum):
    """`Get-VMReplication -ReplicationHealth` (same page)."""

    NotApplicable = 0
    Normal = 1
    Warning = 2
    Critical = 3


class ControllerType(_HostEnum):
    """`HardDiskDrive.ControllerType`
    (https://learn.microsoft.com/powershell/module/hyper-v/get-vmharddiskdrive,
    -ControllerType IDE or SCSI)."""

    IDE = 0
    SCSI = 1


class VMOperationalStatus(_HostEnum):
    """`VirtualMachine.OperationalStatus`: `Msvm_ComputerSystem.OperationalStatus`
    (https://learn.microsoft.com/windows/win32/hyperv_v2/msvm-computersystem),
    OK and the secondary statuses Hyper-V shows while a checkpoint operation
    runs on the VM: "Creating Snapshot (32768)", "Applying Snapshot (32769)",
    "Deleting Snapshot (32770)" and "Merging Disks (32772)" (the page's
    OperationalStatus values; the Hyper-V module's `VMOperationalStatus`
    enum carries the same numbers, and `Get-VM`'s `Status` their text)."""

    Ok = 2
    Degraded = 3
    InService = 11
    CreatingSnapshot = 32768
    ApplyingSnapshot = 32769
    DeletingSnapshot = 32770
    MergingDisks = 32772


# KVP ProductType (GuestIntrinsicExchangeItems, the guest's OSVERSIONINFOEX
# wProductType): 1 workstation, 2 domain controller, 3 server.
PRODUCT_WORKSTATION = 1
PRODUCT_DOMAIN_CONTROLLER = 2
PRODUCT_SERVER = 3
