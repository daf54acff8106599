"""A modelled host's state: plain dataclasses that round-trip through JSON.

One `HostState` per host is the unit of storage and of locking (see
`store`). Enums are stored by name and datetimes as ISO-8601 text in UTC,
so a stored document is readable by a human poking at the database. A
document carries `format`; one written by an older model raises
`StaleState`, and seeding replaces it (the simulated estate starts over).

Space model (what `host` and `engine` keep consistent):

- `ModelVolume.used_bytes` is everything on the volume that is not
  checkpoint-related (base VHDX files, other data) when the model was
  seeded; `ModelVolume.written_bytes` is what files other than the VMs'
  written since took (`ModelHost.write_other_files`). On a Cluster Shared
  Volume every node's copy carries the same `used_bytes`, and each node
  keeps what was written through it in its own `written_bytes`, counted
  once for the cluster like its VMs' checkpoints (`engine.peer_bytes`).
- A checkpoint owns `avhdx_bytes`: the writes made while it was its VM's
  current parent, frozen when a child checkpoint is taken. One that holds
  the VM's memory (a standard checkpoint of a running, paused or saved VM)
  also owns `memory_bytes` (its .vmrs saved state).
- `ModelVM.live_bytes` is the live differencing disk: writes since the VM's
  parent checkpoint was taken or restored. It is reported as part of the
  parent's size, and is always 0 when the VM has no checkpoint (without a
  checkpoint, writes land in the base disk, which the model treats as
  already allocated).
- A `ModelMerge` holds the bytes of a removed checkpoint until its
  background merge ends; only then does the volume get them back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.devtools.hostmodel.enums import (
    CheckpointType,
    ControllerType,
    SnapshotType,
    VMReplicationHealthState,
    VMReplicationMode,
    VMReplicationState,
    VMState,
)

# Bumped whenever a stored document's shape changes.
FORMAT = 3


class StaleState(ValueError):
    """A stored document written by another version of the model."""


def _dt_to_str(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime in host state")
    return value.astimezone(UTC).isoformat()


def _dt_from_str(value: Any) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        raise ValueError(f"naive datetime {value!r} in host state")
    return parsed.astimezone(UTC)


def _required_dt(value: Any) -> datetime:
    parsed = _dt_from_str(value)
    if parsed is None:
        raise ValueError("missing datetime in host state")
    return parsed


@dataclass(frozen=True)
class ModelDisk:
    """A hard disk drive of a VM, or a virtual Fibre Channel adapter (which
    `Get-VMHardDiskDrive` does not list but which blocks checkpoints)."""

    path: str
    controller: ControllerType = ControllerType.SCSI
    # A shared VHDX or VHD Set: SupportPersistentReservations.
    shared: bool = False
    # A physical disk passed through: a disk number, no virtual disk file.
    passthrough: bool = False
    disk_number: int | None = None
    fibre_channel: bool = False

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["controller"] = self.controller.name
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelDisk:
        number = data.get("disk_number")
        return cls(
            path=str(data["path"]),
            controller=ControllerType.named(data.get("controller", "SCSI")),
            shared=bool(data.get("shared", False)),
            passthrough=bool(data.get("passthrough", False)),
            disk_number=None if number is None else int(number),
            fibre_channel=bool(data.get("fibre_channel", False)),
        )


@dataclass(frozen=True)
class ModelGuest:
    """What runs inside the VM, as the host can learn it: the intrinsic KVP
    items the guest's integration services publish, and whether its VSS
    writers can make a production checkpoint."""

    fqdn: str | None = None
    os_name: str | None = None
    os_version: str | None = None
    # KVP ProductType: 1 workstation, 2 domain controller, 3 server.
    product_type: int | None = None
    # The guest exchanges KVP items (integration services running).
    kvp: bool = True
    # VSS (or the Linux file-system freeze) works inside the guest.
    vss: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelGuest:
        product = data.get("product_type")
        return cls(
            fqdn=data.get("fqdn"),
            os_name=data.get("os_name"),
            os_version=data.get("os_version"),
            product_type=None if product is None else int(product),
            kvp=bool(data.get("kvp", True)),
            vss=bool(data.get("vss", True)),
        )


@dataclass(frozen=True)
class ModelReplication:
    """Hyper-V Replica for one VM, as Get-VMReplication reports it."""

    state: VMReplicationState = VMReplicationState.Replicating
    mode: VMReplicationMode = VMReplicationMode.Primary
    health: VMReplicationHealthState = VMReplicationHealthState.Normal
    replica_server: str = ""
    frequency_seconds: int = 300

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(state=self.state.name, mode=self.mode.name, health=self.health.name)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelReplication:
        return cls(
            state=VMReplicationState.named(data["state"]),
            mode=VMReplicationMode.named(data["mode"]),
            health=VMReplicationHealthState.named(data.get("health", "Normal")),
            replica_server=str(data.get("replica_server", "")),
            frequency_seconds=int(data.get("frequency_seconds", 300)),
        )


@dataclass
class ModelVolume:
    path: str
    capacity_bytes: int
    used_bytes: int
    # A Cluster Shared Volume: every node of the cluster holds a copy of it
    # (same path, capacity and base `used_bytes`), and what each node's VMs
    # write to it is counted once for the cluster (`engine.peer_bytes`).
    shared: bool = False
    # Other files written through this host since seeding. Kept apart from
    # `used_bytes` so that, on a CSV, the other nodes can count them: a copy's
    # `used_bytes` is the base every node already counts. (A document of an
    # older model has none: 0, so no format bump.)
    written_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelVolume:
        return cls(
            path=str(data["path"]),
            capacity_bytes=int(data["capacity_bytes"]),
            used_bytes=int(data["used_bytes"]),
            shared=bool(data.get("shared", False)),
            written_bytes=int(data.get("written_bytes", 0)),
        )


@dataclass
class ModelVM:
    vm_id: str
    name: str
    state: VMState
    checkpoint_type: CheckpointType
    volume_path: str
    automatic_checkpoints: bool = False
    guest: ModelGuest = field(default_factory=ModelGuest)
    disks: tuple[ModelDisk, ...] = ()
    # None: not replicated (Get-VM says ReplicationState Disabled).
    replication: ModelReplication | None = None
    is_clustered: bool = False
    generation: int = 2
    processor_count: int = 2
    memory_bytes: int = 0
    disk_bytes: int = 0
    write_rate_bytes_per_s: int = 0
    parent_checkpoint_id: str | None = None
    live_bytes: int = 0
    started_at: datetime | None = None

    @property
    def folder(self) -> str:
        """Where its configuration lives: `<volume>Hyper-V\\<name>`."""
        root = self.volume_path.rstrip("\\/")
        return f"{root}\\Hyper-V\\{self.name}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "vm_id": self.vm_id,
            "name": self.name,
            "state": self.state.name,
            "checkpoint_type": self.checkpoint_type.name,
            "volume_path": self.volume_path,
            "automatic_checkpoints": self.automatic_checkpoints,
            "guest": self.guest.to_dict(),
            "disks": [disk.to_dict() for disk in self.disks],
            "replication": None if self.replication is None else self.replication.to_dict(),
            "is_clustered": self.is_clustered,
            "generation": self.generation,
            "processor_count": self.processor_count,
            "memory_bytes": self.memory_bytes,
            "disk_bytes": self.disk_bytes,
            "write_rate_bytes_per_s": self.write_rate_bytes_per_s,
            "parent_checkpoint_id": self.parent_checkpoint_id,
            "live_bytes": self.live_bytes,
            "started_at": _dt_to_str(self.started_at),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelVM:
        replication = data.get("replication")
        return cls(
            vm_id=str(data["vm_id"]),
            name=str(data["name"]),
            state=VMState.named(data["state"]),
            checkpoint_type=CheckpointType.named(data["checkpoint_type"]),
            volume_path=str(data["volume_path"]),
            automatic_checkpoints=bool(data.get("automatic_checkpoints", False)),
            guest=ModelGuest.from_dict(data.get("guest") or {}),
            disks=tuple(ModelDisk.from_dict(d) for d in data.get("disks", ())),
            replication=None if replication is None else ModelReplication.from_dict(replication),
            is_clustered=bool(data.get("is_clustered", False)),
            generation=int(data.get("generation", 2)),
            processor_count=int(data.get("processor_count", 2)),
            memory_bytes=int(data.get("memory_bytes", 0)),
            disk_bytes=int(data.get("disk_bytes", 0)),
            write_rate_bytes_per_s=int(data.get("write_rate_bytes_per_s", 0)),
            parent_checkpoint_id=data.get("parent_checkpoint_id"),
            live_bytes=int(data.get("live_bytes", 0)),
            started_at=_dt_from_str(data.get("started_at")),
        )


@dataclass
class ModelCheckpoint:
    id: str
    vm_id: str
    name: str
    parent_id: str | None
    created_at: datetime
    snapshot_type: SnapshotType
    # The VM state the checkpoint holds (VMSnapshot.State): Off when it holds
    # no memory, else the running/saved/paused state it restores to.
    captured_state: VMState
    # The folder its files live in (VMSnapshot.Path).
    path: str
    # Tie-breaker for "oldest first" when a fake clock does not move.
    seq: int
    avhdx_bytes: int = 0
    memory_bytes: int = 0
    is_automatic: bool = False

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = _dt_to_str(self.created_at)
        data["snapshot_type"] = self.snapshot_type.name
        data["captured_state"] = self.captured_state.name
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCheckpoint:
        return cls(
            id=str(data["id"]),
            vm_id=str(data["vm_id"]),
            name=str(data["name"]),
            parent_id=data.get("parent_id"),
            created_at=_required_dt(data["created_at"]),
            snapshot_type=SnapshotType.named(data["snapshot_type"]),
            captured_state=VMState.named(data["captured_state"]),
            path=str(data["path"]),
            seq=int(data["seq"]),
            avhdx_bytes=int(data.get("avhdx_bytes", 0)),
            memory_bytes=int(data.get("memory_bytes", 0)),
            is_automatic=bool(data.get("is_automatic", False)),
        )


@dataclass
class ModelMerge:
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
    def from_dict(cls, data: dict[str, Any]) -> ModelMerge:
        return cls(
            vm_id=str(data["vm_id"]),
            volume_path=str(data["volume_path"]),
            release_bytes=int(data["release_bytes"]),
            ends_at=_required_dt(data["ends_at"]),
        )


@dataclass
class ModelOperation:
    """A checkpoint operation a cmdlet is running on a VM right now (its
    `VMOperationalStatus` value): from when the host starts on it until it
    is done or stopped, whoever sent it and whether they still listen."""

    op_id: str
    vm_id: str
    status: int
    started_at: datetime

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["started_at"] = _dt_to_str(self.started_at)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelOperation:
        return cls(
            op_id=str(data["op_id"]),
            vm_id=str(data["vm_id"]),
            status=int(data["status"]),
            started_at=_required_dt(data["started_at"]),
        )


@dataclass
class HostState:
    host: str
    vms: dict[str, ModelVM] = field(default_factory=dict)
    checkpoints: dict[str, ModelCheckpoint] = field(default_factory=dict)
    volumes: dict[str, ModelVolume] = field(default_factory=dict)
    merges: list[ModelMerge] = field(default_factory=list)
    # The modelled time the state has been advanced to; None until the
    # first call, so seeding needs no clock.
    as_of: datetime | None = None
    next_seq: int = 1
    # The failover cluster's nodes, this one included; empty for a standalone host.
    cluster_nodes: list[str] = field(default_factory=list)
    # Checkpoint operations running on VMs now (`ModelHost.operation`).
    operations: list[ModelOperation] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "host": self.host,
            "cluster_nodes": list(self.cluster_nodes),
            "vms": {key: vm.to_dict() for key, vm in self.vms.items()},
            "checkpoints": {key: cp.to_dict() for key, cp in self.checkpoints.items()},
            "volumes": {key: vol.to_dict() for key, vol in self.volumes.items()},
            "merges": [merge.to_dict() for merge in self.merges],
            "as_of": _dt_to_str(self.as_of),
            "next_seq": self.next_seq,
            "operations": [op.to_dict() for op in self.operations],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HostState:
        if data.get("format") != FORMAT:
            raise StaleState(
                f"host {data.get('host')!r}: state format {data.get('format')!r}, expected {FORMAT}"
            )
        return cls(
            host=str(data["host"]),
            vms={k: ModelVM.from_dict(v) for k, v in data.get("vms", {}).items()},
            checkpoints={
                k: ModelCheckpoint.from_dict(v) for k, v in data.get("checkpoints", {}).items()
            },
            volumes={k: ModelVolume.from_dict(v) for k, v in data.get("volumes", {}).items()},
            merges=[ModelMerge.from_dict(m) for m in data.get("merges", [])],
            as_of=_dt_from_str(data.get("as_of")),
            next_seq=int(data.get("next_seq", 1)),
            cluster_nodes=[str(n) for n in data.get("cluster_nodes", [])],
            operations=[ModelOperation.from_dict(o) for o in data.get("operations", [])],
        )
