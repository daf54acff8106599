"""`inventory discover` and `inventory diff`: what the hosts hold, into an inventory.

    select_hosts(inventory, hosts, groups) -> the hosts to ask
    discover(deps, request) -> DiscoveryReport

The hosts are asked in parallel (`hyperv.fanout` at most), each in a few
calls for all of its VMs (`HyperVHost.discover_vms`). The merge itself is a
pure plan (`bot.inventory.discovery.plan_merge`); the result is checked as
an inventory before anything is written, and written atomically, so a
refused merge leaves the file as it was. A refused merge is still reported
in full (`DiscoveryReport.refused` says why): one problem does not hide the
rest of the drift.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.hyperv.errors import HyperVError
from bot.hyperv.fanout import ask_hosts
from bot.hyperv.types import DiscoveredVM
from bot.inventory import Host, Inventory, InventoryError, parse_inventory
from bot.inventory.discovery import (
    UNDISCOVERABLE,
    FoundVM,
    MergePlan,
    Scope,
    found_vm,
    owners_seen,
    plan_merge,
    volumes_by_host,
)
from bot.inventory.errors import InventoryLookupError
from bot.inventory.yamledit import (
    DocumentError,
    Layout,
    apply_plan,
    dump_document,
    fresh_document,
    layout_of,
    load_document,
    write_atomically,
)
from bot.service.deps import ServiceDeps
from bot.service.errors import BadRequest, Unavailable, from_inventory
from bot.store.sightings import record_seen
from bot.yamlio import YamlError, read_config_text

HEADER = (
    "Written by `checkpoint-bot inventory discover` (docs/discovery.md).\n"
    "VMs with roles_unknown: true need their roles set by a person: discovery\n"
    f"cannot see {', '.join(UNDISCOVERABLE)}."
)


@dataclass(frozen=True)
class DiscoveryRequest:
    hosts: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    # The inventory to merge into; None: a new one (the config's hosts, no VMs).
    merge: Path | None = None
    # Where to write; None with `merge`: the merged file itself; None without:
    # nowhere (the CLI prints the text).
    out: Path | None = None
    write: bool = True
    # Replace an existing `out` that is not the merged file itself: a new
    # inventory over an existing one loses every group, tag, owner and role.
    force: bool = False


@dataclass(frozen=True)
class DiscoveryReport:
    plan: MergePlan
    found: tuple[FoundVM, ...]
    unreachable: dict[str, str]
    seconds: float
    source: str
    written: Path | None = None
    # The file a merge in place had nothing to change in, not rewritten.
    left_as_it_was: Path | None = None
    text: str = ""
    host_seconds: dict[str, float] = field(default_factory=dict)
    # Why the merged inventory would not be valid: nothing was written (and
    # `text` is not an inventory to print).
    refused: str | None = None

    def to_dict(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "source": self.source,
            "asked": list(plan.scope.asked),
            "answered": list(plan.scope.answered),
            "unreachable": dict(self.unreachable),
            "seconds": round(self.seconds, 3),
            "host_seconds": {k: round(v, 3) for k, v in self.host_seconds.items()},
            "counts": {**plan.counts(), "found": len(self.found)},
            "changed": plan.changed,
            "written": None if self.written is None else str(self.written),
            "left_as_it_was": None if self.left_as_it_was is None else str(self.left_as_it_was),
            "refused": self.refused,
            "unknown_roles": [e.name for e in plan.unknown_roles],
            "unknown_roles_not_seen": [e.name for e in plan.unknown_roles_not_seen],
            "undiscoverable_roles": list(UNDISCOVERABLE),
            "entries": [e.to_dict() for e in plan.entries],
            "found": [vm.to_dict() for vm in self.found],
        }


def select_hosts(inventory: Inventory, hosts: Sequence[str], groups: Sequence[str]) -> list[Host]:
    """The inventory's hosts named, and those of the groups named (`host_group`),
    in inventory order; every host when neither is given."""
    if not hosts and not groups:
        return list(inventory.hosts)
    wanted: set[str] = set()
    for name in hosts:
        try:
            wanted.add(inventory.host(name).name)
        except InventoryLookupError as exc:
            raise from_inventory(exc) from None
    known_groups = sorted({h.host_group for h in inventory.hosts if h.host_group})
    for group in groups:
        members = [
            h.name for h in inventory.hosts if (h.host_group or "").casefold() == group.casefold()
        ]
        if not members:
            listed = ", ".join(known_groups) or "none"
            raise BadRequest(f"no host group {group!r} in the inventory (it has: {listed})")
        wanted.update(members)
    return [h for h in inventory.hosts if h.name in wanted]


def _gather(
    deps: ServiceDeps, hosts: list[Host]
) -> tuple[list[FoundVM], list[str], dict[str, str], dict[str, float]]:
    timings: dict[str, float] = {}

    def one(host: Any) -> list[DiscoveredVM]:
        started = time.perf_counter()
        try:
            found: list[DiscoveredVM] = host.discover_vms()
            return found
        finally:
            timings[host.name] = time.perf_counter() - started

    names = [h.name for h in hosts]
    results = ask_hosts(deps.host_for, names, one, fanout=deps.settings.hyperv.fanout)
    found: list[FoundVM] = []
    answered: list[str] = []
    unreachable: dict[str, str] = {}
    for name, result in results:
        if isinstance(result, HyperVError):
            unreachable[name] = result.message  # the host is the key: not said twice
            continue
        answered.append(name)
        found.extend(found_vm(vm) for vm in result)
    return found, answered, unreachable, timings


def _record_sightings(deps: ServiceDeps, found: list[FoundVM]) -> None:
    """The hosts just said where their VMs are: recorded as any node's
    answer is (bot.service.locate), so `inventory show` says where each was
    last seen and the next decision asks that node first. Called before
    the file is written: a sighting is true whatever becomes of the file.
    One transaction per VM, as the locator writes: a running bot's writers
    wait on SQLite's one write lock for one VM at a time, never for a
    whole estate's."""
    at = deps.clock()
    for vm_id, host in sorted(owners_seen(found).items()):
        record_seen(deps.engine, vm_id, host, at)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _base_text(deps: ServiceDeps, request: DiscoveryRequest) -> tuple[str, str]:
    path = request.merge or deps.settings.inventory_path
    try:
        return read_config_text(path, what="inventory"), str(path)
    except YamlError as exc:
        raise BadRequest(str(exc)) from None


def _in_place(request: DiscoveryRequest) -> bool:
    return request.merge is not None and (
        request.out is None or _same_file(request.out, request.merge)
    )


def _refuse_replacing(request: DiscoveryRequest) -> None:
    """Before any host is asked: an existing --out is replaced only with
    --force (a merge into itself is an update, not a replacement)."""
    out = request.out
    if not request.write or out is None or request.force or _in_place(request):
        return
    if not (out.exists() or out.is_symlink()):
        return
    if request.merge is None:
        raise BadRequest(
            f"{out} exists: pass --force to replace it, or --merge {out} to update it "
            "(keeping its groups, tags, owners and roles)"
        )
    raise BadRequest(f"{out} exists: pass --force to replace it, or name a new file")


def discover(deps: ServiceDeps, request: DiscoveryRequest) -> DiscoveryReport:
    """Ask the hosts, plan the merge, check the result, write it when asked."""
    started = time.perf_counter()
    hosts = select_hosts(deps.inventory, request.hosts, request.groups)
    _refuse_replacing(request)
    base_text, source = _base_text(deps, request)
    try:
        current = parse_inventory(base_text, source) if request.merge else None
        doc = load_document(base_text) if request.merge else fresh_document(base_text, HEADER)
        # A merged file keeps its own indentation; a new one gets the default.
        layout = layout_of(base_text) if request.merge else Layout()
    except InventoryError as exc:
        raise BadRequest(f"{source} is not a valid inventory: {exc}") from None
    except (DocumentError, ValueError) as exc:
        raise BadRequest(f"{source}: {exc}") from None
    found, answered, unreachable, timings = _gather(deps, hosts)
    if request.write and hosts and not answered:
        # An inventory of no host's answers is no inventory: printed or
        # written it would read as "these hosts hold no VMs".
        said = "; ".join(f"{name}: {why}" for name, why in unreachable.items())
        raise Unavailable(f"no host answered ({said}): nothing was written")
    if request.write:
        # Not for `inventory diff`: a dry run writes nothing.
        _record_sightings(deps, found)
    base = current if current is not None else deps.inventory
    scope = Scope(
        asked=tuple(h.name for h in hosts),
        answered=tuple(answered),
        volumes=volumes_by_host(base),
        clusters=tuple(base.clusters),
    )
    today = deps.clock().date()
    plan = plan_merge(
        current.vms if current is not None else [],
        found,
        scope,
        today,
        groups=current.groups if current is not None else None,
    )
    apply_plan(doc, plan, today, layout)
    text = dump_document(doc, layout)
    target = request.out or request.merge
    refused: str | None = None
    try:
        parse_inventory(text, str(target or "the discovered inventory"))
    except InventoryError as exc:
        # Nothing is written: the file on disk stays as it was. The plan is
        # still reported, so the rest of the drift is not hidden.
        said = "nothing written" if request.write else "`discover --merge` would write nothing"
        refused = f"the merged inventory would not be valid, {said}: {exc}"
    written: Path | None = None
    left: Path | None = None
    if refused is None and request.write and _in_place(request) and not plan.changed:
        # Nothing to change: the file is not rewritten (its bytes, its
        # modification time and its place in version control stay as they are).
        left = request.merge
    elif refused is None and request.write and target is not None:
        try:
            write_atomically(target, text)
        except OSError as exc:
            raise BadRequest(f"cannot write {target}: {exc.strerror or exc}") from None
        written = target
    return DiscoveryReport(
        plan=plan,
        found=tuple(sorted(found, key=lambda f: (f.host.casefold(), f.name.casefold()))),
        unreachable=unreachable,
        seconds=time.perf_counter() - started,
        source=source,
        written=written,
        left_as_it_was=left,
        text=text,
        host_seconds=timings,
        refused=refused,
    )
