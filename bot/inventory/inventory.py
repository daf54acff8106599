"""The inventory as a whole: cross-checks, lookups, and loading it from YAML."""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Self

from pydantic import Field, PrivateAttr, ValidationError, ValidationInfo, model_validator

from bot.inventory.errors import (
    InvalidName,
    InventoryError,
    UnknownCluster,
    UnknownGroup,
    UnknownHost,
    UnknownVM,
)
from bot.inventory.models import (
    VM,
    Cluster,
    Host,
    HostVolume,
    SafeName,
    _Model,
    normalize_vm_id,
)
from bot.inventory.names import check_name, suggest
from bot.yamlio import (
    YamlError,
    YamlPath,
    format_path,
    load_yaml,
    read_config_text,
    validation_errors,
)

__all__ = [
    "Inventory",
    "consistency_problems",
    "demo_inventory_path",
    "load_inventory",
    "parse_inventory",
]

# parse_inventory runs the cross-checks itself, with line numbers, so it asks the
# model validator to skip them.
_DEFER_CHECKS = "defer_inventory_checks"
_MAX_LISTED = 10


def demo_inventory_path() -> Path:
    """The simulated demo estate shipped in the repository."""
    return Path(__file__).resolve().parents[2] / "deploy" / "examples" / "demo-inventory.yaml"


class Inventory(_Model):
    """Hosts and VMs, consistent with each other, with lookups by name and id."""

    hosts: list[Host]
    # Failover clusters: which hosts may own a VM (docs/clusters.md).
    clusters: list[Cluster] = Field(default_factory=list)
    vms: list[VM] = Field(default_factory=list)
    # Named groups of VMs, selected together for a patch wave (`--group
    # web-tier`, docs/batches.md): group name → VM names.
    groups: dict[SafeName, list[SafeName]] = Field(default_factory=dict)

    _vms_by_name: dict[str, VM] = PrivateAttr(default_factory=dict)
    _vms_by_id: dict[str, VM] = PrivateAttr(default_factory=dict)
    _hosts_by_name: dict[str, Host] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _consistent_and_indexed(self, info: ValidationInfo) -> Self:
        if not (info.context or {}).get(_DEFER_CHECKS):
            problems = consistency_problems(
                self.hosts, self.vms, clusters=self.clusters, groups=self.groups
            )
            if problems:
                raise ValueError("; ".join(f"{format_path(p)}: {m}" for p, m in problems))
        self._hosts_by_name = {h.name.casefold(): h for h in reversed(self.hosts)}
        vms = [self._resolved(vm) for vm in self.vms]
        # The model is frozen for its users; completing it during its own validation
        # is the one place a field is set after the fact.
        object.__setattr__(self, "vms", vms)
        self._vms_by_name = {vm.name.casefold(): vm for vm in reversed(vms)}
        self._vms_by_id = {vm.vm_id: vm for vm in reversed(vms)}
        return self

    def _resolved(self, vm: VM) -> VM:
        """The VM with its host's canonical name and its volume filled in."""
        host = self._hosts_by_name.get(vm.host.casefold())
        if host is None:
            return vm
        volume = vm.volume
        if volume is None and host.volumes:
            volume = host.volumes[0].path
        elif volume is not None and (found := self._volume_of(host.name, volume)) is not None:
            volume = found.path
        if (host.name, volume) == (vm.host, vm.volume):
            return vm
        return vm.model_copy(update={"host": host.name, "volume": volume})

    def _volume_of(self, host: str, path: str) -> HostVolume | None:
        local = self._hosts_by_name[host.casefold()].volume(path)
        if local is not None:
            return local
        cluster = self.cluster_of(host)
        return cluster.volume(path) if cluster is not None else None

    def volume_for(self, vm: VM) -> HostVolume | None:
        """The VM's volume: its host's own, or its cluster's shared volume."""
        return self._volume_of(vm.host, vm.volume) if vm.volume else None

    def cluster_of(self, host: str) -> Cluster | None:
        """The failover cluster `host` is a node of, if any."""
        return next((c for c in self.clusters if c.has_node(host)), None)

    def nodes_for(self, vm: VM) -> list[str]:
        """The hosts that may own `vm`: its host's cluster's nodes (the
        inventory's host first), else its host alone."""
        cluster = self.cluster_of(vm.host)
        if cluster is None:
            return [vm.host]
        others = [self.host(n).name for n in cluster.nodes if n.casefold() != vm.host.casefold()]
        return [vm.host, *others]

    def group_of(self, vm: VM) -> str:
        """What a VM is looked for on: its cluster's name, else its host's."""
        cluster = self.cluster_of(vm.host)
        return cluster.name if cluster is not None else vm.host

    def vm(self, name: str) -> VM:
        """The VM with this name (case-insensitive), or InvalidName / UnknownVM."""
        check_name(name, kind="VM")
        found = self._vms_by_name.get(name.casefold())
        if found is None:
            raise UnknownVM(name, suggest(name, (vm.name for vm in self.vms)))
        return found

    def vm_by_id(self, vm_id: str) -> VM:
        try:
            key = normalize_vm_id(vm_id)
        except ValueError as exc:
            raise InvalidName(vm_id, "is not a VM id: " + str(exc), kind="VM id") from None
        found = self._vms_by_id.get(key)
        if found is None:
            raise UnknownVM(vm_id, by_id=True)
        return found

    def host(self, name: str) -> Host:
        """The host with this name (case-insensitive), or InvalidName / UnknownHost."""
        check_name(name, kind="host")
        found = self._hosts_by_name.get(name.casefold())
        if found is None:
            raise UnknownHost(name, suggest(name, (h.name for h in self.hosts)))
        return found

    @property
    def unchecked_certificates(self) -> tuple[str, ...]:
        """The hosts whose HTTPS certificate is not checked
        (`Host.certificate_unchecked`), by name, in the inventory's order."""
        return tuple(h.name for h in self.hosts if h.certificate_unchecked)

    def group(self, name: str) -> list[VM]:
        """The VMs of a named group, in the group's order, or InvalidName / UnknownGroup."""
        check_name(name, kind="group")
        names = {g.casefold(): members for g, members in self.groups.items()}
        members = names.get(name.casefold())
        if members is None:
            known = sorted(self.groups)
            raise UnknownGroup(name, known, suggest(name, known))
        return [self._vms_by_name[m.casefold()] for m in members]

    def tagged(self, tags: Iterable[tuple[str, str]]) -> list[VM]:
        """The VMs that carry every one of these tags (key and value compared
        without case), in inventory order."""
        wanted = [(k.casefold(), v.casefold()) for k, v in tags]
        return [
            vm
            for vm in self.vms
            if all(
                any(k == key.casefold() and v == value.casefold() for k, v in vm.tags.items())
                for key, value in wanted
            )
        ]

    def cluster(self, name: str) -> Cluster:
        """The failover cluster with this name (case-insensitive), or
        InvalidName / UnknownCluster."""
        check_name(name, kind="cluster")
        found = next((c for c in self.clusters if c.name.casefold() == name.casefold()), None)
        if found is None:
            known = sorted(c.name for c in self.clusters)
            raise UnknownCluster(name, known, suggest(name, known))
        return found

    def vms_on_cluster(self, name: str) -> list[VM]:
        """Every VM whose inventory host is a node of the named failover
        cluster (docs/clusters.md), in inventory order; UnknownCluster."""
        cluster = self.cluster(name)
        return [vm for vm in self.vms if cluster.has_node(vm.host)]

    def vms_on_host(self, name: str) -> list[VM]:
        host = self.host(name)
        return [vm for vm in self.vms if vm.host == host.name]

    def dcs_in_domain(self, domain: str) -> list[VM]:
        """Domain controllers (writable and read-only) of a domain, in inventory order."""
        wanted = domain.strip().rstrip(".").casefold()
        return [vm for vm in self.vms if vm.is_domain_controller and vm.domain == wanted]


def _at_path(path: YamlPath) -> str:
    return f"at {format_path(path)}"


def consistency_problems(
    hosts: Iterable[Host],
    vms: Iterable[VM],
    locate: Callable[[YamlPath], str] = _at_path,
    *,
    clusters: Iterable[Cluster] = (),
    groups: Mapping[str, list[str]] | None = None,
) -> list[tuple[YamlPath, str]]:
    """What is inconsistent between hosts and VMs, as (path, message) pairs.

    `locate` describes where an earlier definition is ("on line 9" when a file is known).
    """
    problems: list[tuple[YamlPath, str]] = []
    host_at: dict[str, int] = {}
    host_list = list(hosts)
    for i, host in enumerate(host_list):
        key = host.name.casefold()
        if key in host_at:
            first = locate(("hosts", host_at[key], "name"))
            problems.append((("hosts", i, "name"), f"duplicate host name (first defined {first})"))
        else:
            host_at[key] = i
    problems.extend(_endpoint_problems(host_list, locate))
    host_names = [h.name for h in host_list]
    cluster_list = list(clusters)
    problems.extend(_cluster_problems(cluster_list, host_at, host_names))
    name_at: dict[str, int] = {}
    id_at: dict[str, int] = {}
    vm_list = list(vms)
    for i, vm in enumerate(vm_list):
        if (j := name_at.setdefault(vm.name.casefold(), i)) != i:
            first = locate(("vms", j, "name"))
            problems.append((("vms", i, "name"), f"duplicate VM name (first defined {first})"))
        if (j := id_at.setdefault(vm.vm_id, i)) != i:
            first = locate(("vms", j, "vm_id"))
            problems.append((("vms", i, "vm_id"), f"duplicate vm_id (first used {first})"))
        if vm.is_domain_controller and vm.domain is None:
            problems.append(
                (
                    ("vms", i, "roles"),
                    "a domain controller needs `domain:` so its peer DCs can be counted",
                )
            )
        index = host_at.get(vm.host.casefold())
        if index is None:
            problems.append((("vms", i, "host"), _unknown("host", vm.host, host_names)))
        elif vm.volume is not None and _lacks_volume(host_list[index], cluster_list, vm.volume):
            host = host_list[index]
            paths = [v.path for v in host.volumes] + [
                v.path for c in cluster_list if c.has_node(host.name) for v in c.shared_volumes
            ]
            message = f"host {host.name} has no volume '{vm.volume}'" + (
                f" (expected one of: {', '.join(paths)})" if paths else " (it lists none)"
            )
            problems.append((("vms", i, "volume"), message))
    problems.extend(_group_problems(groups or {}, [vm.name for vm in vm_list]))
    return problems


def _endpoint_of(host: Host) -> tuple[str, int]:
    """Where the host's WinRM listener is, as one key for every spelling of
    it: the address without case, brackets or a final dot (an IP address in
    its one canonical form), and the port (`Host.port` is already the
    transport's default when none was given). The transport is not part of
    it: a TCP port has one listener, so two entries at one address and port
    reach the same machine whatever scheme each names."""
    address = host.address.strip().rstrip(".").casefold()
    bare = address[1:-1] if address.startswith("[") and address.endswith("]") else address
    # A DNS name is compared as written: nothing is resolved at load.
    with contextlib.suppress(ValueError):
        address = ipaddress.ip_address(bare).compressed
    return address, host.port


def _shown(host: Host) -> str:
    """address:port, an IPv6 address in brackets so the port stands apart."""
    address = host.address
    if ":" in address and not address.startswith("["):
        address = f"[{address}]"
    return f"{address}:{host.port}"


def _endpoint_problems(
    hosts: list[Host], locate: Callable[[YamlPath], str]
) -> list[tuple[YamlPath, str]]:
    """Hosts that repeat an earlier host's endpoint: whatever is asked of
    them is answered by the earlier host, so its VMs would be listed twice
    (one "a Hyper-V Replica copy") and their own marked missing. Typically a
    host merged from a YAML anchor (`<<: *prod-host`) that kept its address."""
    problems: list[tuple[YamlPath, str]] = []
    first_at: dict[tuple[str, int], int] = {}
    for i, host in enumerate(hosts):
        endpoint = _endpoint_of(host)
        j = first_at.setdefault(endpoint, i)
        if j == i:
            continue
        first = hosts[j]
        problems.append(
            (
                ("hosts", i),
                f"{host.name}: the same endpoint as {first.name} ({_shown(first)}, "
                f"defined {locate(('hosts', j))}): each host is its own WinRM endpoint; "
                f"give {host.name} its own address: or port:",
            )
        )
    return problems


def _group_problems(
    groups: Mapping[str, list[str]], vm_names: list[str]
) -> list[tuple[YamlPath, str]]:
    problems: list[tuple[YamlPath, str]] = []
    known = {n.casefold() for n in vm_names}
    seen_groups: set[str] = set()
    for group, members in groups.items():
        if group.casefold() in seen_groups:
            problems.append((("groups", group), "duplicate group name (names ignore case)"))
        seen_groups.add(group.casefold())
        if not members:
            problems.append((("groups", group), "a group needs at least one VM"))
        seen: set[str] = set()
        for j, member in enumerate(members):
            if member.casefold() not in known:
                problems.append((("groups", group, j), _unknown("VM", member, vm_names)))
            elif member.casefold() in seen:
                problems.append((("groups", group, j), f"VM {member!r} is listed twice"))
            seen.add(member.casefold())
    return problems


def _lacks_volume(host: Host, clusters: list[Cluster], path: str) -> bool:
    """True when neither the host nor its cluster has the volume."""
    if host.volume(path) is not None:
        return False
    return not any(c.has_node(host.name) and c.volume(path) is not None for c in clusters)


def _cluster_problems(
    clusters: list[Cluster], host_at: dict[str, int], host_names: list[str]
) -> list[tuple[YamlPath, str]]:
    problems: list[tuple[YamlPath, str]] = []
    names: set[str] = set()
    member_of: dict[str, str] = {}
    for c, cluster in enumerate(clusters):
        if cluster.name.casefold() in names:
            problems.append((("clusters", c, "name"), f"cluster {cluster.name} is listed twice"))
        names.add(cluster.name.casefold())
        for n, node in enumerate(cluster.nodes):
            where: YamlPath = ("clusters", c, "nodes", n)
            if node.casefold() not in host_at:
                problems.append((where, _unknown("host", node, host_names)))
            elif (other := member_of.setdefault(node.casefold(), cluster.name)) != cluster.name:
                # A Windows Server node belongs to one failover cluster at a time.
                problems.append((where, f"host {node} is already a node of cluster {other}"))
    return problems


def _unknown(kind: str, name: str, known: list[str]) -> str:
    if not known:
        return f"unknown {kind} {name!r} (the inventory lists no {kind}s)"
    # A name the inventory is refused for having twice is listed once.
    first: dict[str, str] = {}
    for spelled in known:
        first.setdefault(spelled.casefold(), spelled)
    known = list(first.values())
    if len(known) <= _MAX_LISTED:
        return f"unknown {kind} {name!r} (expected one of: {', '.join(known)})"
    close = suggest(name, known)
    return f"unknown {kind} {name!r}" + (f"; did you mean {', '.join(close)}?" if close else "")


def parse_inventory(text: str, source: str) -> Inventory:
    """Parse and check inventory YAML; every problem is reported with its line."""
    try:
        doc = load_yaml(text, source)
    except YamlError as exc:
        raise InventoryError(exc.problems) from None
    try:
        inventory = Inventory.model_validate(doc.data, context={_DEFER_CHECKS: True})
    except ValidationError as exc:
        # `from None`: pydantic's chained error would echo the offending values.
        raise InventoryError(validation_errors(exc, doc, model=Inventory)) from None

    def on_line(path: YamlPath) -> str:
        return f"on line {doc.line_of(path)}"

    problems = consistency_problems(
        inventory.hosts,
        inventory.vms,
        on_line,
        clusters=inventory.clusters,
        groups=inventory.groups,
    )
    if problems:
        found = [(path, doc.problem(path, message)) for path, message in problems]
        found.sort(key=lambda pair: _reading_order(pair[0], pair[1].line))
        raise InventoryError([problem for _path, problem in found])
    return inventory


def _reading_order(path: YamlPath, line: int | None) -> tuple[bool, int]:
    """Problems in file order, except that `groups:` comes last: a group
    only names VMs, so what is wrong there is often a knock-on of what is
    wrong in `vms:` (a VM renamed to a name another has leaves its group
    naming one that is gone), and the cause should be read first, even
    where `groups:` is written above `vms:`."""
    return (bool(path) and path[0] == "groups", line or 0)


def load_inventory(path: Path) -> Inventory:
    try:
        text = read_config_text(path, what="inventory")
    except YamlError as exc:
        raise InventoryError(exc.problems) from None
    return parse_inventory(text, str(path))
