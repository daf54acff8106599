"""What `inventory discover` does to an inventory, decided as pure functions.

    found_vm(DiscoveredVM)                 a host's record in the inventory's words
    plan_merge(current, found, scope, today, groups=...) -> MergePlan
    answered_as_another(found)             hosts that answered as another's machine
    owners_seen(found) -> {vm_id: host}    where each VM was seen, for the sightings
    apply_to_mappings(entries, plan)       the plan applied to plain mappings
    apply_to_groups(groups, plan)          the plan's renames applied to `groups:`

`plan_merge` never does I/O and never reads the clock: it compares the VMs an
inventory lists (validated, in file order) with what the asked hosts
reported, and says, entry by entry, which keys to set or remove. Writing the
plan into a YAML document with its comments is `bot.inventory.yamledit`'s
job; gathering from the hosts is the service's.

The rules (docs/discovery.md):

- a VM is matched by VMId, never by name; a rename is an update, made
  wherever the inventory names the VM: its entry and every named group
  (`groups:`) that lists it, the only other place that names VMs (clusters
  list hosts);
- discovery owns what a host reports: the owner node (`host`), the name, the
  checkpoint settings, the disk kinds it can see, Hyper-V Replica, the guest
  OS (when the guest publishes it) and the volume (when the inventory's host
  lists it); a person owns roles, tags, domain, app group, owner and comments,
  which are kept as written;
- a VM whose host was asked and answered, and which no asked host reported,
  is marked `missing_since`, never deleted; one on a host that was not asked
  or did not answer is left as it was, and so is one on a host that answered
  as another asked host's machine (`answered_as_another`); a VM of a
  failover cluster's node is marked only when every node of that cluster
  answered, since any node may own any of its VMs (docs/clusters.md);
- a VMId two hosts report as their own (neither a Hyper-V Replica copy) is
  neither added nor updated: which one has it is not known, and the bot
  never guesses (docs/clusters.md);
- a new VM gets what discovery knows and `roles_unknown: true`, because the
  roles that matter most (SQL AG, Exchange DAG, DFS-R, guest clusters) cannot
  be seen from the host; a guest reporting ProductType 2 gets the
  domain-controller role.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from functools import cached_property
from typing import Any

from bot.domain import Role
from bot.hyperv.types import CheckpointType, DiscoveredVM
from bot.inventory.inventory import Inventory
from bot.inventory.models import VM, Cluster, VMDisks
from bot.inventory.names import name_problem

# Windows' product type for a domain controller (OSVERSIONINFOEXW.wProductType,
# https://learn.microsoft.com/windows/win32/api/winnt/ns-winnt-osversioninfoexw),
# published over KVP as the intrinsic item ProductType.
DC_PRODUCT_TYPE = 2
# Roles no host-side fact shows; listed as "unknown — tag these".
UNDISCOVERABLE = ("SQL AG", "Exchange DAG", "DFS-R", "guest cluster")
_DOMAIN = re.compile(r"[a-z0-9-]+(\.[a-z0-9-]+)+\Z")
# A VHD Set is a `.vhds` file ("The new VHD Set file will have the same filename
# but with the .VHDS extension",
# https://learn.microsoft.com/windows/win32/hyperv_v2/msvm-imagemanagementservice-convertvirtualharddisktovhdset;
# https://learn.microsoft.com/powershell/module/hyper-v/get-vhdset); any other
# shared drive is a shared VHDX.
_VHD_SET_SUFFIX = ".vhds"
_REPLICA_MODES = frozenset({"replica", "testreplica", "extendedreplica"})
# KVP items come from inside the guest: untrusted text that ends up in YAML
# and on a terminal. Msvm_KvpExchangeDataItem.Data is at most 1024
# characters (https://learn.microsoft.com/windows/win32/hyperv_v2/msvm-kvpexchangedataitem);
# control characters (a terminal's escape sequences) become spaces.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_FQDN = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.?\Z")
_GUEST_TEXT_MAX = 200


def _guest_text(value: str | None) -> str | None:
    if value is None:
        return None
    cleaned = " ".join(_CONTROL.sub(" ", value).split())[:_GUEST_TEXT_MAX]
    return cleaned or None


def _fqdn(value: str | None) -> str | None:
    text = (value or "").strip()
    return text if text and len(text) <= 253 and _FQDN.match(text) else None


@dataclass(frozen=True)
class FoundVM:
    """One VM as discovery saw it, in the inventory's words (None: unknown)."""

    name: str
    vm_id: str
    # The inventory host that listed it: `Get-VM` lists the VMs registered
    # on the host it runs on, so this is the VM's owner.
    host: str
    state: str
    checkpoint_type: CheckpointType
    automatic_checkpoints: bool = False
    shared_vhdx: bool = False
    vhd_set: bool = False
    passthrough: bool = False
    replication: str | None = None
    # Primary, Replica, TestReplica, ExtendedReplica (Get-VMReplication's Mode).
    replication_mode: str | None = None
    # The host's own name for itself (`Get-VM`'s ComputerName).
    owner_node: str = ""
    fqdn: str | None = None
    guest_os: str | None = None
    # From KVP ProductType: True 2, False 1 or 3, None not published.
    domain_controller: bool | None = None
    volume: str | None = None
    is_clustered: bool = False
    # Why the host could not list any guest's KVP items (its endpoint refused).
    guest_unavailable: str = ""
    # A virtual Fibre Channel adapter (Get-VMFibreChannelHba); None when the
    # host could not be asked, why in `fibre_channel_unavailable`.
    fibre_channel: bool | None = False
    fibre_channel_unavailable: str = ""

    @property
    def hyperv_replica(self) -> bool:
        return self.replication is not None

    @property
    def is_replica_copy(self) -> bool:
        """A Hyper-V Replica copy: it keeps its primary's VMId
        (https://learn.microsoft.com/powershell/module/hyper-v/get-vmreplication,
        Mode Replica / TestReplica / ExtendedReplica)."""
        return (self.replication_mode or "").casefold() in _REPLICA_MODES

    @property
    def domain(self) -> str | None:
        """The DNS domain of the guest's FQDN (`web01.corp.example` ->
        `corp.example`); None for a bare host name."""
        if not self.fqdn or "." not in self.fqdn:
            return None
        suffix = self.fqdn.strip().rstrip(".").lower().split(".", 1)[1]
        return suffix if _DOMAIN.match(suffix) else None

    @property
    def display_name(self) -> str:
        """The name for a terminal: control characters shown as `?`."""
        return _CONTROL.sub("?", self.name)

    @property
    def disk_kinds(self) -> list[str]:
        flags = (
            ("passthrough", self.passthrough),
            ("shared_vhdx", self.shared_vhdx),
            ("vhd_set", self.vhd_set),
            ("virtual_fibre_channel", self.fibre_channel is True),
        )
        return [name for name, on in flags if on]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "vm_id": self.vm_id,
            "host": self.host,
            "owner_node": self.owner_node or self.host,
            "state": self.state,
            "checkpoint_type": self.checkpoint_type.name,
            "automatic_checkpoints": self.automatic_checkpoints,
            "disks": {
                "shared_vhdx": self.shared_vhdx,
                "vhd_set": self.vhd_set,
                "passthrough": self.passthrough,
                # null: the host's endpoint did not let it be asked.
                "virtual_fibre_channel": self.fibre_channel,
            },
            "replication": self.replication,
            "replication_mode": self.replication_mode,
            "guest": {
                "fqdn": self.fqdn,
                "os": self.guest_os,
                "domain_controller": self.domain_controller,
            },
            "volume": self.volume,
            "is_clustered": self.is_clustered,
        }


def found_vm(found: DiscoveredVM) -> FoundVM:
    shared = [d for d in found.disks if d.shared]
    product = found.guest.product_type
    return FoundVM(
        name=found.vm.name,
        vm_id=found.vm.vm_id,
        host=found.vm.host,
        owner_node=found.owner_node,
        state=found.vm.state.name,
        checkpoint_type=found.vm.checkpoint_type,
        automatic_checkpoints=found.vm.automatic_checkpoints,
        shared_vhdx=any(not d.path.lower().endswith(_VHD_SET_SUFFIX) for d in shared),
        vhd_set=any(d.path.lower().endswith(_VHD_SET_SUFFIX) for d in shared),
        passthrough=any(d.passthrough for d in found.disks),
        replication=None if found.replication is None else found.replication.state,
        replication_mode=None if found.replication is None else found.replication.mode or None,
        fqdn=_fqdn(found.guest.fqdn),
        guest_os=_guest_text(found.guest.os_name),
        domain_controller=None if product is None else product == DC_PRODUCT_TYPE,
        volume=found.volume,
        is_clustered=found.is_clustered,
        guest_unavailable=found.guest.unavailable,
        fibre_channel=found.fibre_channel,
        fibre_channel_unavailable=found.fibre_channel_unavailable,
    )


class Kind(enum.StrEnum):
    ADDED = "added"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    MISSING = "missing"  # newly marked
    STILL_MISSING = "still_missing"
    RETURNED = "returned"  # was marked missing, found again
    NOT_ASKED = "not_asked"  # its host was not asked or did not answer
    SKIPPED = "skipped"  # found, but cannot be added as it is


# The kinds of entry whose VM a host of this run reported.
_SEEN = frozenset({Kind.ADDED, Kind.UPDATED, Kind.UNCHANGED, Kind.RETURNED})


@dataclass(frozen=True)
class Change:
    key: str
    old: Any
    new: Any

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "old": self.old, "new": self.new}


@dataclass(frozen=True)
class Entry:
    """One VM's line in the plan. `index` is its position in the current
    list (None for an added VM); `set`/`unset` are top-level keys of its
    YAML entry; `record` is a whole new entry (added VMs)."""

    kind: Kind
    name: str
    vm_id: str
    host: str
    index: int | None = None
    set: tuple[tuple[str, Any], ...] = ()
    unset: tuple[str, ...] = ()
    changes: tuple[Change, ...] = ()
    record: tuple[tuple[str, Any], ...] = ()
    notes: tuple[str, ...] = ()
    roles_unknown: bool = False
    # A VM renamed on its host: the name the inventory had, and the named
    # groups that list it by that name (renamed with it); in_groups is None
    # when the plan was not given the inventory's groups.
    renamed_from: str | None = None
    in_groups: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "name": self.name,
            "vm_id": self.vm_id,
            "host": self.host,
            "changes": [c.to_dict() for c in self.changes],
            "notes": list(self.notes),
            "roles_unknown": self.roles_unknown,
            "renamed_from": self.renamed_from,
            "in_groups": None if self.in_groups is None else list(self.in_groups),
            **({"record": dict(self.record)} if self.record else {}),
        }


@dataclass(frozen=True)
class Scope:
    """Which hosts were asked, and which of them answered."""

    asked: tuple[str, ...]
    answered: tuple[str, ...]
    # Host's inventory name -> the volumes its inventory entry lists.
    volumes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # The inventory's failover clusters (`Inventory.clusters`): a VM listed
    # on one node may be owned by any other.
    clusters: tuple[Cluster, ...] = ()

    def answered_folded(self) -> frozenset[str]:
        return frozenset(h.casefold() for h in self.answered)

    def cluster_of(self, host: str) -> Cluster | None:
        return next((c for c in self.clusters if c.has_node(host)), None)


@dataclass(frozen=True)
class MergePlan:
    entries: tuple[Entry, ...]
    scope: Scope
    # Asked hosts that answered as another asked host's machine
    # (`answered_as_another`): host -> what it answered as. Their records
    # are not used and their VMs are left as they were.
    answered_as: Mapping[str, str] = field(default_factory=dict)

    def of(self, *kinds: Kind) -> list[Entry]:
        return [e for e in self.entries if e.kind in kinds]

    @property
    def changed(self) -> bool:
        return any(e.set or e.unset or e.kind is Kind.ADDED for e in self.entries)

    @property
    def unknown_roles(self) -> list[Entry]:
        """VMs an asked host reported whose undiscoverable roles nobody has
        set: "unknown — tag these". Only what this run saw: a run of one
        host listed the file's VMs of hosts it never asked (seen: `--host
        HVA1` asking to tag NEWAPP of HVS1), as if that host had said so."""
        return [e for e in self.entries if e.roles_unknown and e.kind in _SEEN]

    @property
    def unknown_roles_not_seen(self) -> list[Entry]:
        """The file's VMs with roles unknown that no host of this run
        reported (not asked, not answering, or gone): still to tag, but
        nothing this run can say about them."""
        return [e for e in self.entries if e.roles_unknown and e.kind not in _SEEN]

    def counts(self) -> dict[str, int]:
        return {kind.value: len(self.of(kind)) for kind in Kind}

    @cached_property
    def renames(self) -> dict[str, str]:
        """The names this merge changes: old name (case-folded) -> new name.
        Applied at once, never one after another: A01 -> B01 while B01 ->
        C01 is a chain, not A01 -> C01."""
        return {
            e.renamed_from.casefold(): e.name for e in self.entries if e.renamed_from is not None
        }

    def renamed_member(self, member: str) -> str | None:
        """The new name for a VM name written elsewhere in the inventory (a
        group's member, in any case), or None when the merge keeps it."""
        new = self.renames.get(member.casefold())
        return None if new is None or new == member else new


def volumes_by_host(inventory: Inventory) -> dict[str, tuple[str, ...]]:
    """The volumes a VM of each host may live on: the host's own, then its
    cluster's shared volumes (CSVs, docs/clusters.md)."""
    found: dict[str, tuple[str, ...]] = {}
    for host in inventory.hosts:
        cluster = inventory.cluster_of(host.name)
        shared = [v.path for v in cluster.shared_volumes] if cluster is not None else []
        found[host.name] = (*(v.path for v in host.volumes), *shared)
    return found


def _host_name(host: str, scope: Scope) -> str:
    """The inventory's spelling of a node name the host reported."""
    for known in (*scope.asked, *scope.volumes):
        if known.casefold() == host.casefold():
            return known
    return host


def _volume(found: FoundVM, host: str, scope: Scope) -> str | None:
    """The found volume as the inventory's host lists it; None when it does not."""
    if found.volume is None:
        return None
    for path in scope.volumes.get(host, ()):
        if path.casefold() == found.volume.casefold():
            return path
    return None


def _disks(found: FoundVM, current: VMDisks | None) -> dict[str, bool]:
    # Virtual Fibre Channel is the host's word when it could be asked
    # (Get-VMFibreChannelHba); when not, what a person wrote is kept.
    fibre_channel = found.fibre_channel
    if fibre_channel is None:
        fibre_channel = bool(current and current.virtual_fibre_channel)
    flags = {
        "shared_vhdx": found.shared_vhdx,
        "vhd_set": found.vhd_set,
        "passthrough": found.passthrough,
        "virtual_fibre_channel": fibre_channel,
    }
    return {k: True for k, v in flags.items() if v}


def _new_entry(found: FoundVM, scope: Scope) -> Entry:
    host = _host_name(found.host, scope)
    record: list[tuple[str, Any]] = [("name", found.name), ("vm_id", found.vm_id), ("host", host)]
    notes: list[str] = []
    domain = found.domain
    roles: list[str] = []
    if found.domain_controller:
        if domain is not None:
            roles.append(Role.DOMAIN_CONTROLLER.value)
        else:
            notes.append(
                "the guest reports ProductType 2 (a domain controller) but no domain in its "
                "FQDN: set domain: and roles: [domain_controller] by hand"
            )
    record.append(("roles", roles))
    record.append(("roles_unknown", True))
    if domain is not None:
        record.append(("domain", domain))
    if found.guest_os:
        record.append(("guest_os", found.guest_os))
    record.append(("checkpoint_type", found.checkpoint_type.name))
    if found.automatic_checkpoints:
        record.append(("automatic_checkpoints", True))
    disks = _disks(found, None)
    if disks:
        record.append(("disks", disks))
    if found.hyperv_replica:
        record.append(("hyperv_replica", True))
    volume = _volume(found, host, scope)
    if volume is not None:
        record.append(("volume", volume))
    if found.domain_controller is None and found.guest_unavailable:
        notes.append(
            f"its host did not list the guests' KVP items ({found.guest_unavailable}): "
            "whether it is a domain controller is unknown"
        )
    elif found.domain_controller is None:
        notes.append(
            "the guest published no KVP items (off, or integration services off): "
            "whether it is a domain controller is unknown"
        )
    if any(d for d in (found.shared_vhdx, found.vhd_set)):
        notes.append("it has a shared disk: probably a guest cluster node (cluster_node)")
    if found.fibre_channel is None:
        notes.append(
            "its host did not list virtual Fibre Channel adapters "
            f"({found.fibre_channel_unavailable}): whether it has one is unknown"
        )
    return Entry(
        kind=Kind.ADDED,
        name=found.name,
        vm_id=found.vm_id,
        host=host,
        record=tuple(record),
        notes=tuple(notes),
        roles_unknown=True,
    )


def _groups_naming(groups: Mapping[str, Sequence[str]], name: str) -> tuple[str, ...]:
    """The named groups that list `name` (any case), in the file's order."""
    folded = name.casefold()
    return tuple(g for g, members in groups.items() if any(m.casefold() == folded for m in members))


def _update(
    index: int,
    vm: VM,
    found: FoundVM,
    scope: Scope,
    names: Mapping[str, str],  # VMId -> its name after this merge
    copies: Sequence[FoundVM] = (),
    groups: Mapping[str, Sequence[str]] | None = None,
) -> Entry:
    host = _host_name(found.host, scope)
    wanted: list[tuple[str, Any, Any]] = []  # key, old, new
    notes: list[str] = []

    def compare(key: str, old: Any, new: Any) -> None:
        if old != new:
            wanted.append((key, old, new))

    name = names[vm.vm_id]
    problem = name_problem(found.name)
    if name != found.name:
        why = (
            f"a name that {problem}"
            if problem is not None
            else f"{found.name}, another VM's name here"
        )
        notes.append(f"renamed on its host to {why}: kept as {name}")
    compare("name", vm.name, name)
    renamed_from = vm.name if name != vm.name else None
    in_groups = None
    if renamed_from is not None and groups is not None:
        in_groups = _groups_naming(groups, vm.name)
    if in_groups:
        notes.append(f"renamed {vm.name} → {name} (also in groups: {', '.join(in_groups)})")
    if vm.host.casefold() != host.casefold():
        wanted.append(("host", vm.host, host))
    compare("checkpoint_type", vm.checkpoint_type.name, found.checkpoint_type.name)
    compare("automatic_checkpoints", vm.automatic_checkpoints, found.automatic_checkpoints)
    old_disks = {k: True for k, v in vm.disks.model_dump().items() if v}
    compare("disks", old_disks, _disks(found, vm.disks))
    compare("hyperv_replica", vm.hyperv_replica, found.hyperv_replica)
    if found.guest_os is not None:
        compare("guest_os", vm.guest_os, found.guest_os)
    volume = _volume(found, host, scope)
    unset: list[str] = []
    if volume is not None and (vm.volume or "").casefold() != volume.casefold():
        wanted.append(("volume", vm.volume, volume))
    elif volume is None and vm.volume is not None and host in scope.volumes:
        listed = [p.casefold() for p in scope.volumes[host]]
        if vm.volume.casefold() not in listed:
            # Moved to a host without that volume, and the new one is not
            # known: the host's first volume stands in (as for any VM).
            unset.append("volume")
    kind = Kind.UPDATED if wanted or unset else Kind.UNCHANGED
    if vm.missing_since is not None:
        unset.append("missing_since")
        kind = Kind.RETURNED
    notes.extend(_disagreements(vm, found))
    notes.extend(_copy_notes(copies))
    sets = tuple((key, new) for key, _old, new in wanted)
    return Entry(
        kind=kind,
        name=name,
        vm_id=vm.vm_id,
        host=host,
        index=index,
        set=sets,
        unset=tuple(unset),
        changes=tuple(Change(key, old, new) for key, old, new in wanted)
        + tuple(Change(key, getattr(vm, key), None) for key in unset),
        notes=tuple(notes),
        roles_unknown=vm.roles_unknown,
        renamed_from=renamed_from,
        in_groups=in_groups,
    )


def _disagreements(vm: VM, found: FoundVM) -> list[str]:
    """Where the host contradicts what a person set: said, never overwritten
    (the guardrails take the riskier reading, docs/host-truth.md)."""
    notes: list[str] = []
    if found.domain_controller is not None and found.domain_controller != vm.is_domain_controller:
        said = "is a domain controller (ProductType 2)" if found.domain_controller else "is not one"
        listed = "does not list the role" if found.domain_controller else "lists a DC role"
        notes.append(f"the guest says it {said}; roles: {listed} (kept as written)")
    if vm.domain and found.domain and vm.domain != found.domain:
        notes.append(f"its FQDN is in {found.domain}; domain: says {vm.domain} (kept as written)")
    return notes


@dataclass(frozen=True)
class _Sightings:
    """The found VMs by VMId. `chosen`: the one record of a VMId; `copies`:
    the Hyper-V Replica copies of it found beside that record (said, never
    listed); `ambiguous`: VMIds more than one host reported as its own (no
    record is chosen: which host has the VM is not known)."""

    chosen: dict[str, FoundVM]
    copies: dict[str, tuple[FoundVM, ...]]
    ambiguous: dict[str, tuple[FoundVM, ...]]


def _by_host(vms: Iterable[FoundVM]) -> tuple[FoundVM, ...]:
    return tuple(sorted(vms, key=lambda v: v.host.casefold()))


def _one_per_vm_id(found: Iterable[FoundVM]) -> _Sightings:
    """One record per VMId: where a Hyper-V Replica copy and its primary
    were both found, the primary. Two records neither of which is a copy
    (two primaries, or no replication at all) are not a primary and its
    copy: the VMId is ambiguous, never settled by host name order."""
    groups: dict[str, list[FoundVM]] = {}
    for vm in found:
        groups.setdefault(vm.vm_id, []).append(vm)
    sightings = _Sightings({}, {}, {})
    for vm_id, group in groups.items():
        owners = _by_host(v for v in group if not v.is_replica_copy)
        copies = _by_host(v for v in group if v.is_replica_copy)
        if len(owners) > 1:
            sightings.ambiguous[vm_id] = owners
        elif owners:
            sightings.chosen[vm_id] = owners[0]
        else:
            # Only copies (their primary not asked): one of them stands in,
            # and the others are copies indeed.
            sightings.chosen[vm_id], copies = copies[0], copies[1:]
        if copies:
            sightings.copies[vm_id] = copies
    return sightings


def _copy_notes(copies: Iterable[FoundVM]) -> tuple[str, ...]:
    return tuple(f"a Hyper-V Replica copy is on {copy.host}" for copy in copies)


def _ambiguity(owners: Sequence[FoundVM], scope: Scope) -> str:
    """Which hosts reported the VM as their own, in words."""
    hosts = [_host_name(v.host, scope) for v in owners]
    if len(hosts) == 2:
        return f"reported by both {hosts[0]} and {hosts[1]}, and neither is"
    return f"reported by {', '.join(hosts[:-1])} and {hosts[-1]}, and none is"


def _ambiguous_entry(
    owners: Sequence[FoundVM],
    copies: Sequence[FoundVM],
    scope: Scope,
    listed: tuple[int, VM] | None = None,
) -> Entry:
    """A VMId several hosts report as their own: a new one is skipped, a
    listed one (`listed`: its index and entry) left as it was."""
    said = f"{_ambiguity(owners, scope)} a Hyper-V Replica copy"
    if listed is None:
        first = owners[0]
        why = f"not added: {said}: add it by hand once only one of them has it"
        return Entry(
            Kind.SKIPPED,
            first.name,
            first.vm_id,
            ", ".join(_host_name(v.host, scope) for v in owners),
            notes=(why, *_copy_notes(copies)),
        )
    index, vm = listed
    why = f"left as it was: {said}: fix it by hand once only one of them has it"
    return Entry(
        Kind.UNCHANGED,
        vm.name,
        vm.vm_id,
        vm.host,
        index=index,
        notes=(why, *_copy_notes(copies)),
        roles_unknown=vm.roles_unknown,
    )


def _not_heard_from(vm: VM, scope: Scope) -> str | None:
    """Why a VM its own node answered without is not gone: another node of
    its failover cluster, which may own it now (live migration), did not
    answer or was not asked. None when every node that may own it answered."""
    cluster = scope.cluster_of(vm.host)
    if cluster is None:
        return None
    answered = scope.answered_folded()
    nodes = [
        _host_name(node, scope)
        for node in cluster.nodes
        if node.casefold() != vm.host.casefold() and node.casefold() not in answered
    ]
    if not nodes:
        return None
    if len(nodes) == 1:
        return f"left as it was: {nodes[0]}, another node of {cluster.name}, was not heard from"
    return f"left as it was: {', '.join(nodes)}, other nodes of {cluster.name}, were not heard from"


def _left(index: int, vm: VM, why: str | None = None) -> Entry:
    """A VM whose owner was not heard from: left as it was."""
    return Entry(
        Kind.NOT_ASKED,
        vm.name,
        vm.vm_id,
        vm.host,
        index=index,
        notes=() if why is None else (why,),
        roles_unknown=vm.roles_unknown,
    )


def _final_names(current: Sequence[VM], found: Mapping[str, FoundVM]) -> dict[str, str]:
    """Each listed VM's name after the merge: the host's name for it when
    that is a valid name no other VM ends up with (renames are applied until
    none is left to apply, so a name one VM gives up is free for another;
    names that would swap stay as they are)."""
    final = {vm.vm_id: vm.name for vm in current}
    changed = True
    while changed:
        changed = False
        holders = {name.casefold(): vm_id for vm_id, name in final.items()}
        for vm_id, name in final.items():
            wanted = found[vm_id].name if vm_id in found else name
            if wanted == name or name_problem(wanted) is not None:
                continue
            if holders.get(wanted.casefold(), vm_id) == vm_id:
                final[vm_id] = wanted
                changed = True
                break
    return final


def answered_as_another(found: Iterable[FoundVM]) -> dict[str, str]:
    """Asked hosts whose VMs name, as their host, the machine another asked
    host's VMs name too (Get-VM's ComputerName): host -> that machine.

    Get-VM lists the VMs registered on the machine it runs on, and a
    failover cluster's nodes each list their own, so two inventory hosts
    reporting one machine reach one WinRM listener: an address and a name
    of the same host, which the inventory's load-time check cannot see
    without resolving names. Taken at its word, the machine's VMs would be
    listed twice, one as "a Hyper-V Replica copy", and the other host's own
    VMs marked missing. The host whose inventory name is the machine's is
    kept; when none or several are, none is (which entry is wrong is not
    known)."""
    hosts_of: dict[str, list[str]] = {}
    spelled: dict[str, str] = {}
    for vm in found:
        machine = vm.owner_node.strip()
        if not machine:
            continue
        key = machine.casefold()
        spelled.setdefault(key, machine)
        hosts = hosts_of.setdefault(key, [])
        if vm.host not in hosts:
            hosts.append(vm.host)
    doubled: dict[str, str] = {}
    for key, hosts in hosts_of.items():
        if len(hosts) < 2:
            continue
        short = key.split(".", 1)[0]
        named = [h for h in hosts if h.casefold() in (key, short)]
        kept = named[0] if len(named) == 1 else None
        doubled.update((h, spelled[key]) for h in hosts if h != kept)
    return doubled


def owners_seen(found: Iterable[FoundVM]) -> dict[str, str]:
    """VMId -> the asked host that answered it has that VM: what discovery
    saw, for the record of where each VM was last seen (bot.store.sightings,
    as `bot.service.locate` records what a node answered). Read as
    `plan_merge` reads the hosts, so the record never says more than the
    plan: a host that answered as another asked host's machine was not
    heard from (`answered_as_another`); a VMId two hosts report as their
    own has no known owner (the locator's OwnerAmbiguous records nothing
    either); a Hyper-V Replica copy keeps its primary's VMId
    (https://learn.microsoft.com/powershell/module/hyper-v/get-vmreplication)
    but is not where the VM runs, so a VMId seen only as a copy is none."""
    found = list(found)
    doubled = answered_as_another(found)
    chosen = _one_per_vm_id(vm for vm in found if vm.host not in doubled).chosen
    return {vm_id: vm.host for vm_id, vm in chosen.items() if not vm.is_replica_copy}


def plan_merge(
    current: Sequence[VM],
    found: Iterable[FoundVM],
    scope: Scope,
    today: date,
    *,
    groups: Mapping[str, Sequence[str]] | None = None,
) -> MergePlan:
    """What merging `found` into `current` changes, VM by VM (pure).

    `groups` is the inventory's `groups:` (group name -> VM names): a VM
    renamed on its host is renamed in them too (`apply_to_groups`, and
    `yamledit.apply_plan` in the file), and its entry says which
    (`in_groups`)."""
    found = list(found)
    doubled = answered_as_another(found)
    if doubled:
        # What they said is another host's: as if they had not answered.
        found = [vm for vm in found if vm.host not in doubled]
        scope = replace(scope, answered=tuple(h for h in scope.answered if h not in doubled))
    sightings = _one_per_vm_id(found)
    by_id, ambiguous = dict(sightings.chosen), dict(sightings.ambiguous)
    copies = sightings.copies
    answered = scope.answered_folded()
    names = _final_names(current, by_id)
    entries: list[Entry] = []
    for index, vm in enumerate(current):
        seen = by_id.pop(vm.vm_id, None)
        owners = ambiguous.pop(vm.vm_id, ())
        if seen is not None:
            entries.append(_update(index, vm, seen, scope, names, copies.get(vm.vm_id, ()), groups))
        elif owners:
            entries.append(_ambiguous_entry(owners, copies.get(vm.vm_id, ()), scope, (index, vm)))
        elif vm.host.casefold() not in answered:
            entries.append(_left(index, vm))
        elif (unheard := _not_heard_from(vm, scope)) is not None:
            entries.append(_left(index, vm, unheard))
        elif vm.missing_since is not None:
            entries.append(
                Entry(
                    Kind.STILL_MISSING,
                    vm.name,
                    vm.vm_id,
                    vm.host,
                    index=index,
                    roles_unknown=vm.roles_unknown,
                )
            )
        else:
            entries.append(
                Entry(
                    Kind.MISSING,
                    vm.name,
                    vm.vm_id,
                    vm.host,
                    index=index,
                    set=(("missing_since", today),),
                    changes=(Change("missing_since", None, today),),
                    notes=(f"not found on {', '.join(scope.answered)}",),
                    roles_unknown=vm.roles_unknown,
                )
            )
    entries.extend(_additions(current, entries, list(by_id.values()), scope, copies))
    entries.extend(
        _ambiguous_entry(owners, copies.get(vm_id, ()), scope)
        for vm_id, owners in sorted(ambiguous.items(), key=lambda item: _sort_key(item[1][0]))
    )
    return MergePlan(entries=tuple(entries), scope=scope, answered_as=doubled)


def _sort_key(vm: FoundVM) -> tuple[str, str, str]:
    return (vm.host.casefold(), vm.name.casefold(), vm.vm_id)


def _additions(
    current: Sequence[VM],
    entries: list[Entry],
    new: list[FoundVM],
    scope: Scope,
    copies: Mapping[str, tuple[FoundVM, ...]],
) -> list[Entry]:
    # Names after the updates: a VM renamed on its host has its new name and
    # no longer holds its old one.
    final = {vm.vm_id: vm.name for vm in current}
    for entry in entries:
        for key, value in entry.set:
            if key == "name":
                final[entry.vm_id] = str(value)
    taken = {name.casefold(): vm_id for vm_id, name in final.items()}
    # A name two new VMs share (Hyper-V allows it on two hosts; the
    # inventory does not) goes to neither: which is meant is not known, and
    # host name order is no answer.
    namesakes: dict[str, list[FoundVM]] = {}
    for vm in new:
        namesakes.setdefault(vm.name.casefold(), []).append(vm)
    added: list[Entry] = []
    for vm in sorted(new, key=_sort_key):
        problem = name_problem(vm.name)
        owner = taken.get(vm.name.casefold())
        others = [o for o in namesakes[vm.name.casefold()] if o.vm_id != vm.vm_id]
        if problem is not None or owner is not None or others:
            if problem is not None:
                why = f"its name {problem}"
            elif owner is not None:
                why = f"the name is taken by VMId {owner} in the inventory"
            else:
                also = ", ".join(f"VMId {o.vm_id} on {_host_name(o.host, scope)}" for o in others)
                why = f"another new VM has the same name ({also})"
            added.append(
                Entry(
                    Kind.SKIPPED,
                    vm.name,
                    vm.vm_id,
                    _host_name(vm.host, scope),
                    notes=(f"not added: {why}; add it by hand under another name",),
                )
            )
            continue
        taken[vm.name.casefold()] = vm.vm_id
        entry = _new_entry(vm, scope)
        extra = _copy_notes(copies.get(vm.vm_id, ()))
        added.append(replace(entry, notes=entry.notes + extra) if extra else entry)
    return added


def apply_to_mappings(
    entries: Sequence[Mapping[str, Any]], plan: MergePlan
) -> list[dict[str, Any]]:
    """The plan applied to plain mappings (what the YAML's `vms:` holds):
    the same edits `yamledit` makes to a commented document, for tests and
    for checking the result before anything is written."""
    result = [dict(entry) for entry in entries]
    for entry in plan.entries:
        if entry.index is not None:
            target = result[entry.index]
            for key, value in entry.set:
                target[key] = value
            for key in entry.unset:
                target.pop(key, None)
        elif entry.kind is Kind.ADDED:
            result.append(dict(entry.record))
    return result


def apply_to_groups(groups: Mapping[str, Sequence[str]], plan: MergePlan) -> dict[str, list[str]]:
    """The plan's renames applied to `groups:` as plain mappings: every
    member that names a renamed VM (in any case) gets its new name, the
    same edit `yamledit` makes to a commented document."""
    return {
        group: [plan.renamed_member(member) or member for member in members]
        for group, members in groups.items()
    }
