"""The simulated host's state: plain dataclasses that round-trip through JSON.

One `HostState` per host is the unit of storage and of locking (see
`sim_store`). Enums are stored by name and datetimes as ISO-8601 text in
UTC, so a stored document is readable by a human poking at the database.

Space model (what `simulator` and `sim_clock` keep consistent):

- `SimVolume.used_bytes` is everything on the volume that is not
  checkpoint-related (base VHDX files, other data).
- A checkpoint owns `avhdx_bytes`: the writes made while it was its VM's
  current parent, frozen when a child checkpoint is taken. A standard
  checkpoint of a running/paused/saved VM also owns `memory_bytes`
  (its .vsv/.bin saved state).
- `SimVM.live_bytes` is the live differencing disk: writes since the VM's
  parent checkpoint was taken or restored. It is reported as part of the
  parent's size, and is always 0 when the VM has no checkpoint (without a
  checkpoint, writes land in the base disk, which the model treats as
  already allocated).
- A `SimMerge` holds the bytes of a removed checkpoint until its background
  merge ends; only then does the volume get them back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.hyperv.types import CheckpointType, DiskInfo, SnapshotType, VMState


def _dt_to_str(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime in simulator state")
    return value.astimezone(UTC).isoformat()


def _dt_from_str(value: Any) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        raise ValueError(f"naive datetime {value!r} in simulator state")
    return parsed.astimezone(UTC)


def _required_dt(value: Any) -> datetime:
    parsed = _dt_from_str(value)
    if parsed is None:
        raise ValueError("missing datetime in simulator state")
    return parsed


def _disk_from_dict(data: dict[str, Any]) -> DiskInfo:
    return DiskInfo(
        path=str(data["path"]),
        controller=str(data.get("controller", "SCSI")),
        shared=bool(data.get("shared", False)),
        passthrough=bool(data.get("passthrough", False)),
        fibre_channel=bool(data.get("fibre_channel", False)),
    )


@dataclass
class SimVolume:
    path: str
    capacity_bytes: int
    used_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SimVolume:
        return cls(
            path=str(data["path"]),
            capacity_bytes=int(data["capacity_bytes"]),
            used_bytes=int(data["used_bytes"]),
        )


@dataclass
class SimVM:
    vm_id: str
    name: str
    state: VMState
    checkpoint_type: CheckpointType
    volume_path: str
    automatic_checkpoints: bool = False
    vss_available: bool = True
    kvp_available: bool = True
    kvp_product_type: int | None = None
    fqdn: str | None = None
    os_name: str | None = None
    disks: tuple[DiskInfo, ...] = ()
    replication_enabled: bool = False
    replication_state: str = "Disabled"
    memory_bytes: int = 0
    disk_bytes: int = 0
    write_rate_bytes_per_s: int = 0
    parent_checkpoint_id: str | None = None
    live_bytes: int = 0
    started_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.name
        data["checkpoint_type"] = self.checkpoint_type.name
        data["disks"] = [asdict(disk) for disk in self.disks]
        data["started_at"] = _dt_to_str(self.started_at)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SimVM:
        product = data.get("kvp_product_type")
        return cls(
            vm_id=str(data["vm_id"]),
            name=str(data["name"]),
            state=VMState(VMState.parse(data["state"])),
            checkpoint_type=CheckpointType(CheckpointType.parse(data["checkpoint_type"])),
            volume_path=str(data["volume_path"]),
            automatic_checkpoints=bool(data.get("automatic_checkpoints", False)),
            vss_available=bool(data.get("vss_available", True)),
            kvp_available=bool(data.get("kvp_available", True)),
            kvp_product_type=None if product is None else int(product),
            fqdn=data.get("fqdn"),
            os_name=data.get("os_name"),
            disks=tuple(_disk_from_dict(d) for d in data.get("disks", ())),
            replication_enabled=bool(data.get("replication_enabled", False)),
            replication_state=str(data.get("replication_state", "Disabled")),
            memory_bytes=int(data.get("memory_bytes", 0)),
            disk_bytes=int(data.get("disk_bytes", 0)),
            write_rate_bytes_per_s=int(data.get("write_rate_bytes_per_s", 0)),
            parent_checkpoint_id=data.get("parent_checkpoint_id"),
            live_bytes=int(data.get("live_bytes", 0)),
            started_at=_dt_from_str(data.get("started_at")),
        )


@dataclass
class SimCheckpoint:
    id: str
    vm_id: str
    name: str
    parent_id: str | None
    created_at: datetime
    snapshot_type: SnapshotType
    # The VM's state when taken: a standard checkpoint restores to it.
    vm_state: VMState
    path: str
    # Tie-breaker for "oldest first" when a fake clock does not move.
    seq: int
    avhdx_bytes: int = 0
    memory_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = _dt_to_str(self.created_at)
        data["snapshot_type"] = self.snapshot_type.name
        data["vm_state"] = self.vm_state.name
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SimCheckpoint:
        return cls(
            id=str(data["id"]),
            vm_id=str(data["vm_id"]),
            name=str(data["name"]),
            parent_id=data.get("parent_id"),
            created_at=_required_dt(data["created_at"]),
            snapshot_type=SnapshotType(SnapshotType.parse(data["snapshot_type"])),
            vm_state=VMState(VMState.parse(data["vm_state"])),
            path=str(data["path"]),
            seq=int(data["seq"]),
            avhdx_bytes=int(data.get("avhdx_bytes", 0)),
            memory_bytes=int(data.get("memory_bytes", 0)),
        )


@dataclass
class SimMerge:
    """A removed checkpoint's disk being merged in the background."""

    vm_id: str
    volume_path: str
    release_bytes: int
    ends_at: datetime

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ends_at"] = _dt_to_str(self.ends_at)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SimMerge:
        return cls(
            vm_id=str(data["vm_id"]),
            volume_path=str(data["volume_path"]),
            release_bytes=int(data["release_bytes"]),
            ends_at=_required_dt(data["ends_at"]),
        )


@dataclass
class HostState:
    host: str
    vms: dict[str, SimVM] = field(default_factory=dict)
    checkpoints: dict[str, SimCheckpoint] = field(default_factory=dict)
    volumes: dict[str, SimVolume] = field(default_factory=dict)
    merges: list[SimMerge] = field(default_factory=list)
    # The simulated time the state has been advanced to; None until the
    # first call, so seeding needs no clock.
    as_of: datetime | None = None
    next_seq: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "vms": {key: vm.to_dict() for key, vm in self.vms.items()},
            "checkpoints": {key: cp.to_dict() for key, cp in self.checkpoints.items()},
            "volumes": {key: vol.to_dict() for key, vol in self.volumes.items()},
            "merges": [merge.to_dict() for merge in self.merges],
            "as_of": _dt_to_str(self.as_of),
            "next_seq": self.next_seq,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HostState:
        return cls(
            host=str(data["host"]),
            vms={k: SimVM.from_dict(v) for k, v in data.get("vms", {}).items()},
            checkpoints={
                k: SimCheckpoint.from_dict(v) for k, v in data.get("checkpoints", {}).items()
            },
            volumes={k: SimVolume.from_dict(v) for k, v in data.get("volumes", {}).items()},
            merges=[SimMerge.from_dict(m) for m in data.get("merges", [])],
            as_of=_dt_from_str(data.get("as_of")),
            next_seq=int(data.get("next_seq", 1)),
        )


@dataclass(frozen=True)
class SimVolumeSpec:
    path: str
    capacity_bytes: int
    used_bytes: int = 0


@dataclass(frozen=True, kw_only=True)
class SimVMSpec:
    """How to seed one VM; independent of the inventory's own types.
    Keyword-only: a dozen same-typed fields are too easy to swap by position."""

    name: str
    vm_id: str
    state: VMState
    checkpoint_type: CheckpointType
    automatic_checkpoints: bool = False
    vss_available: bool = True
    kvp_available: bool = True
    # KVP ProductType: 2 = domain controller, 3 = server.
    kvp_product_type: int | None = None
    fqdn: str | None = None
    os_name: str | None = None
    disks: tuple[DiskInfo, ...] = ()
    replication_enabled: bool = False
    memory_bytes: int = 4 * 1024**3
    disk_bytes: int = 60 * 1024**3
    write_rate_bytes_per_s: int = 0
    volume_path: str


def seed_host_state(
    host: str, vms: Iterable[SimVMSpec], volumes: Iterable[SimVolumeSpec]
) -> HostState:
    """A fresh host with no checkpoints. Raises ValueError on a spec that
    names an unknown volume or repeats a VMId."""
    state = HostState(host=host)
    for spec in volumes:
        if spec.used_bytes > spec.capacity_bytes:
            raise ValueError(f"volume {spec.path}: used exceeds capacity")
        state.volumes[spec.path] = SimVolume(spec.path, spec.capacity_bytes, spec.used_bytes)
    for vm in vms:
        if vm.vm_id in state.vms:
            raise ValueError(f"duplicate VMId {vm.vm_id} on {host}")
        if vm.volume_path not in state.volumes:
            raise ValueError(f"VM {vm.name}: unknown volume {vm.volume_path!r} on {host}")
        state.vms[vm.vm_id] = SimVM(
            vm_id=vm.vm_id,
            name=vm.name,
            state=vm.state,
            checkpoint_type=vm.checkpoint_type,
            volume_path=vm.volume_path,
            automatic_checkpoints=vm.automatic_checkpoints,
            vss_available=vm.vss_available,
            kvp_available=vm.kvp_available,
            kvp_product_type=vm.kvp_product_type,
            fqdn=vm.fqdn,
            os_name=vm.os_name,
            disks=vm.disks,
            replication_enabled=vm.replication_enabled,
            replication_state="Replicating" if vm.replication_enabled else "Disabled",
            memory_bytes=vm.memory_bytes,
            disk_bytes=vm.disk_bytes,
            write_rate_bytes_per_s=vm.write_rate_bytes_per_s,
        )
    return state
