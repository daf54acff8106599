"""The host-model file: what modelled Hyper-V hosts hold, written out on its own.

This is not the inventory. The inventory is what the bot's operators
believe; this file is what the hosts really are, so the two may disagree
(a "web server" whose guest reports itself a domain controller, a disk
nobody told the inventory is shared, replication switched on at the host).
Nothing here reads the inventory. Format (YAML)::

    hosts:
      - name: HV01                      # the host's name, as the bot knows it
        volumes:                        # at least one; VMs live on them
          - {path: 'D:\\', capacity_gb: 2000, used_gb: 700}
        vms:
          - name: WEB01
            vm_id: 8b3f6e1a-d9c2-4b07-a6e5-1f4d7c9b2e83
            state: Running              # Running | Off | Saved | Paused
            checkpoint_type: Production # Disabled | Production | ProductionOnly | Standard
            automatic_checkpoints: false
            volume: 'D:\\'               # default: the host's first volume
            is_clustered: false
            memory_gb: 8                # saved with a checkpoint that holds memory
            disk_gb: 80
            write_mb_per_hour: 150      # how fast a checkpoint's differencing disk grows
            disks:                      # default: one VHDX in the VM's folder
              - path: 'D:\\Hyper-V\\WEB01\\Virtual Hard Disks\\WEB01.vhdx'
                controller: SCSI        # SCSI | IDE
              # shared: true            a shared VHDX (.vhds: a VHD Set)
              # passthrough: true       a physical disk, with disk_number
              # fibre_channel: true     a virtual Fibre Channel adapter
            replication:                # absent: not replicated
              state: Replicating        # any VMReplicationState name
              mode: Primary             # Primary | Replica | TestReplica | ExtendedReplica
              replica_server: dr-hv01.corp.example
            guest:                      # what the guest publishes over KVP
              fqdn: web01.corp.example
              os_name: Windows Server 2022 Standard
              os_version: 10.0.20348
              product_type: 3           # 1 workstation, 2 domain controller, 3 server
              kvp: true                 # integration services exchange KVP items
              vss: true                 # VSS can make a production checkpoint

Every problem is reported as `FILE:LINE: FIELD: MESSAGE`, all of them at
once (`HostModelError`, a `YamlValidationError`). A host model can also be
built in code from the same classes.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Annotated, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from bot.devtools.hostmodel.enums import (
    CheckpointType,
    ControllerType,
    VMReplicationHealthState,
    VMReplicationMode,
    VMReplicationState,
    VMState,
)
from bot.devtools.hostmodel.state import (
    HostState,
    ModelDisk,
    ModelGuest,
    ModelReplication,
    ModelVM,
    ModelVolume,
    StaleState,
)
from bot.devtools.hostmodel.store import HostStateStore
from bot.yamlio import (
    ConfigProblem,
    YamlError,
    YamlPath,
    YamlValidationError,
    load_yaml,
    read_config_text,
    validation_errors,
)

GIB = 1024**3
MIB = 1024**2
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._ -]*\Z")
_DRIVE = re.compile(r"[A-Za-z]:\\?\Z")
# The power states a host model may start a VM in.
_START_STATES = (VMState.Running, VMState.Off, VMState.Saved, VMState.Paused)
# parse_host_model runs the cross-checks itself, with line numbers.
_DEFER_CHECKS = "defer_host_model_checks"


class HostModelError(YamlValidationError):
    """A host-model file that cannot be used; one problem per line."""


def demo_hosts_path() -> Path:
    """The demo estate's hosts, shipped beside the demo inventory."""
    return Path(__file__).resolve().parents[3] / "deploy" / "examples" / "demo-hosts.yaml"


def _name(value: object) -> object:
    if isinstance(value, str) and not _NAME.match(value):
        raise ValueError(f"expected letters, digits, '.', '_', '-' or spaces, got {value!r}")
    return value


def _vm_name(value: object) -> object:
    """A VM's name as Hyper-V takes it: `New-VM -Name` and `Rename-VM
    -NewName` document no character set
    (https://learn.microsoft.com/powershell/module/hyper-v/new-vm), and a
    real host holds names with quotes, accents and other scripts, which the
    bot must meet here too (discovery skips the ones an inventory cannot
    hold, saying why). Only what no one types is refused: control
    characters, and spaces at either end."""
    if isinstance(value, str) and (not value.isprintable() or value != value.strip()):
        raise ValueError(
            f"expected printable characters without spaces at either end, got {value!r}"
        )
    return value


def _guid(value: object) -> object:
    if not isinstance(value, str):
        return value
    try:
        return str(uuid.UUID(value.strip().strip("{}")))
    except ValueError:
        example = "8b3f6e1a-d9c2-4b07-a6e5-1f4d7c9b2e83"
        raise ValueError(f"expected a GUID like {example}, got {value!r}") from None


def _volume_path(value: object) -> object:
    """`D:`, `d:\\` and `D:\\` are one volume; mount paths end in a backslash."""
    if not isinstance(value, str) or not value.strip():
        return value
    text = value.strip().replace("/", "\\")
    if _DRIVE.match(text):
        return text[0].upper() + ":\\"
    return text if text.endswith("\\") else text + "\\"


def _start_state(value: object) -> VMState:
    if value is False:
        # YAML 1.1 reads a bare `off` as false.
        return VMState.Off
    try:
        state = VMState.named(value)
    except ValueError:
        state = None
    if state not in _START_STATES:
        names = ", ".join(s.name for s in _START_STATES)
        raise ValueError(f"expected one of: {names}, got {value!r}")
    assert state is not None
    return state


def _enum(cls: type[CheckpointType] | type[ControllerType]) -> BeforeValidator:
    return BeforeValidator(cls.named)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VolumeSpec(_Model):
    path: Annotated[str, BeforeValidator(_volume_path), Field(min_length=1)]
    capacity_gb: float = Field(gt=0)
    used_gb: float = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _fits(self) -> Self:
        if self.used_gb > self.capacity_gb:
            raise ValueError(
                f"used_gb ({self.used_gb:g}) is more than capacity_gb ({self.capacity_gb:g})"
            )
        return self


class DiskSpec(_Model):
    path: str = Field(min_length=1)
    controller: Annotated[ControllerType, _enum(ControllerType)] = ControllerType.SCSI
    shared: bool = False
    passthrough: bool = False
    disk_number: int | None = Field(default=None, ge=0)
    fibre_channel: bool = False

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        if sum((self.shared, self.passthrough, self.fibre_channel)) > 1:
            raise ValueError("a disk is at most one of shared, passthrough, fibre_channel")
        if self.disk_number is not None and not self.passthrough:
            raise ValueError("disk_number is for a passthrough disk")
        return self


class GuestSpec(_Model):
    fqdn: str | None = None
    os_name: str | None = None
    os_version: str | None = None
    product_type: int | None = Field(default=None, ge=1, le=3)
    kvp: bool = True
    vss: bool = True


class ReplicationSpec(_Model):
    state: Annotated[VMReplicationState, BeforeValidator(VMReplicationState.named)] = (
        VMReplicationState.Replicating
    )
    mode: Annotated[VMReplicationMode, BeforeValidator(VMReplicationMode.named)] = (
        VMReplicationMode.Primary
    )
    health: Annotated[VMReplicationHealthState, BeforeValidator(VMReplicationHealthState.named)] = (
        VMReplicationHealthState.Normal
    )
    replica_server: str = ""
    frequency_seconds: int = Field(default=300, gt=0)


class VMSpec(_Model):
    name: Annotated[str, BeforeValidator(_vm_name), Field(min_length=1, max_length=100)]
    vm_id: Annotated[str, BeforeValidator(_guid)]
    state: Annotated[VMState, BeforeValidator(_start_state)] = VMState.Running
    checkpoint_type: Annotated[CheckpointType, _enum(CheckpointType)] = CheckpointType.Production
    automatic_checkpoints: bool = False
    volume: Annotated[str, BeforeValidator(_volume_path)] | None = None
    is_clustered: bool = False
    generation: int = Field(default=2, ge=1, le=2)
    processor_count: int = Field(default=2, ge=1)
    memory_gb: float = Field(default=4, gt=0)
    disk_gb: float = Field(default=60, gt=0)
    write_mb_per_hour: float = Field(default=100, ge=0)
    disks: list[DiskSpec] | None = None
    replication: ReplicationSpec | None = None
    guest: GuestSpec = Field(default_factory=GuestSpec)


class HostSpec(_Model):
    name: Annotated[str, BeforeValidator(_name), Field(min_length=1, max_length=100)]
    volumes: list[VolumeSpec] = Field(min_length=1)
    vms: list[VMSpec] = Field(default_factory=list)


class ClusterSpec(_Model):
    """A failover cluster: its nodes (hosts of this file) and its Cluster
    Shared Volumes, which every node sees at the same path with no drive
    letter (`C:\\ClusterStorage\\VolumeN`,
    https://learn.microsoft.com/windows-server/failover-clustering/failover-cluster-csvs)."""

    name: Annotated[str, BeforeValidator(_name), Field(min_length=1, max_length=100)]
    nodes: list[str] = Field(min_length=1)
    shared_volumes: list[VolumeSpec] = Field(default_factory=list)

    def has_node(self, host: str) -> bool:
        return host.casefold() in {n.casefold() for n in self.nodes}


class HostModel(_Model):
    hosts: list[HostSpec] = Field(default_factory=list)
    clusters: list[ClusterSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Self:
        if (info.context or {}).get(_DEFER_CHECKS):
            return self  # parse_host_model reports them with their lines
        problems = consistency_problems(self)
        if problems:
            raise ValueError("; ".join(message for _path, message in problems))
        return self

    def host(self, name: str) -> HostSpec:
        for host in self.hosts:
            if host.name.casefold() == name.casefold():
                return host
        raise KeyError(name)

    def names(self) -> list[str]:
        return [host.name for host in self.hosts]

    def cluster_of(self, host: str) -> ClusterSpec | None:
        return next(
            (c for c in self.clusters if host.casefold() in {n.casefold() for n in c.nodes}),
            None,
        )

    def states(self) -> list[HostState]:
        return [host_state(host, self.cluster_of(host.name)) for host in self.hosts]


def consistency_problems(model: HostModel) -> list[tuple[YamlPath, str]]:
    """What does not fit together, as (path, message): a host listed twice, a
    volume listed twice, a VMId twice on one host, a VM on a volume its host
    lacks. (One VMId on two hosts is allowed: a Hyper-V Replica copy has its
    primary's VMId.)"""
    problems: list[tuple[YamlPath, str]] = []
    seen_hosts: set[str] = set()
    for h, host in enumerate(model.hosts):
        if host.name.casefold() in seen_hosts:
            problems.append((("hosts", h, "name"), f"host {host.name} is listed twice"))
        seen_hosts.add(host.name.casefold())
        local = [v.path.casefold() for v in host.volumes]
        cluster = model.cluster_of(host.name)
        shared = [v.path for v in cluster.shared_volumes] if cluster else []
        paths = local + [p.casefold() for p in shared]
        for i, path in enumerate(local):
            if path in paths[:i]:
                problems.append(
                    (("hosts", h, "volumes", i, "path"), f"volume '{host.volumes[i].path}' twice")
                )
        ids: set[str] = set()
        for v, vm in enumerate(host.vms):
            if vm.vm_id in ids:
                problems.append(
                    (("hosts", h, "vms", v, "vm_id"), f"VMId {vm.vm_id} twice on {host.name}")
                )
            ids.add(vm.vm_id)
            if vm.volume is not None and vm.volume.casefold() not in paths:
                listed = ", ".join([volume.path for volume in host.volumes] + shared)
                problems.append(
                    (
                        ("hosts", h, "vms", v, "volume"),
                        f"host {host.name} has no volume '{vm.volume}' (it has: {listed})",
                    )
                )
    problems.extend(_cluster_problems(model))
    return problems


def _cluster_problems(model: HostModel) -> list[tuple[YamlPath, str]]:
    problems: list[tuple[YamlPath, str]] = []
    hosts = {h.name.casefold() for h in model.hosts}
    member: dict[str, str] = {}
    for c, cluster in enumerate(model.clusters):
        for n, node in enumerate(cluster.nodes):
            where: YamlPath = ("clusters", c, "nodes", n)
            if node.casefold() not in hosts:
                problems.append((where, f"no host {node} in this file"))
            elif member.setdefault(node.casefold(), cluster.name) != cluster.name:
                problems.append((where, f"{node} is already a node of {member[node.casefold()]}"))
        for v, volume in enumerate(cluster.shared_volumes):
            if any(
                volume.path.casefold() == local.path.casefold()
                for h in model.hosts
                if cluster.has_node(h.name)
                for local in h.volumes
            ):
                problems.append(
                    (
                        ("clusters", c, "shared_volumes", v, "path"),
                        f"'{volume.path}' is also a node's own volume",
                    )
                )
    return problems


def _default_disk(vm: VMSpec, volume: str) -> ModelDisk:
    return ModelDisk(path=f"{volume}Hyper-V\\{vm.name}\\Virtual Hard Disks\\{vm.name}.vhdx")


def _disk(spec: DiskSpec) -> ModelDisk:
    return ModelDisk(
        path=spec.path,
        controller=spec.controller,
        shared=spec.shared,
        passthrough=spec.passthrough,
        # A pass-through disk always has a number on the host.
        disk_number=(spec.disk_number if spec.disk_number is not None else 2)
        if spec.passthrough
        else None,
        fibre_channel=spec.fibre_channel,
    )


def vm_state(vm: VMSpec, host: HostSpec, cluster: ClusterSpec | None = None) -> ModelVM:
    visible = [*host.volumes, *(cluster.shared_volumes if cluster else [])]
    volume = next(
        (v.path for v in visible if vm.volume and v.path.casefold() == vm.volume.casefold()),
        host.volumes[0].path,
    )
    disks = [_disk(d) for d in vm.disks] if vm.disks is not None else [_default_disk(vm, volume)]
    guest = vm.guest
    replication = vm.replication
    return ModelVM(
        vm_id=vm.vm_id,
        name=vm.name,
        state=vm.state,
        checkpoint_type=vm.checkpoint_type,
        volume_path=volume,
        automatic_checkpoints=vm.automatic_checkpoints,
        guest=ModelGuest(
            fqdn=guest.fqdn,
            os_name=guest.os_name,
            os_version=guest.os_version,
            product_type=guest.product_type,
            kvp=guest.kvp,
            vss=guest.vss,
        ),
        disks=tuple(disks),
        replication=(
            None
            if replication is None
            else ModelReplication(
                state=replication.state,
                mode=replication.mode,
                health=replication.health,
                replica_server=replication.replica_server,
                frequency_seconds=replication.frequency_seconds,
            )
        ),
        is_clustered=vm.is_clustered,
        generation=vm.generation,
        processor_count=vm.processor_count,
        memory_bytes=int(vm.memory_gb * GIB),
        disk_bytes=int(vm.disk_gb * GIB),
        write_rate_bytes_per_s=int(vm.write_mb_per_hour * MIB / 3600),
    )


def host_state(host: HostSpec, cluster: ClusterSpec | None = None) -> HostState:
    """A fresh host as the file describes it: no checkpoints, no history. A
    cluster node holds its cluster's shared volumes too (each node's copy
    carries the same base usage, counted once: `engine.peer_bytes`)."""
    state = HostState(host=host.name, cluster_nodes=list(cluster.nodes) if cluster else [])
    for volume in host.volumes:
        state.volumes[volume.path] = ModelVolume(
            volume.path, int(volume.capacity_gb * GIB), int(volume.used_gb * GIB)
        )
    for volume in cluster.shared_volumes if cluster else []:
        state.volumes[volume.path] = ModelVolume(
            volume.path, int(volume.capacity_gb * GIB), int(volume.used_gb * GIB), shared=True
        )
    for vm in host.vms:
        state.vms[vm.vm_id] = vm_state(vm, host, cluster)
    return state


def seed_missing(store: HostStateStore, model: HostModel) -> list[str]:
    """Seed every host the store does not hold yet (or holds in an older
    model's format); hosts already there keep their state."""
    known = set(store.hosts())
    seeded = []
    for host in model.hosts:
        if host.name in known:
            try:
                store.read(host.name)
                continue
            except StaleState:
                pass
        store.seed(host_state(host, model.cluster_of(host.name)))
        seeded.append(host.name)
    return seeded


def parse_host_model(text: str, source: str) -> HostModel:
    """Parse and check host-model YAML; every problem is reported with its line."""
    try:
        doc = load_yaml(text, source)
    except YamlError as exc:
        raise HostModelError(exc.problems) from None
    if doc.data is None:
        raise HostModelError([ConfigProblem(source, None, "", "the file is empty")])
    try:
        model = HostModel.model_validate(doc.data, context={_DEFER_CHECKS: True})
    except ValidationError as exc:
        # `from None`: pydantic's chained error would echo every value.
        raise HostModelError(validation_errors(exc, doc, model=HostModel)) from None
    problems = [doc.problem(path, message) for path, message in consistency_problems(model)]
    if problems:
        raise HostModelError(sorted(problems, key=lambda p: p.line or 0))
    return model


# Parsed files by (path, size, mtime): every context of a process (each CLI
# command, each test) reads the same file, and a HostModel is immutable.
_PARSED: dict[tuple[str, int, int], HostModel] = {}
_PARSED_MAX = 8


def load_host_model(path: Path) -> HostModel:
    try:
        stat = path.stat()
    except OSError:
        stat = None
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns) if stat else None
    if key is not None and key in _PARSED:
        return _PARSED[key]
    try:
        text = read_config_text(path, what="host-model")
    except YamlError as exc:
        raise HostModelError(exc.problems) from None
    model = parse_host_model(text, str(path))
    if key is not None:
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[key] = model
    return model
