"""`rollback VM`, `merge VM`, `extend VM 24h`, `start VM`: a VM's name
stands for its one change that the action fits.

Slack and the CLI both accept a VM's name where a change belongs for these
actions; what the name means is decided here once, so the two cannot
disagree: the VM's only change in a state the action acts on (active for a
rollback or an extension; active or rolled back for a merge, which keeps
what a rollback restored; rolled back for a start), or an error that names what was found (none, or
each of several) and changes nothing.

A change whose VM (or host) is no longer in the inventory is said as such
(`vm_of_change`, and a VM's name that only such changes still carry), never
as "no VM named …", which reads like a typo. The bot acts on it only once
it is back in the inventory: input reaches a host only resolved against the
inventory, and the host's credential is its inventory entry's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import func
from sqlmodel import col, select

from bot.changes import State
from bot.inventory import InvalidName, InventoryLookupError, UnknownVM
from bot.service.errors import BadRequest, NotFound, from_inventory
from bot.service.sweep_views import left_inventory, out_of_sight_words
from bot.store.db import session_scope
from bot.store.tables import change_ref
from bot.store.tables.changes import Change

if TYPE_CHECKING:
    from bot.inventory import VM
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
    except UnknownVM as exc:
        raise _left_inventory(ctx, vm_name, verb) or from_inventory(exc) from None
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


class RecordedVM(Protocol):
    """What a change (its row or its view) says of its VM."""

    @property
    def id(self) -> int | None: ...

    @property
    def vm_id(self) -> str: ...

    @property
    def vm_name(self) -> str: ...

    @property
    def host(self) -> str: ...


def vm_of_change(ctx: ServiceDeps, change: RecordedVM, verb: str) -> VM:
    """The inventory's VM that `verb` (roll back, merge, extend, approve,
    start) acts on for `change`, by its VMId: a VM renamed on its host (and
    in the inventory by `inventory discover --merge`) is the same VM, and
    its change's name for it is the old one. BadRequest in one line when
    its VM or host is no longer in the inventory (what left, and to put it
    back). Never by the recorded name alone: another VM may carry it now."""
    gone = left_inventory(ctx.inventory, change.vm_id, change.host)
    if gone is None:
        return ctx.inventory.vm_by_id(change.vm_id)
    ref = change_ref(change.id) if change.id is not None else change.vm_name
    raise BadRequest(out_of_sight_words(ref, change.vm_name, change.host, gone, verb))


def _left_inventory(ctx: ServiceDeps, vm_name: str, verb: str) -> BadRequest | None:
    """For a VM name the inventory lacks: the error that says its VM left
    the inventory, when changes `verb` acts on still carry that name and
    hold a checkpoint of it; None when none does (a typo, as far as the bot
    can tell)."""
    name = vm_name.strip()
    with session_scope(ctx.engine) as s:
        rows = s.exec(
            select(Change)
            .where(
                func.lower(Change.vm_name) == name.lower(),
                col(Change.state).in_([state.value for state in ACTED_ON[verb]]),
            )
            .order_by(col(Change.id))
        ).all()
    away = [
        (c, gone)
        for c in rows
        if c.id is not None and (gone := left_inventory(ctx.inventory, c.vm_id, c.host))
    ]
    if not away:
        return None
    if len(away) == 1:
        change, gone = away[0]
        assert change.id is not None
        return BadRequest(
            out_of_sight_words(change_ref(change.id), change.vm_name, change.host, gone, verb)
        )
    refs = ", ".join(change_ref(c.id) for c, _ in away if c.id is not None)
    do_them = "roll them back" if verb == "roll back" else f"{verb} them"
    return BadRequest(
        f"{name} is no longer in the inventory, and {refs} still hold its checkpoints: put it "
        f"back in the inventory to {do_them}; nothing was done"
    )
