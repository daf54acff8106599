"""`rollback VM`: a VM's name stands for its one active change.

Slack and the CLI both accept `rollback LAB-DC01`; what the name means is
decided here once, so the two cannot disagree: the VM's only active change,
or an error that names what was found (none, or each of several) and
changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlmodel import col, select

from bot.changes import State
from bot.inventory import InventoryLookupError
from bot.service.errors import BadRequest, NotFound, from_inventory
from bot.store.db import session_scope
from bot.store.tables import change_ref
from bot.store.tables.changes import Change

if TYPE_CHECKING:
    from bot.service.deps import ServiceDeps


def pick_active(vm_name: str, refs: Sequence[str], verb: str) -> str:
    """The one ref in `refs` (the VM's active changes), or why there is none."""
    if not refs:
        raise NotFound(f"{vm_name} has no active change to {verb}; nothing was done")
    if len(refs) > 1:
        raise BadRequest(
            f"{vm_name} has {len(refs)} active changes ({', '.join(refs)}): "
            f"name the one to {verb}, e.g. {refs[0]}; nothing was done"
        )
    return refs[0]


def active_change_of(ctx: ServiceDeps, vm_name: str, verb: str) -> str:
    """The ref of `vm_name`'s one active change (BadRequest for an unknown VM)."""
    try:
        vm = ctx.inventory.vm(vm_name)
    except InventoryLookupError as exc:
        raise from_inventory(exc) from None
    with session_scope(ctx.engine) as s:
        ids = s.exec(
            select(Change.id)
            .where(Change.vm_id == vm.vm_id, Change.state == State.ACTIVE.value)
            .order_by(col(Change.id))
        ).all()
    return pick_active(vm.name, [change_ref(i) for i in ids if i is not None], verb)
