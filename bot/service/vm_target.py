"""`rollback VM`, `merge VM`, `extend VM 24h`, `start VM`: a VM's name
stands for its one change that the action fits.

Slack and the CLI both accept a VM's name where a change belongs for these
actions; what the name means is decided here once, so the two cannot
disagree: the VM's only change in a state the action acts on (active for a
rollback or an extension; active or rolled back for a merge, which keeps
what a rollback restored; rolled back for a start), or an error that names what was found (none, or
each of several) and changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlmodel import col, select

from bot.changes import State
from bot.inventory import InvalidName, InventoryLookupError
from bot.service.errors import BadRequest, NotFound, from_inventory
from bot.store.db import session_scope
from bot.store.tables import change_ref
from bot.store.tables.changes import Change

if TYPE_CHECKING:
    from bot.service.deps import ServiceDeps

# The states a VM's name picks its change from, by the action's verb.
ACTED_ON: dict[str, tuple[State, ...]] = {
    "roll back": (State.ACTIVE,),
    "merge": (State.ACTIVE, State.ROLLED_BACK),
    "extend": (State.ACTIVE,),
    # The VM a rollback left off or saved.
    "start": (State.ROLLED_BACK,),
}


def pick_one(vm_name: str, refs: Sequence[str], verb: str) -> str:
    """The one ref in `refs` (the VM's changes the action fits), or why
    there is none."""
    states = " or ".join(s.value.replace("_", " ") for s in ACTED_ON[verb])
    if not refs:
        raise NotFound(f"{vm_name} has no {states} change to {verb}; nothing was done")
    if len(refs) > 1:
        raise BadRequest(
            f"{vm_name} has {len(refs)} {states} changes ({', '.join(refs)}): "
            f"name the one to {verb}, e.g. {refs[0]}; nothing was done"
        )
    return refs[0]


def change_of_vm(ctx: ServiceDeps, vm_name: str, verb: str) -> str:
    """The ref of `vm_name`'s one change that `verb` acts on (BadRequest
    for an unknown VM)."""
    try:
        vm = ctx.inventory.vm(vm_name)
    except InvalidName:
        raise BadRequest(
            f"'{vm_name.strip()[:80]}' is neither a change id (like CHG-0042), a checkpoint Id "
            "(a GUID) nor a VM's name"
        ) from None
    except InventoryLookupError as exc:
        raise from_inventory(exc) from None
    with session_scope(ctx.engine) as s:
        ids = s.exec(
            select(Change.id)
            .where(
                Change.vm_id == vm.vm_id,
                col(Change.state).in_([state.value for state in ACTED_ON[verb]]),
            )
            .order_by(col(Change.id))
        ).all()
    return pick_one(vm.name, [change_ref(i) for i in ids if i is not None], verb)
