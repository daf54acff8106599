"""Typed results of Hyper-V operations.

Enum values are the Hyper-V module's own integers, so a value read from a
host as an integer, an enum object or its string form maps to one member
(`Microsoft.HyperV.PowerShell.*` enums, as the module defines them:
https://learn.microsoft.com/powershell/module/hyper-v/).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Self

from bot.domain import DISABLED, CheckpointKind


class _HyperVEnum(enum.IntEnum):
    """An enum that also parses Hyper-V's string form (case-insensitive)."""

    @classmethod
    def parse(cls, value: object) -> Self:
        if isinstance(value, cls):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(value)
        text = str(value).strip()
        if text.lstrip("-").isdigit():
            return cls(int(text))
        folded = text.replace("_", "").replace("-", "").lower()
        for member in cls:
            if member.name.lower() == folded:
                return member
        raise ValueError(f"{text!r} is not a {cls.__name__}")


class VMState(_HyperVEnum):
    """`Microsoft.HyperV.PowerShell.VMState` (subset the bot acts on)."""

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


class VMOperation(_HyperVEnum):
    """A checkpoint operation the host reports running on a VM: the
    secondary values of `Msvm_ComputerSystem.OperationalStatus`
    (https://learn.microsoft.com/windows/win32/hyperv_v2/msvm-computersystem),
    which `Get-VM` returns as `OperationalStatus` (`VMOperationalStatus`)."""

    CreatingSnapshot = 32768
    ApplyingSnapshot = 32769
    DeletingSnapshot = 32770
    MergingDisks = 32772

    @property
    def doing(self) -> str:
        """What the host is doing, in the bot's words."""
        return _DOING[self]


_DOING = {
    VMOperation.CreatingSnapshot: "creating a checkpoint",
    VMOperation.ApplyingSnapshot: "applying a checkpoint",
    VMOperation.DeletingSnapshot: "deleting a checkpoint",
    VMOperation.MergingDisks: "merging disks",
}


class CheckpointType(_HyperVEnum):
    """The VM setting `CheckpointType`."""

    Disabled = 2
    Production = 3
    ProductionOnly = 4
    Standard = 5

    @classmethod
    def for_word(cls, word: str) -> CheckpointType:
        """The setting a product word names (`CheckpointKind` or "disabled");
        KeyError for anything else."""
        return _SETTING_FOR_WORD[word]

    @property
    def word(self) -> str:
        """The product word that names this setting (`for_word`'s inverse):
        what `checkpoint settings --type` takes."""
        return next(word for word, setting in _SETTING_FOR_WORD.items() if setting is self)

    @property
    def strictness(self) -> int | None:
        """How strict a setting is: ProductionOnly never falls back, Production
        may, Standard never tries; None for Disabled (nothing to compare)."""
        return _STRICTNESS.get(self)


_SETTING_FOR_WORD = {
    CheckpointKind.PRODUCTION.value: CheckpointType.Production,
    CheckpointKind.PRODUCTION_ONLY.value: CheckpointType.ProductionOnly,
    CheckpointKind.STANDARD.value: CheckpointType.Standard,
    DISABLED: CheckpointType.Disabled,
}
_STRICTNESS = {
    CheckpointType.Standard: 0,
    CheckpointType.Production: 1,
    CheckpointType.ProductionOnly: 2,
}


class SnapshotType(_HyperVEnum):
    """`VMSnapshot.SnapshotType` (`Microsoft.HyperV.PowerShell.SnapshotType`).

    It does NOT tell a production checkpoint from a standard one: both read
    `Standard` (see `bot.hyperv.evidence` for how the bot tells them apart).
    The values mirror the WMI `VirtualSystemType`s of a snapshot's settings
    (https://learn.microsoft.com/windows/win32/hyperv_v2/msvm-virtualsystemsettingdata:
    `Microsoft:Hyper-V:Snapshot:Realized` for a checkpoint of a realized VM,
    `...:Snapshot:Planned` for one of a *planned* VM, `...:Recovery` and the
    replica kinds for Hyper-V Replica and backup). The module's numbering is
    not dense: 3 and 4 are VM types, never snapshot types.
    """

    # Read from the host but matching no member: shown as unknown, never guessed.
    Unknown = -1
    Standard = 0
    Recovery = 1
    Planned = 2
    Missing = 5
    Replica = 6
    AppConsistentReplica = 7
    SyncedReplica = 8

    @classmethod
    def read(cls, value: object) -> SnapshotType:
        """Parse by name (or by the module's integer); anything else is Unknown."""
        try:
            return cls.parse(value)
        except ValueError:
            return cls.Unknown


# Snapshots Hyper-V Replica and backup create and prune: never the bot's.
REPLICA_SNAPSHOT_TYPES = frozenset(
    {
        SnapshotType.Recovery,
        SnapshotType.Replica,
        SnapshotType.AppConsistentReplica,
        SnapshotType.SyncedReplica,
    }
)


@dataclass(frozen=True)
class VMInfo:
    vm_id: str
    name: str
    host: str
    state: VMState
    checkpoint_type: CheckpointType
    automatic_checkpoints: bool = False
    # True while a removed checkpoint's differencing disk is being merged
    # (operational status "Merging Disks" = 32772 on a real host).
    merging: bool = False
    replication_state: str = "Disabled"
    parent_checkpoint_id: str | None = None
    uptime_seconds: int = 0
    # The checkpoint operations the host reports running on the VM now
    # (its OperationalStatus); empty when it reports none; None when the
    # host did not say (no OperationalStatus in its answer): unknown, which
    # the reconciler treats as possibly still running.
    busy: frozenset[VMOperation] | None = frozenset()


@dataclass(frozen=True)
class Checkpoint:
    id: str
    vm_id: str
    vm_name: str
    host: str
    name: str
    parent_id: str | None
    created_at: datetime
    # What the host calls it. `Standard` for production and standard
    # checkpoints alike: what was really taken is judged from the evidence
    # (`bot.hyperv.evidence`).
    snapshot_type: SnapshotType
    size_bytes: int = 0
    path: str = ""
    # The VM state the checkpoint holds (`VMSnapshot.State`): Off for one
    # without memory (a production checkpoint, or any of a VM that was off);
    # Running, Saved or Paused for a standard checkpoint of a running VM.
    # None when the host did not say.
    captured_state: VMState | None = None


@dataclass(frozen=True)
class Volume:
    host: str
    path: str
    capacity_bytes: int
    free_bytes: int


@dataclass(frozen=True)
class DiskInfo:
    path: str
    controller: str = "SCSI"
    # Shared VHDX / VHD Set: `SupportPersistentReservations = True`.
    shared: bool = False
    passthrough: bool = False


@dataclass(frozen=True)
class VMFacts:
    """What discovery on the host says about one VM (None = unknown)."""

    vm: VMInfo
    disks: tuple[DiskInfo, ...] = ()
    # KVP GuestIntrinsicExchangeItems; ProductType 2 marks a domain controller.
    kvp_product_type: int | None = None
    kvp_fqdn: str | None = None
    kvp_os_name: str | None = None
    replication_enabled: bool | None = None
    checkpoint_count: int = 0
    volume: Volume | None = None
    extra: dict[str, str] = field(default_factory=dict)
    # Why the guest's items could not be asked for at all (the endpoint
    # refused the query); "" when the host answered, items or none. Without
    # it, a refusal would read as a silent guest.
    kvp_unavailable: str = ""
    # Whether a virtual Fibre Channel adapter is connected
    # (Get-VMFibreChannelHba; not a hard disk drive, so not among `disks`);
    # None when the host was not asked or refused, why in
    # `fibre_channel_unavailable`.
    fibre_channel: bool | None = None
    fibre_channel_unavailable: str = ""


@dataclass(frozen=True)
class ReplicationInfo:
    """`Get-VMReplication` of one VM
    (https://learn.microsoft.com/powershell/module/hyper-v/get-vmreplication)."""

    state: str
    mode: str
    health: str = ""
    replica_server: str = ""


@dataclass(frozen=True)
class GuestInfo:
    """The guest's intrinsic KVP items (`Msvm_KvpExchangeComponent.
    GuestIntrinsicExchangeItems`); None where the guest did not publish one
    (off, or its integration services are off): unknown, never "no"."""

    fqdn: str | None = None
    os_name: str | None = None
    os_version: str | None = None
    # Windows' product type: 1 workstation, 2 domain controller, 3 server.
    product_type: int | None = None
    # Why the host could not list the guests' items at all (its endpoint
    # refused the query): every fact above is then unknown.
    unavailable: str = ""

    @property
    def published(self) -> bool:
        return any(v is not None for v in (self.fqdn, self.os_name, self.product_type))


@dataclass(frozen=True)
class DiscoveredVM:
    """One VM as a host's discovery saw it (`HyperVHost.discover_vms`)."""

    vm: VMInfo
    # The node that holds the VM now: `Get-VM`'s ComputerName.
    owner_node: str
    is_clustered: bool = False
    disks: tuple[DiskInfo, ...] = ()
    # None: Get-VM says ReplicationState Disabled.
    replication: ReplicationInfo | None = None
    guest: GuestInfo = field(default_factory=GuestInfo)
    # The host volume holding its first virtual disk (else its configuration);
    # None when no volume the host listed holds it.
    volume: str | None = None
    # As VMFacts.fibre_channel: None when not known, why beside it.
    fibre_channel: bool | None = None
    fibre_channel_unavailable: str = ""
