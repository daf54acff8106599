"""Where each VM of the inventory was last seen: `inventory show`, and the
one reading of a host's or a VM's name that narrows it and `checkpoint list`.

A sighting is written whenever a node answered that it has the VM
(bot.service.locate); a VM the bot never asked about has none. A VM seen on
another node than the inventory names was live-migrated (drift of the
inventory, docs/clusters.md). `inventory show` answers without the rest of
the bot (no context, no host): when the database does not answer, where the
VMs were seen is unknown and says so, and the inventory is still shown.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.inventory import (
    VM,
    Cluster,
    Host,
    Inventory,
    InventoryLookupError,
    UnknownCluster,
    UnknownGroup,
    UnknownHost,
    UnknownVM,
    check_name,
    suggest,
)
from bot.service.errors import BadRequest, from_inventory
from bot.store import migrate
from bot.store.db import driver_reason, make_engine
from bot.store.sightings import Sighting, all_seen, last_seen

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)


class FocusKind(enum.StrEnum):
    HOST = "host"
    VM = "VM"
    CLUSTER = "cluster"
    GROUP = "group"


@dataclass(frozen=True)
class Focus:
    """What a name narrows a view to (`inventory show NAME`, `checkpoint
    list NAME`): the hosts, and on them the VMs (`vms` None: all of
    theirs), as the inventory places them. A listing looks for a VM on
    every node of its cluster (`nodes_of`): it moves between them."""

    kind: FocusKind
    name: str
    hosts: tuple[str, ...]
    vms: tuple[str, ...] | None = None


def last_seen_on(engine: Engine, vm_id: str) -> str | None:
    """The node a VM was last found on (by any decision, job or sweep),
    or None when the record has not seen it."""
    seen = last_seen(engine, vm_id)
    return None if seen is None else seen.host


def nodes_of(inventory: Inventory, vms: list[VM]) -> list[str]:
    """Every host that may own one of `vms`, in the inventory's order."""
    wanted = {node.casefold() for vm in vms for node in inventory.nodes_for(vm)}
    return [h.name for h in inventory.hosts if h.name.casefold() in wanted]


def _hosts_of(inventory: Inventory, vms: list[VM]) -> tuple[str, ...]:
    placed = {vm.host.casefold() for vm in vms}
    return tuple(h.name for h in inventory.hosts if h.name.casefold() in placed)


def focus_on(inventory: Inventory, name: str) -> Focus:
    """The host, else the VM, else the failover cluster, else the group
    that `name` names (any case), as `inventory show NAME`, `checkpoint
    list NAME` and `/checkpoint list NAME` read it; BadRequest with the
    names it may have meant when it names none."""
    try:
        # Checked as what it may be, before it is looked up as a host.
        check_name(name, kind="VM, host, cluster or group")
        host = inventory.host(name)
    except UnknownHost:
        pass
    except InventoryLookupError as exc:
        raise from_inventory(exc) from None
    else:
        return Focus(FocusKind.HOST, host.name, (host.name,))
    try:
        vm = inventory.vm(name)
    except UnknownVM:
        pass
    else:
        return Focus(FocusKind.VM, vm.name, _hosts_of(inventory, [vm]), (vm.name,))
    try:
        cluster = inventory.cluster(name)
    except UnknownCluster:
        pass
    else:
        on_nodes = tuple(h.name for h in inventory.hosts if cluster.has_node(h.name))
        return Focus(FocusKind.CLUSTER, cluster.name, on_nodes)
    try:
        members = inventory.group(name)
    except UnknownGroup:
        pass
    else:
        names = tuple(vm.name for vm in members)
        return Focus(FocusKind.GROUP, name.strip(), _hosts_of(inventory, members), names)
    candidates = [
        *(vm.name for vm in inventory.vms),
        *(h.name for h in inventory.hosts),
        *(c.name for c in inventory.clusters),
        *inventory.groups,
    ]
    meant = suggest(name, candidates)
    hint = f"; did you mean {', '.join(meant)}?" if meant else ""
    raise BadRequest(f"no VM, host, cluster or group named {name!r} in the inventory{hint}")


@dataclass(frozen=True)
class InventoryView:
    inventory: Inventory
    seen: dict[str, Sighting]
    # Why no sighting could be read (the database did not answer), else None.
    unknown: str | None = None
    focus: Focus | None = None

    def last_seen(self, vm_id: str) -> Sighting | None:
        return self.seen.get(vm_id)

    def hosts(self) -> list[Host]:
        hosts = self.inventory.hosts
        return [h for h in hosts if self.focus is None or h.name in self.focus.hosts]

    def vms_on(self, host: str) -> list[VM]:
        vms = self.inventory.vms_on_host(host)
        wanted = self.focus.vms if self.focus is not None else None
        return [vm for vm in vms if wanted is None or vm.name in wanted]

    def clusters(self) -> list[Cluster]:
        clusters = self.inventory.clusters
        shown = {h.name for h in self.hosts()}
        return [c for c in clusters if self.focus is None or any(c.has_node(h) for h in shown)]

    def shown_vms(self) -> list[VM]:
        return [vm for host in self.hosts() for vm in self.vms_on(host.name)]

    def groups(self) -> dict[str, list[str]]:
        """The groups, or with a focus those that hold one of its VMs."""
        shown = {vm.name for vm in self.shown_vms()}
        return {
            name: list(members)
            for name, members in self.inventory.groups.items()
            if self.focus is None or shown.intersection(members)
        }

    def to_dict(self) -> dict[str, Any]:
        data = self.inventory.model_dump(mode="json")
        if self.focus is not None:
            shown = {vm.name for vm in self.shown_vms()}
            clusters = {c.name for c in self.clusters()}
            hosts = {h.name for h in self.hosts()}
            data["hosts"] = [h for h in data.get("hosts", []) if h["name"] in hosts]
            data["vms"] = [vm for vm in data.get("vms", []) if vm["name"] in shown]
            data["clusters"] = [c for c in data.get("clusters", []) if c["name"] in clusters]
            data["groups"] = self.groups()
        for vm in data.get("vms", []):
            sighting = self.seen.get(str(vm["vm_id"]))
            vm["last_seen"] = sighting.to_dict() if sighting is not None else None
        if self.unknown is not None:
            data["last_seen_unknown"] = self.unknown
        return data


def inventory_view(
    inventory: Inventory,
    database_url: str,
    *,
    focus: Focus | None = None,
    demo: bool = False,
) -> InventoryView:
    """The inventory with where each VM was last seen. A database that is
    down, or not migrated yet, leaves the inventory alone with one line that
    says which (demo mode migrates its own database, as every demo command
    does: bot.context.prepare_database)."""
    try:
        engine = make_engine(database_url)
    except Exception as exc:
        return _unseen(inventory, focus, exc, f"the database did not answer ({type(exc).__name__})")
    try:
        if demo and not migrate.schema_is_current(engine):
            migrate.upgrade(engine)
        seen = all_seen(engine)
    except Exception as exc:
        return _unseen(inventory, focus, exc, _why_unread(engine, exc))
    finally:
        engine.dispose()
    return InventoryView(inventory, seen, focus=focus)


def _unseen(
    inventory: Inventory, focus: Focus | None, exc: BaseException, why: str
) -> InventoryView:
    log.info("last sightings unavailable", exc_info=exc)
    return InventoryView(inventory, {}, f"where the VMs were last seen is unknown: {why}", focus)


def _why_unread(engine: Engine, exc: BaseException) -> str:
    """Why the sightings could not be read: a database that answers but has
    no schema, or an older one, is told how to get it (not that it "did not
    answer"); a database that does not answer says what its driver said."""
    try:
        if not migrate.schema_is_current(engine):
            current = migrate.current_revision(engine)
            has = "has no schema yet" if current is None else f"is at schema {current}"
            return f"the database {has}: run 'checkpoint-bot db upgrade'"
    except Exception:
        log.debug("the schema could not be read either", exc_info=True)
    return f"the database did not answer ({driver_reason(exc)})"
