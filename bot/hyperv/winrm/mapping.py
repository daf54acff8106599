"""Map pypsrp's deserialized output objects onto the typed results.

What arrives over PSRP is tolerated in every shape a real host produces
(docs/winrm-client.md, "What comes back"):

- an object is a `GenericComplexObject` whose real .NET properties are in
  `.adapted_properties` and whose note properties (what `Select-Object
  -Property` makes) are in `.extended_properties`; a hashtable is a dict;
- an enum is an enum object (`str()` is its name, `property_sets[0]` its
  integer), its name as a string (PowerShell 5.1 serializes nested objects
  at depth 1 as their ToString) or a bare integer;
- a Guid is a `uuid.UUID` or text; DateTime and TimeSpan are text.

Nothing here does I/O; a shape that cannot be read raises `MappingError`,
which the caller turns into a `PowerShellError` for the host.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TypeVar
from xml.etree import ElementTree as ET

from bot.domain import canonical_guid
from bot.hyperv.types import (
    Checkpoint,
    CheckpointType,
    DiscoveredVM,
    DiskInfo,
    GuestInfo,
    ReplicationInfo,
    SnapshotType,
    VMInfo,
    VMOperation,
    VMState,
    Volume,
)

E = TypeVar("E", VMState, CheckpointType)

# VMOperationalStatus.MergingDisks: the host merges a removed checkpoint's
# differencing disk. The `Status` text says the same but is localised.
MERGING_DISKS = 32772

# Microsoft.HyperV.PowerShell.VMReplicationState, for hosts that send the
# integer rather than the name (the bot only ever compares with "Disabled").
_REPLICATION_STATES = {
    0: "Disabled",
    1: "ReadyForInitialReplication",
    2: "InitialReplicationInProgress",
    3: "WaitingForInitialReplication",
    4: "Replicating",
    5: "PreparedForFailover",
    6: "FailedOverWaitingCompletion",
    7: "FailedOver",
    8: "Suspended",
    9: "Error",
    10: "WaitingForStartResynchronize",
    11: "Resynchronizing",
    12: "ResynchronizeSuspended",
}

# Microsoft.HyperV.PowerShell.VMReplicationMode, for hosts that send the integer.
_REPLICATION_MODES = {0: "None", 1: "Primary", 2: "Replica", 3: "TestReplica", 4: "ExtendedReplica"}

# xs:duration as CLIXML writes a TimeSpan: P1DT2H3M4.5S (days at most).
_XS_DURATION = re.compile(
    r"-?P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?\Z"
)
# TimeSpan.ToString(): [-][d.]hh:mm:ss[.fffffff]
_TIMESPAN_TEXT = re.compile(r"-?(?:(?P<d>\d+)\.)?(?P<h>\d+):(?P<m>\d+):(?P<s>\d+(?:\.\d+)?)\Z")
# DateTime.ToString() in the en-US culture PowerShell 5.1 uses at depth 1.
_US_DATETIME = "%m/%d/%Y %I:%M:%S %p"


class MappingError(ValueError):
    """An output object lacks a property the mapping needs, or has a shape
    no host produces."""


# -- generic accessors ---------------------------------------------------------


def properties(obj: object) -> dict[str, object]:
    """All properties of an output object, keys folded to lower case
    (PowerShell property names are case-insensitive). Note properties win
    over adapted ones, as they do in PowerShell."""
    found: dict[str, object] = {}
    if isinstance(obj, Mapping):
        found.update({str(k).lower(): v for k, v in obj.items()})
        return found
    for attr in ("adapted_properties", "extended_properties"):
        bag = getattr(obj, attr, None)
        if isinstance(bag, Mapping):
            found.update({str(k).lower(): v for k, v in bag.items()})
    return found


def pick(props: Mapping[str, object], *names: str) -> object:
    """The first of `names` present and not None."""
    for name in names:
        value = props.get(name.lower())
        if value is not None:
            return value
    return None


def text(value: object) -> str:
    """Text of a primitive or of an object's ToString."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def enum_raw(value: object) -> object:
    """An enum's integer when the object carries one, else its text."""
    if isinstance(value, int | str):
        return value
    inner = getattr(value, "value", None)  # pypsrp's own Enum objects
    if isinstance(inner, int) and not isinstance(inner, bool):
        return inner
    sets = getattr(value, "property_sets", None)
    if isinstance(sets, list) and sets and isinstance(sets[0], int):
        return sets[0]
    return text(value)


def enum_of(cls: type[E], value: object, *, field: str) -> E:
    try:
        return cls.parse(enum_raw(value))
    except (ValueError, TypeError) as exc:
        raise MappingError(f"{field}: {value!r} is not a {cls.__name__}") from exc


def guid(value: object, *, field: str) -> str:
    """A Guid in the bot's canonical form (lower case, no braces)."""
    if isinstance(value, uuid.UUID):
        return str(value)
    kept = canonical_guid(text(value))
    if kept is None:
        raise MappingError(f"{field}: {value!r} is not a GUID")
    return kept


def optional_guid(value: object, *, field: str) -> str | None:
    """None for a missing parent (a null, an empty string or the all-zero Guid)."""
    if value is None or text(value).strip() == "":
        return None
    found = guid(value, field=field)
    return None if found == str(uuid.UUID(int=0)) else found


def as_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    return text(value).strip().lower() in ("true", "1", "yes")


def as_int(value: object, default: int = 0) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    try:
        return int(float(text(value).strip()))
    except ValueError:
        return default


def as_datetime(value: object, *, field: str) -> datetime:
    """CLIXML DateTime text (ISO 8601, up to 7 fractional digits), or the
    en-US ToString of a depth-1 nested DateTime. A DateTime without offset
    (Kind Unspecified) is taken as UTC: the host's zone is unknown here."""
    parsed = value if isinstance(value, datetime) else _parse_datetime_text(text(value).strip())
    if parsed is None:
        raise MappingError(f"{field}: {text(value)!r} is not a date and time")
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _parse_datetime_text(raw: str) -> datetime | None:
    iso = re.sub(r"(\.\d{6})\d+", r"\1", raw)  # .NET writes 7 digits, Python reads 6
    try:
        return datetime.fromisoformat(iso)
    except ValueError:
        pass
    try:
        return datetime.strptime(raw, _US_DATETIME)
    except ValueError:
        return None


def seconds_of(value: object) -> int:
    """Whole seconds of a TimeSpan as xs:duration or its ToString; 0 when
    absent or unreadable (uptime is informational)."""
    raw = text(value).strip()
    match = _XS_DURATION.match(raw) or _TIMESPAN_TEXT.match(raw)
    if not raw or match is None:
        return as_int(value)
    parts = match.groupdict()
    total = (
        int(parts["d"] or 0) * 86400
        + int(parts["h"] or 0) * 3600
        + int(parts["m"] or 0) * 60
        + float(parts["s"] or 0)
    )
    return int(total)


def _flatten(value: object) -> list[object]:
    if isinstance(value, list | tuple):
        return [item for inner in value for item in _flatten(inner)]
    return [value]


# -- Hyper-V objects -------------------------------------------------------------


def is_merging(props: Mapping[str, object]) -> bool:
    """OperationalStatus (a list of enums, or its ToString) holds MergingDisks."""
    status = _flatten(pick(props, "OperationalStatus", "SecondaryOperationalStatus"))
    for item in status:
        raw = enum_raw(item)
        if raw == MERGING_DISKS:
            return True
        if isinstance(raw, str) and (
            str(MERGING_DISKS) in raw or "mergingdisks" in raw.replace(" ", "").lower()
        ):
            return True
    return False


def busy_of(props: Mapping[str, object]) -> frozenset[VMOperation] | None:
    """The checkpoint operations OperationalStatus reports in progress
    (Creating / Applying / Deleting Snapshot, Merging Disks: the secondary
    values of Msvm_ComputerSystem.OperationalStatus,
    https://learn.microsoft.com/windows/win32/hyperv_v2/msvm-computersystem),
    read by number or by the enum's name, never from the localised `Status`
    text. None when the host sent no OperationalStatus: it did not say."""
    raw_status = pick(props, "OperationalStatus", "SecondaryOperationalStatus")
    if raw_status is None:
        return None
    found: set[VMOperation] = set()
    for item in _flatten(raw_status):
        raw = enum_raw(item)
        words = [raw] if isinstance(raw, int) else re.split(r"[\s,{}]+", text(raw))
        for word in words:
            try:
                found.add(VMOperation.parse(word))
            except ValueError:
                continue  # Ok, InService, or a status that is no checkpoint operation
    return frozenset(found)


def replication_state(value: object) -> str:
    if value is None:
        return "Disabled"
    raw = enum_raw(value)
    if isinstance(raw, int):
        return _REPLICATION_STATES.get(raw, str(raw))
    return text(raw) or "Disabled"


def vm_state(value: object) -> VMState:
    try:
        return VMState.parse(enum_raw(value))
    except ValueError:
        # RunningCritical and the other *Critical states (storage lost):
        # not a state the bot acts on, so it must not look like one.
        return VMState.Other


def vm_info(obj: object, host: str) -> VMInfo:
    """`Get-VM` output (a VirtualMachine, or Select-Object's copy of one)."""
    props = properties(obj)
    vm_id = guid(pick(props, "VMId", "Id"), field="VMId")
    state = vm_state(pick(props, "State"))
    raw_type = pick(props, "CheckpointType")
    return VMInfo(
        vm_id=vm_id,
        name=text(pick(props, "Name", "VMName")),
        host=host,
        state=state,
        # Windows Server 2012 R2 has no CheckpointType: every checkpoint there
        # is a standard one.
        checkpoint_type=(
            CheckpointType.Standard
            if raw_type is None
            else enum_of(CheckpointType, raw_type, field="CheckpointType")
        ),
        automatic_checkpoints=as_bool(pick(props, "AutomaticCheckpointsEnabled")),
        merging=is_merging(props),
        busy=busy_of(props),
        replication_state=replication_state(pick(props, "ReplicationState")),
        parent_checkpoint_id=optional_guid(
            pick(props, "ParentSnapshotId", "ParentCheckpointId"), field="ParentSnapshotId"
        ),
        uptime_seconds=seconds_of(pick(props, "Uptime")),
    )


def checkpoint(obj: object, host: str) -> Checkpoint:
    """`Get-VMSnapshot` / `Checkpoint-VM -Passthru` output (a VMSnapshot).

    `SnapshotType` is read by name (or the module's integer); a value no
    member matches is `SnapshotType.Unknown`, never a guess. `State` is the
    state the checkpoint captured (a VMSnapshot is a VirtualMachineBase),
    None when the host did not send it."""
    props = properties(obj)
    captured = pick(props, "State")
    return Checkpoint(
        id=guid(pick(props, "Id", "SnapshotId"), field="Id"),
        vm_id=guid(pick(props, "VMId"), field="VMId"),
        vm_name=text(pick(props, "VMName")),
        host=host,
        name=text(pick(props, "Name")),
        parent_id=optional_guid(
            pick(props, "ParentSnapshotId", "ParentCheckpointId"), field="ParentSnapshotId"
        ),
        created_at=as_datetime(pick(props, "CreationTime"), field="CreationTime"),
        snapshot_type=SnapshotType.read(enum_raw(pick(props, "SnapshotType"))),
        # VMSnapshot has no size of its own; SizeOfSystemFiles (memory and
        # config) is what a host reports without walking the .avhdx chain.
        size_bytes=as_int(pick(props, "SizeOfSystemFiles", "SizeBytes")),
        path=text(pick(props, "Path")),
        captured_state=None if captured is None else vm_state(captured),
    )


_VHD_SUFFIXES = (".vhd", ".vhdx", ".vhds", ".avhd", ".avhdx")


def disk(obj: object) -> DiskInfo:
    """`Get-VMHardDiskDrive` output (a HardDiskDrive)."""
    props = properties(obj)
    path = text(pick(props, "Path"))
    # A pass-through disk is a physical disk: it has a DiskNumber and no
    # virtual hard disk file.
    number = pick(props, "DiskNumber")
    passthrough = number is not None and text(number).strip() != ""
    passthrough = passthrough and not path.lower().endswith(_VHD_SUFFIXES)
    controller = pick(props, "ControllerType")
    return DiskInfo(
        path=path,
        controller=text(enum_raw(controller)) if controller is not None else "SCSI",
        shared=as_bool(pick(props, "SupportPersistentReservations")),
        passthrough=passthrough,
    )


def volume(obj: object, host: str) -> Volume | None:
    """`Get-Volume` output (an MSFT_Volume); None for volumes without
    capacity (optical drives, unformatted partitions)."""
    props = properties(obj)
    capacity = as_int(pick(props, "Size"))
    if capacity <= 0:
        return None
    letter = text(pick(props, "DriveLetter")).strip().rstrip(":")
    if len(letter) == 1 and letter.isalpha():
        path = f"{letter.upper()}:\\"
    else:
        # A letterless volume (a CSV): its mount path when listed, else the
        # volume GUID path, which no VM path matches but still reports space.
        paths = [text(p).strip() for p in _flatten(pick(props, "AccessPaths")) if p]
        mounted = [p for p in paths if p and not p.startswith("\\\\?\\")]
        path = mounted[0] if mounted else text(pick(props, "Path")).strip()
        if not path:
            return None
        path = path if path.endswith("\\") else path + "\\"
    return Volume(
        host=host,
        path=path,
        capacity_bytes=capacity,
        free_bytes=as_int(pick(props, "SizeRemaining")),
    )


def volume_for(path: str, volumes: Iterable[Volume]) -> Volume | None:
    """The volume holding `path`: the longest matching mount path."""
    folded = path.replace("/", "\\").casefold()
    best: Volume | None = None
    for candidate in volumes:
        if folded.startswith(candidate.path.casefold()) and (
            best is None or len(candidate.path) > len(best.path)
        ):
            best = candidate
    return best


# -- KVP ---------------------------------------------------------------------------


def split_by_kind(
    outputs: Iterable[object], kinds: Iterable[tuple[str, tuple[str, ...]]]
) -> dict[str, list[object]]:
    """The outputs of several statements, each placed by the one kind whose
    properties it carries (Select-Object gives every object of a statement
    the same set). A text output is a KVP item (`kvp_items` takes both);
    an object no kind, or more than one, fits raises MappingError."""
    wanted = [(name, frozenset(p.lower() for p in props)) for name, props in kinds]
    found: dict[str, list[object]] = {name: [] for name, _ in wanted}
    for out in outputs:
        if isinstance(out, str | bytes):
            found["kvp"].append(out)
            continue
        have = properties(out).keys()
        fits = [name for name, props in wanted if props <= have]
        if len(fits) != 1:
            # The most specific fit: a set that holds another's wins.
            fits = [
                name
                for name in fits
                if not any(
                    dict(wanted)[name] < dict(wanted)[other] for other in fits if other != name
                )
            ]
        if len(fits) != 1:
            raise MappingError(f"an output of {sorted(have)[:6]} fits {fits or 'no statement'}")
        found[fits[0]].append(out)
    return found


def kvp_items(outputs: Iterable[object]) -> dict[str, str]:
    """Name -> Data of the GuestIntrinsicExchangeItems of Msvm_KvpExchangeComponent
    output (the CIM instance, or the item strings themselves)."""
    items: dict[str, str] = {}
    for out in outputs:
        if isinstance(out, str | bytes):
            raw_items: list[object] = [out]
        else:
            raw_items = _flatten(pick(properties(out), "GuestIntrinsicExchangeItems"))
        for raw in raw_items:
            if raw is None:
                continue
            parsed = _kvp_item(text(raw))
            if parsed is not None:
                items[parsed[0]] = parsed[1]
    return items


def _kvp_item(xml: str) -> tuple[str, str] | None:
    """One `<INSTANCE CLASSNAME="Msvm_KvpExchangeDataItem">` as (Name, Data).

    The Data values come from inside the guest, so they are untrusted: a
    document declaring a DTD or entities is skipped outright, which leaves
    nothing for entity expansion to work with."""
    if "<!" in xml:
        return None
    try:
        root = ET.fromstring(xml)  # noqa: S314 - no DTD/entities (checked above)
    except ET.ParseError:
        return None
    values: dict[str, str] = {}
    for node in root.iter("PROPERTY"):
        name = node.get("NAME")
        value = node.find("VALUE")
        if name and value is not None:
            values[name] = value.text or ""
    if "Name" not in values:
        return None
    return values["Name"], values.get("Data", "")


def kvp_product_type(items: Mapping[str, str]) -> int | None:
    raw = items.get("ProductType", "").strip()
    return int(raw) if raw.isdigit() else None


# -- discovery: a whole host's replies, joined by VMId --------------------------------


def vm_id_of(obj: object, *names: str) -> str:
    """The VMId an output object belongs to (`VMId`, or KVP's `SystemName`)."""
    props = properties(obj)
    return guid(pick(props, *(names or ("VMId",))), field=names[0] if names else "VMId")


def replication_info(obj: object) -> ReplicationInfo:
    """`Get-VMReplication` output (a VMReplication)."""
    props = properties(obj)
    return ReplicationInfo(
        state=replication_state(pick(props, "State")),
        mode=_replication_mode(pick(props, "Mode", "ReplicationMode")),
        health=text(enum_raw(pick(props, "Health", "ReplicationHealth"))),
        replica_server=text(pick(props, "ReplicaServer")),
    )


def _replication_mode(value: object) -> str:
    raw = enum_raw(value)
    if isinstance(raw, int):
        return _REPLICATION_MODES.get(raw, str(raw))
    return text(raw)


def guest_info(items: Mapping[str, str]) -> GuestInfo:
    """The intrinsic KVP items discovery reads; an absent or empty item is None."""
    return GuestInfo(
        fqdn=items.get("FullyQualifiedDomainName") or None,
        os_name=items.get("OSName") or None,
        os_version=items.get("OSVersion") or None,
        product_type=kvp_product_type(items),
    )


def discovered_vms(
    host: str,
    vm_outputs: Iterable[object],
    disk_outputs: Iterable[object],
    replication_outputs: Iterable[object],
    kvp_outputs: Iterable[object],
    volumes: Iterable[Volume],
    *,
    kvp_unavailable: str = "",
    fibre_channel: tuple[Iterable[object], str],
) -> list[DiscoveredVM]:
    """Join a host's discovery replies into one record per VM, by VMId.
    `kvp_unavailable`: why the guests' items could not be asked at all;
    `fibre_channel`: Get-VMFibreChannelHba's outputs, and why it could not
    be asked ("" when it was)."""
    fc_outputs, fc_refused = fibre_channel
    with_fibre_channel = {vm_id_of(out) for out in fc_outputs}
    disks: dict[str, list[DiskInfo]] = {}
    for out in disk_outputs:
        disks.setdefault(vm_id_of(out), []).append(disk(out))
    replicas = {vm_id_of(out): replication_info(out) for out in replication_outputs}
    guests = {vm_id_of(out, "SystemName"): guest_info(kvp_items([out])) for out in kvp_outputs}
    known_volumes = list(volumes)
    found: list[DiscoveredVM] = []
    for out in vm_outputs:
        vm = vm_info(out, host)
        props = properties(out)
        mine = tuple(disks.get(vm.vm_id, ()))
        # The volume of its first virtual disk file, else of its configuration.
        first = next((d.path for d in mine if not d.passthrough and d.path), "")
        where = volume_for(first or text(pick(props, "Path")), known_volumes)
        replication = replicas.get(vm.vm_id)
        if replication is None and vm.replication_state != "Disabled":
            # Get-VM says replicated, Get-VMReplication did not list it: what
            # Get-VM says is still known.
            replication = ReplicationInfo(state=vm.replication_state, mode="")
        found.append(
            DiscoveredVM(
                vm=vm,
                owner_node=text(pick(props, "ComputerName")) or host,
                is_clustered=as_bool(pick(props, "IsClustered")),
                disks=mine,
                replication=replication,
                guest=guests.get(vm.vm_id, GuestInfo(unavailable=kvp_unavailable)),
                volume=where.path if where is not None else None,
                fibre_channel=None if fc_refused else vm.vm_id in with_fibre_channel,
                fibre_channel_unavailable=fc_refused,
            )
        )
    return sorted(found, key=lambda d: (d.vm.name.lower(), d.vm.vm_id))
