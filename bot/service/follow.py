"""A change follows its VM to the node that has it now.

    follow(engine, locator, inventory, clock, change, on_change) -> Change

Used right before host work (bot.service.execution) and when an interrupted
change is checked against the host (bot.service.reconcile). When the VM
moved since the change last saw it, the change's host is updated and a
`moved` event says so in its thread ("WEB01 is now on HV02; …"). The per-VM
lock and the record are keyed by VMId, so following changes neither.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.engine import Engine

from bot.changes.record import get_change, note, recording
from bot.domain import BOT_ACTOR
from bot.inventory import Inventory
from bot.service.locate import Locator, moved_details, moved_text
from bot.store.db import session_scope
from bot.store.tables.changes import Change

ACTOR = BOT_ACTOR


def follow(
    engine: Engine,
    locator: Locator,
    inventory: Inventory,
    clock: Callable[[], datetime],
    change: Change,
    on_change: Callable[[int], None],
) -> Change:
    """The change routed to its VM's node now. Raises `Unavailable` /
    `NotFound` (bot.service.locate) when no node can be named."""
    assert change.id is not None
    vm = inventory.vm_by_id(change.vm_id)
    located = locator.locate(vm)
    if located.host.casefold() == change.host.casefold():
        return change
    seen = located.sighting
    recording(
        engine,
        change.id,
        lambda s, row: note(
            s,
            row,
            kind="moved",
            actor=ACTOR,
            now=clock(),
            message=moved_text(vm.name, change.host, located.host, seen),
            details=moved_details(change.host, located.host, seen),
            host=located.host,
        ),
    )
    on_change(change.id)
    with session_scope(engine) as s:
        return get_change(s, change.id)
