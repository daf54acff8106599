"""Where each VM of the inventory was last seen: `inventory show`.

A sighting is written whenever a node answered that it has the VM
(bot.service.locate); a VM the bot never asked about has none. A VM seen on
another node than the inventory names was live-migrated (drift of the
inventory, docs/clusters.md). `inventory show` answers without the rest of
the bot (no context, no host): when the database does not answer, where the
VMs were seen is unknown and says so, and the inventory is still shown.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from bot.inventory import Inventory
from bot.store.db import make_engine
from bot.store.sightings import Sighting, all_seen

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InventoryView:
    inventory: Inventory
    seen: dict[str, Sighting]
    # Why no sighting could be read (the database did not answer), else None.
    unknown: str | None = None

    def last_seen(self, vm_id: str) -> Sighting | None:
        return self.seen.get(vm_id)

    def to_dict(self) -> dict[str, Any]:
        data = self.inventory.model_dump(mode="json")
        for vm in data.get("vms", []):
            sighting = self.seen.get(str(vm["vm_id"]))
            vm["last_seen"] = sighting.to_dict() if sighting is not None else None
        if self.unknown is not None:
            data["last_seen_unknown"] = self.unknown
        return data


def inventory_view(inventory: Inventory, database_url: str) -> InventoryView:
    try:
        engine = make_engine(database_url)
        try:
            seen = all_seen(engine)
        finally:
            engine.dispose()
    except Exception as exc:
        # A database that is down, or not migrated yet: the inventory alone.
        log.info("last sightings unavailable", exc_info=True)
        why = f"the database did not answer ({type(exc).__name__})"
        return InventoryView(inventory, {}, f"where the VMs were last seen is unknown: {why}")
    return InventoryView(inventory, seen)
