"""Gather the facts the policy engine decides on, each with its provenance.

Two sources: the inventory (what the admins declared) and discovery on the
host (what Hyper-V says now). A fact discovery could not establish stays
unknown, and the engine never lets an unknown fact pass a rule. Where the
two sources disagree the provider reports it as `contradictions`; the rules
take the riskier reading.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.hyperv import CheckpointType, HyperVError, HyperVHost, VMFacts, VMOperation, VMState
from bot.inventory import VM, Inventory
from bot.store.tables import change_ref
from bot.store.tables.changes import Change
from policies import Fact, Facts

_DC_PRODUCT_TYPE = 2
# A VM `inventory discover` added: silence about SQL AG, Exchange DAG, DFS-R
# or guest clustering is not safety (docs/discovery.md).
_ROLES_UNKNOWN = (
    "discovery added this VM and nobody has set its roles yet (roles_unknown: true); "
    "set roles: in the inventory and remove roles_unknown"
)


@dataclass(frozen=True)
class FactSources:
    inventory: str
    host: str


def inventory_facts(inventory: Inventory, vm: VM, source: str, now: datetime) -> dict[str, Fact]:
    def fact(value: Any) -> Fact:
        return Fact(value=value, source=source, observed_at=now)

    host = inventory.host(vm.host)
    values = {
        "vm_name": fact(vm.name),
        "roles": (
            Fact.unknown(source, _ROLES_UNKNOWN)
            if vm.roles_unknown
            else fact(sorted(role.value for role in vm.roles))
        ),
        "tags": fact(dict(vm.tags)),
        "host": fact(host.name),
        "host_group": fact(host.host_group),
        "app_group": fact(vm.app_group),
        "inv_shared_disk": fact(bool(vm.disks.shared_vhdx or vm.disks.vhd_set)),
        "inv_passthrough": fact(vm.disks.passthrough),
        "inv_fibre_channel": fact(vm.disks.virtual_fibre_channel),
        "inv_hyperv_replica": fact(vm.hyperv_replica),
        "inv_checkpoint_type": fact(vm.checkpoint_type.name),
    }
    if vm.domain:
        values["domain"] = fact(vm.domain)
        values["domain_dcs"] = fact(sorted(d.name for d in inventory.dcs_in_domain(vm.domain)))
    else:
        why = "the inventory gives no domain for this VM"
        values["domain"] = Fact.unknown(source, why)
        values["domain_dcs"] = Fact.unknown(source, why)
    return values


_DISCOVERED = (
    "kvp_product_type",
    "disk_shared",
    "disk_passthrough",
    "disk_fibre_channel",
    "replication_enabled",
    "checkpoint_count",
    "volume_free_bytes",
    "volume_capacity_bytes",
    "vm_checkpoint_type",
    "vm_state",
    "vm_busy",
    "owner_host",
    "host_vm_name",
)


def discovered_facts(found: VMFacts, source: str, now: datetime) -> dict[str, Fact]:
    def fact(value: Any, why: str = "") -> Fact:
        if value is None:
            return Fact.unknown(source, why or "the host did not report it")
        return Fact(value=value, source=source, observed_at=now)

    volume = found.volume
    return {
        "kvp_product_type": fact(found.kvp_product_type, _why_no_product_type(found)),
        "disk_shared": fact(any(d.shared for d in found.disks)),
        "disk_passthrough": fact(any(d.passthrough for d in found.disks)),
        "disk_fibre_channel": fact(
            found.fibre_channel,
            found.fibre_channel_unavailable or "the host was not asked for Get-VMFibreChannelHba",
        ),
        "replication_enabled": fact(found.replication_enabled),
        "checkpoint_count": fact(found.checkpoint_count),
        "volume_free_bytes": fact(volume.free_bytes if volume else None),
        "volume_capacity_bytes": fact(volume.capacity_bytes if volume else None),
        "vm_checkpoint_type": fact(found.vm.checkpoint_type.name),
        "vm_state": fact(found.vm.state.name),
        # What the host calls it: Rename-VM keeps the VMId
        # (https://learn.microsoft.com/powershell/module/hyper-v/rename-vm).
        "host_vm_name": fact(found.vm.name),
        # The checkpoint operations the host reports running on the VM now
        # (Get-VM's OperationalStatus, bot.hyperv.types.VMOperation), by
        # name: what the job's re-check reads so that it asks no second time.
        "vm_busy": fact(
            sorted(op.name for op in found.vm.busy) if found.vm.busy is not None else None,
            "the host reported no OperationalStatus",
        ),
    }


def _why_no_product_type(found: VMFacts) -> str:
    """Why the guest's ProductType is unknown, from what the host said. Only
    a running guest whose data exchange integration service runs publishes
    its intrinsic KVP items (Msvm_KvpExchangeComponent,
    https://learn.microsoft.com/windows/win32/hyperv_v2/msvm-kvpexchangecomponent);
    an endpoint that refused the query said nothing about the guest at all,
    and blaming the guest would send the reader to the wrong place."""
    if found.kvp_unavailable:
        return found.kvp_unavailable
    state = found.vm.state
    if state is not VMState.Running:
        return f"the VM is {state.name}: only a running guest publishes KVP items"
    if found.kvp_os_name or found.kvp_fqdn:
        # Its exchange works; the guest itself does not say (not Windows, say).
        shown = found.kvp_os_name or found.kvp_fqdn
        return f"the guest publishes KVP items but no ProductType ({shown})"
    return (
        "the running guest publishes no KVP items (its data exchange integration "
        "service is off or not answering)"
    )


@dataclass(frozen=True, slots=True)
class VMSeen:
    """What a host's facts call read of the VM itself: the node it answered
    on, its CheckpointType and its state."""

    host: str
    checkpoint_type: CheckpointType
    state: VMState


def seen_in(facts: Facts) -> VMSeen | None:
    """The VM as `discovered_facts` recorded it, or None when the host was
    not asked or did not say (then whoever needs it asks the host)."""
    owner = facts.get("owner_host")
    kind = facts.get("vm_checkpoint_type")
    state = facts.get("vm_state")
    if not (owner.known and kind.known and state.known):
        return None
    return VMSeen(str(owner.value), CheckpointType[kind.value], VMState[state.value])


def busy_in(facts: Facts) -> frozenset[VMOperation] | None:
    """The operations `discovered_facts` recorded the host running on the
    VM; None when the host did not say (or was not asked)."""
    busy = facts.get("vm_busy")
    if not busy.known or not isinstance(busy.value, list):
        return None
    return frozenset(VMOperation[name] for name in busy.value)


def unreachable_facts(source: str, error: str) -> dict[str, Fact]:
    return {name: Fact.unknown(source, f"host not asked: {error}") for name in _DISCOVERED}


def unlocated_facts(source: str, why: str) -> dict[str, Fact]:
    """No node could be named as the VM's owner: `why` says what each node
    answered ("not found on prod-cluster (asked HV01, HV02)")."""
    return {name: Fact.unknown(source, why) for name in _DISCOVERED}


def change_facts(change: Change, now: datetime) -> dict[str, Fact]:
    assert change.id is not None
    source = f"change {change_ref(change.id)}"
    return {
        "expires_at": Fact(change.expires_at, source, now, known=change.expires_at is not None),
        "ttl_seconds": Fact(change.ttl_seconds, source, now),
        "change_created_at": Fact(change.created_at, source, now),
    }


def host_given(name: str) -> str:
    """A name the host gave, fit for the bot's own words: whoever manages
    the VM on its host chooses it (Rename-VM), and the bot's words keep
    their mention tokens in Slack, so no character of it may open one
    (`<`, `>`) or move a terminal (control characters)."""
    shown = "".join("?" if ord(c) < 32 or ord(c) == 127 else c for c in name[:100])
    # Single angle quotation marks: they read as the brackets, open nothing.
    return shown.replace("<", "\u2039").replace(">", "\u203a")


def contradictions(values: Mapping[str, Fact]) -> list[str]:
    """Where the host disagrees with the inventory (only known facts count)."""
    found: list[str] = []

    def both(inv: str, disc: str) -> tuple[Any, Any] | None:
        a, b = values.get(inv), values.get(disc)
        if a is None or b is None or not a.known or not b.known:
            return None
        return a.value, b.value

    roles = values.get("roles")
    kvp = values.get("kvp_product_type")
    if roles and kvp and roles.known and kvp.known:
        declared = any(
            r in ("domain_controller", "read_only_domain_controller") for r in roles.value
        )
        seen = kvp.value == _DC_PRODUCT_TYPE
        if declared != seen:
            found.append(
                f"the guest reports ProductType {kvp.value} "
                f"({'a domain controller' if seen else 'not a domain controller'}), "
                f"the inventory says it is {'' if declared else 'not '}one"
            )
    for inv, disc, what in (
        ("inv_shared_disk", "disk_shared", "a shared disk"),
        ("inv_passthrough", "disk_passthrough", "a pass-through disk"),
        ("inv_fibre_channel", "disk_fibre_channel", "virtual Fibre Channel"),
        ("inv_hyperv_replica", "replication_enabled", "Hyper-V Replica"),
    ):
        pair = both(inv, disc)
        if pair and bool(pair[0]) != bool(pair[1]):
            found.append(
                f"the host {'shows' if pair[1] else 'does not show'} {what}, "
                f"the inventory says {'yes' if pair[0] else 'no'}"
            )
    pair = both("host", "owner_host")
    if pair and str(pair[0]).casefold() != str(pair[1]).casefold():
        # A live migration moved it: the inventory's host is stale, not the VM wrong.
        found.append(f"{values['vm_name'].value} runs on {pair[1]}, the inventory says {pair[0]}")
    pair = both("vm_name", "host_vm_name")
    if pair and str(pair[0]).casefold() != str(pair[1]).casefold():
        # Renamed on its host: the same VM (its VMId), under a name the
        # inventory does not have yet.
        found.append(f"the host calls it {host_given(str(pair[1]))}, the inventory {pair[0]}")
    pair = both("inv_checkpoint_type", "vm_checkpoint_type")
    if pair and pair[0] != pair[1]:
        found.append(f"CheckpointType is {pair[1]} on the host, {pair[0]} in the inventory")
    return found


def gather(
    inventory: Inventory,
    vm: VM,
    host: HyperVHost | None,
    *,
    sources: FactSources,
    now: datetime,
    change: Change | None = None,
    on_host_error: Callable[[HyperVError], None] | None = None,
    owner: str | None = None,
    host_problem: str | None = None,
) -> Facts:
    """Inventory facts, discovery facts (unknown when the host cannot be
    asked) and, for an existing change, its lifetime. `on_host_error` sees
    why the host could not be asked first, so a caller can tell "the host
    is down" (nothing can be decided) from "the host does not know".
    `owner` is the node the VM was found on; `host_problem` why no node
    could be named."""
    values = inventory_facts(inventory, vm, sources.inventory, now)
    # Why the host said nothing, if it did not: then nothing can be compared,
    # and "the host agrees with the inventory" would be a guess.
    silent: str | None = host_problem
    if host_problem is not None:
        values |= unlocated_facts(sources.host, host_problem)
    elif host is None:
        silent = "no host connection"
        values |= unreachable_facts(sources.host, silent)
    else:
        try:
            values |= discovered_facts(host.vm_facts(vm.vm_id), sources.host, now)
            values["owner_host"] = Fact(owner or host.name, sources.host, now)
        except HyperVError as exc:
            if on_host_error is not None:
                on_host_error(exc)
            silent = f"host not asked: {exc.message}"
            values |= unreachable_facts(sources.host, exc.message)
    if change is not None:
        values |= change_facts(change, now)
    if silent is not None:
        values["contradictions"] = Fact.unknown("facts provider", silent)
    else:
        values["contradictions"] = Fact(contradictions(values), "facts provider", now)
    return Facts(values)
