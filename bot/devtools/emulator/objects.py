"""Hyper-V objects as a remote PowerShell session emits them.

    HvObject                one output object: type names, properties, ToString
    to_remoting(value)      what goes on the wire (psrpcore values), depth 1

Type names and property names follow the Hyper-V module
(`Microsoft.HyperV.PowerShell.*`). Enum values are the host model's
(bot.devtools.hostmodel.enums), never the bot's: what goes on the wire is what
the modelled host says.

Depth: remoting serializes output at depth 1 ([MS-PSRP] 2.2.5.2 and
PowerShell's serialization.cs): properties that are primitives (string,
integers, bool, Guid, DateTime, TimeSpan) or lists of them keep their type;
any other property value (an enum, a nested object) arrives as its ToString.
An enum emitted on its own (`Select-Object -ExpandProperty State`) keeps its
type names and integer ([MS-PSRP] 2.2.5.2.7 enums as <Obj><I32/></Obj>).
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from psrpcore.types import (
    PSEnumBase,
    PSInt64,
    PSNoteProperty,
    PSObject,
    PSType,
    PSUInt16,
    PSUInt64,
)

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

HV = "Microsoft.HyperV.PowerShell"
_HV_BASE = (f"{HV}.VirtualMachineBase", f"{HV}.VirtualizationObject", "System.Object")
VM_TYPES = (f"{HV}.VirtualMachine", *_HV_BASE)
SNAPSHOT_TYPES = (f"{HV}.VMSnapshot", *_HV_BASE)
DISK_TYPES = (
    f"{HV}.HardDiskDrive",
    f"{HV}.Drive",
    f"{HV}.VMDevice",
    f"{HV}.VirtualizationObject",
    "System.Object",
)
# Modelled: the page names the type (VMFibreChannelHba), not its base types.
FIBRE_CHANNEL_TYPES = (
    f"{HV}.VMFibreChannelHba",
    f"{HV}.VMDevice",
    f"{HV}.VirtualizationObject",
    "System.Object",
)
REPLICATION_TYPES = (f"{HV}.VMReplication", f"{HV}.VirtualizationObject", "System.Object")
_CIM = "Microsoft.Management.Infrastructure.CimInstance"
KVP_TYPES = (
    f"{_CIM}#root/virtualization/v2/Msvm_KvpExchangeComponent",
    f"{_CIM}#ROOT/virtualization/v2/CIM_EnabledLogicalElement",
    f"{_CIM}#ROOT/virtualization/v2/CIM_ManagedElement",
    _CIM,
    "System.Object",
)
VOLUME_TYPES = (
    f"{_CIM}#ROOT/Microsoft/Windows/Storage/MSFT_Volume",
    f"{_CIM}#ROOT/Microsoft/Windows/Storage/MSFT_StorageObject",
    _CIM,
    "System.Object",
)
CUSTOM_OBJECT_TYPES = ("System.Management.Automation.PSCustomObject", "System.Object")


# -- enums (rehydrate=False: nothing is registered in psrpcore's type registry)
# The wire's copies of the host model's enums (bot.devtools.hostmodel.enums),
# member for member; `ps_enum` converts by name and a test keeps them equal.


@PSType([f"{HV}.VMState"], rehydrate=False)
class PSVMState(PSEnumBase):
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


@PSType([f"{HV}.CheckpointType"], rehydrate=False)
class PSCheckpointType(PSEnumBase):
    Disabled = 2
    Production = 3
    ProductionOnly = 4
    Standard = 5


@PSType([f"{HV}.SnapshotType"], rehydrate=False)
class PSSnapshotType(PSEnumBase):
    Standard = 0
    Recovery = 1
    Planned = 2
    Missing = 5
    Replica = 6
    AppConsistentReplica = 7
    SyncedReplica = 8


@PSType([f"{HV}.VMOperationalStatus"], rehydrate=False)
class PSVMOperationalStatus(PSEnumBase):
    Ok = 2
    Degraded = 3
    InService = 11
    CreatingSnapshot = 32768
    ApplyingSnapshot = 32769
    DeletingSnapshot = 32770
    MergingDisks = 32772


@PSType([f"{HV}.VMReplicationState"], rehydrate=False)
class PSVMReplicationState(PSEnumBase):
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


@PSType([f"{HV}.VMReplicationMode"], rehydrate=False)
class PSVMReplicationMode(PSEnumBase):
    # The model's NotReplicated; psrpcore prints a member named `none` as "None".
    none = 0
    Primary = 1
    Replica = 2
    TestReplica = 3
    ExtendedReplica = 4


@PSType([f"{HV}.VMReplicationHealthState"], rehydrate=False)
class PSVMReplicationHealthState(PSEnumBase):
    NotApplicable = 0
    Normal = 1
    Warning = 2
    Critical = 3


@PSType([f"{HV}.ControllerType"], rehydrate=False)
class PSControllerType(PSEnumBase):
    IDE = 0
    SCSI = 1


# Model enum -> its wire copy; member names agree except the mode's None.
WIRE_ENUMS: dict[type[enum.IntEnum], type[PSEnumBase]] = {
    VMState: PSVMState,
    CheckpointType: PSCheckpointType,
    SnapshotType: PSSnapshotType,
    VMOperationalStatus: PSVMOperationalStatus,
    VMReplicationState: PSVMReplicationState,
    VMReplicationMode: PSVMReplicationMode,
    VMReplicationHealthState: PSVMReplicationHealthState,
    ControllerType: PSControllerType,
}
# Keyed by type and name: IntEnum members of different enums compare equal.
_RENAMED: dict[tuple[type[enum.IntEnum], str], str] = {
    (VMReplicationMode, VMReplicationMode.NotReplicated.name): "none"
}


def ps_enum(value: enum.IntEnum) -> PSEnumBase:
    """The wire object for a host-model enum value."""
    wire = WIRE_ENUMS[type(value)]
    member: PSEnumBase = wire[_RENAMED.get((type(value), value.name), value.name)]
    return member


def enum_text(value: PSEnumBase) -> str:
    """An enum's ToString, as PowerShell prints it."""
    name = str(value.name)
    return "None" if name == "none" else name


def u64(value: int) -> PSUInt64:
    return PSUInt64(value)


def i64(value: int) -> PSInt64:
    return PSInt64(value)


def u16(value: int) -> PSUInt16:
    return PSUInt16(value)


@dataclass(frozen=True)
class HvObject:
    """One object in the emulated pipeline.

    `props` holds the adapted (.NET) properties in declaration order; `notes`
    holds note properties (what Select-Object creates). `vm_id` and
    `checkpoint_id` let the next cmdlet bind the object by value, as the
    real parameter binder binds a live VirtualMachine / VMSnapshot.
    """

    type_names: tuple[str, ...]
    props: Mapping[str, Any]
    to_string: str
    notes: Mapping[str, Any] = field(default_factory=dict)
    vm_id: str | None = None
    checkpoint_id: str | None = None

    def get(self, name: str) -> tuple[bool, Any]:
        """Property lookup, case-insensitive like PowerShell's."""
        folded = name.casefold()
        for bag in (self.notes, self.props):
            for key, value in bag.items():
                if key.casefold() == folded:
                    return True, value
        return False, None

    def property_names(self) -> list[str]:
        return [*self.props, *self.notes]


_PRIMITIVES = (str, bool, int, float, uuid.UUID, dt.datetime, dt.timedelta)


def _at_depth_zero(value: Any) -> Any:
    """A property value past the serialization depth (see module docstring)."""
    if value is None:
        return None
    if isinstance(value, PSEnumBase):
        return enum_text(value)
    if isinstance(value, HvObject):
        return value.to_string
    if isinstance(value, list | tuple):
        return [_at_depth_zero(item) for item in value]
    if isinstance(value, dt.timedelta):
        return wire_timespan(value)
    if isinstance(value, _PRIMITIVES):
        return value
    return str(value)


def wire_timespan(value: dt.timedelta) -> dt.timedelta:
    """A TimeSpan psrpcore writes with all its digits. psrpcore 0.3 strips
    trailing "0"s and "."s from the seconds text together, so 100 s goes out
    as PT1M4S; a microsecond more (PT1M40.000001S) keeps the digits, as a
    real host's sub-second uptime always has some."""
    if value.microseconds == 0 and value.seconds % 10 == 0:
        return value + dt.timedelta(microseconds=1)
    return value


def to_remoting(value: Any) -> Any:
    """The value to hand psrpcore for one output object."""
    if not isinstance(value, HvObject):
        # Scalars and enums travel as themselves (an enum keeps its type).
        return value
    obj = PSObject()
    obj.PSObject.type_names = list(value.type_names)
    for name, prop in value.props.items():
        obj.PSObject.adapted_properties.append(PSNoteProperty(name, _at_depth_zero(prop)))
    for name, prop in value.notes.items():
        obj.PSObject.extended_properties.append(PSNoteProperty(name, _at_depth_zero(prop)))
    obj.PSObject.to_string = value.to_string
    return obj


def custom_object(source: HvObject, names: list[str]) -> HvObject:
    """`Select-Object -Property`: a PSCustomObject of note properties, typed
    `Selected.<original type>`, ToString `@{Name=...; State=...}`."""
    # One pass over the properties instead of one per selected name: the
    # same answers as `source.get` (notes first, then props, first match)
    # and the spelling of the first property name that matches.
    values: dict[str, Any] = {}
    for bag in (source.notes, source.props):
        for key, value in bag.items():
            values.setdefault(key.casefold(), value)
    spelling: dict[str, str] = {}
    for key in source.property_names():
        spelling.setdefault(key.casefold(), key)
    notes: dict[str, Any] = {}
    for name in names:
        folded = name.casefold()
        notes[spelling.get(folded, name)] = values.get(folded)
    text = "; ".join(f"{k}={_display(v)}" for k, v in notes.items())
    return HvObject(
        type_names=(f"Selected.{source.type_names[0]}", *CUSTOM_OBJECT_TYPES),
        props={},
        notes=notes,
        to_string=f"@{{{text}}}",
        vm_id=source.vm_id,
        checkpoint_id=source.checkpoint_id,
    )


_NEITHER_ENUM_NOR_OBJECT = frozenset(
    {str, bool, int, uuid.UUID, dt.datetime, PSUInt64, PSInt64, PSUInt16}
)


def _display(value: Any) -> str:
    if value is None:
        return ""
    if type(value) in _NEITHER_ENUM_NOR_OBJECT:
        # Before isinstance(), which is slow on psrpcore's integers.
        return str(value)
    if isinstance(value, PSEnumBase):
        return enum_text(value)
    if isinstance(value, HvObject):
        return value.to_string
    if isinstance(value, bool):
        return str(value)
    return str(value)
