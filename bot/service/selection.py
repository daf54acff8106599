"""Which VMs a patch wave means: names, `--tag key=value`, `--group NAME`,
`--host NAME`, `--cluster NAME`, resolved against the inventory before anything is asked of a
host (docs/batches.md, "Selecting VMs").

Names, groups, hosts and clusters add VMs; tags narrow what they add (every tag must
match), or select from the whole inventory when nothing else is given.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bot.inventory import VM, Inventory, InventoryLookupError
from bot.service.errors import BadRequest, from_inventory
from bot.service.finding import vm_named

TAG_EXAMPLE = "--tag env=staging"


def parse_tag(text: str) -> tuple[str, str]:
    """`key=value` → (key, value), or BadRequest saying what is right."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise BadRequest(f"tag {text!r} is not key=value: write it like {TAG_EXAMPLE}")
    return key.strip(), value.strip()


@dataclass(frozen=True)
class Selection:
    """What a person typed to pick VMs, before it is resolved."""

    names: tuple[str, ...] = ()
    tags: tuple[tuple[str, str], ...] = ()
    groups: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    # Failover clusters (docs/clusters.md): every VM on any of their nodes.
    clusters: tuple[str, ...] = ()

    @classmethod
    def of(
        cls,
        names: Iterable[str] = (),
        *,
        tags: Iterable[str] = (),
        groups: Iterable[str] = (),
        hosts: Iterable[str] = (),
        clusters: Iterable[str] = (),
    ) -> Selection:
        return cls(
            names=tuple(n.strip() for n in names if n.strip()),
            tags=tuple(parse_tag(t) for t in tags),
            groups=tuple(g.strip() for g in groups if g.strip()),
            hosts=tuple(h.strip() for h in hosts if h.strip()),
            clusters=tuple(c.strip() for c in clusters if c.strip()),
        )

    @property
    def _adders(self) -> bool:
        return bool(self.groups or self.hosts or self.clusters)

    @property
    def empty(self) -> bool:
        return not (self.names or self.tags or self._adders)

    def describe(self) -> str:
        words = [*self.names]
        words += [f"--tag {k}={v}" for k, v in self.tags]
        words += [f"--group {g}" for g in self.groups]
        words += [f"--host {h}" for h in self.hosts]
        words += [f"--cluster {c}" for c in self.clusters]
        return " ".join(words)

    def to_dict(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            "tags": [f"{k}={v}" for k, v in self.tags],
            "groups": list(self.groups),
            "hosts": list(self.hosts),
            "clusters": list(self.clusters),
        }


def resolve(inventory: Inventory, selection: Selection, *, maximum: int) -> list[VM]:
    """The VMs a selection means, each once, in the order they were named;
    BadRequest for an unknown name, an empty result or more than `maximum`."""
    if selection.empty:
        raise BadRequest(
            "name the VMs: one or more names, --tag key=value, --group NAME, --host NAME or "
            "--cluster NAME "
            '(e.g. checkpoint create WEB01 WEB02 --reason "KB5044284", or --group web-tier)'
        )
    try:
        # A host's, cluster's or group's name among the VMs says which flag
        # takes it.
        found: list[VM] = [vm_named(inventory, n, wave=True) for n in selection.names]
        for group in selection.groups:
            found += inventory.group(group)
        for host in selection.hosts:
            found += inventory.vms_on_host(host)
        for cluster in selection.clusters:
            found += inventory.vms_on_cluster(cluster)
    except InventoryLookupError as exc:
        raise from_inventory(exc) from None
    if selection.tags:
        tagged = {vm.vm_id for vm in inventory.tagged(selection.tags)}
        pool = found if (selection.names or selection._adders) else inventory.vms
        found = [vm for vm in pool if vm.vm_id in tagged]
    unique: list[VM] = []
    for vm in found:
        if all(vm.vm_id != u.vm_id for u in unique):
            unique.append(vm)
    if not unique:
        raise BadRequest(
            f"{selection.describe()} matches no VM in the inventory; "
            "`checkpoint-bot inventory show` lists the VMs with their tags"
        )
    if len(unique) > maximum:
        raise BadRequest(
            f"{selection.describe()} matches {len(unique)} VMs, more than the {maximum} one "
            "batch may hold (batches.max_vms): narrow it, e.g. with --tag or --host"
        )
    return unique
