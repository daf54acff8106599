"""Where each VM of the inventory was last seen: `inventory show`.

A sighting is written whenever a node answered that it has the VM
(bot.service.locate); a VM the bot never asked about has none. A VM seen on
another node than the inventory names was live-migrated (drift of the
inventory, docs/clusters.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.inventory import Inventory
from bot.store.sightings import Sighting, all_seen

if TYPE_CHECKING:
    from bot.service.deps import ServiceDeps


@dataclass(frozen=True)
class InventoryView:
    inventory: Inventory
    seen: dict[str, Sighting]

    def last_seen(self, vm_id: str) -> Sighting | None:
        return self.seen.get(vm_id)

    def to_dict(self) -> dict[str, Any]:
        data = self.inventory.model_dump(mode="json")
        for vm in data.get("vms", []):
            sighting = self.seen.get(str(vm["vm_id"]))
            vm["last_seen"] = sighting.to_dict() if sighting is not None else None
        return data


def inventory_view(ctx: ServiceDeps) -> InventoryView:
    return InventoryView(ctx.inventory, all_seen(ctx.engine))
