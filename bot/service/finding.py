"""Finding what a request names: a change by its id or its checkpoint's Id,
a VM by its name in the inventory. Read-only, and without the policy, so a
query (`change show`) loads only what it reads (bench/cli_start.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlmodel import select

from bot.changes.record import parse_ref
from bot.domain import BatchRef, ChangeRef, canonical_guid
from bot.service.errors import BadRequest, NotFound, from_inventory
from bot.store.db import session_scope
from bot.store.tables import change_ref
from bot.store.tables.changes import Change

if TYPE_CHECKING:
    from bot.inventory import VM
    from bot.service.deps import ServiceDeps


def _not_a_change(text: str) -> str:
    """What to say when a batch's ref is given where one change belongs."""
    batch = BatchRef.parse(text)
    shown = str(batch) if batch is not None else text.strip().upper()
    return (
        f"{shown} is a patch wave, not one change: /checkpoint batch {shown} (or "
        f"checkpoint-bot batch show {shown}) shows its members and acts on them all; "
        "give a member's CHG-n to act on one"
    )


def checkpoint_id_of(text: str) -> str:
    """A checkpoint's Id as a person gave it, in the form the bot keeps, or
    BadRequest: a name where an Id belongs is told at once, before any
    host or table is asked."""
    kept = canonical_guid(text)
    if kept is None:
        shown = text.strip()[:80]
        raise BadRequest(
            f"'{shown}' is not a checkpoint Id: give its GUID as sweep run "
            "lists it, like 3f2504e0-4f89-41d3-9a0c-0305e82c3301"
        )
    return kept


def resolve_vm(ctx: ServiceDeps, name: str) -> VM:
    inventory = ctx.inventory
    # Imported once the inventory is: finding a change by its id needs neither.
    from bot.inventory import InvalidName, UnknownVM

    try:
        return inventory.vm(name)
    except (UnknownVM, InvalidName) as exc:
        raise from_inventory(exc) from None


def find_change(ctx: ServiceDeps, ref: str) -> int:
    """A change id from `CHG-n`, or from the Id of a checkpoint it owns."""
    text = ref.strip()
    change_id = parse_ref(text)
    checkpoint_id = canonical_guid(text) if change_id is None else None
    if checkpoint_id is not None:
        with session_scope(ctx.engine) as s:
            owner = s.exec(select(Change).where(Change.checkpoint_id == checkpoint_id)).first()
        if owner is None or owner.id is None:
            raise NotFound(
                f"checkpoint {text} is not owned by any change; the bot never touches a "
                "checkpoint it did not take"
            )
        change_id = owner.id
    if change_id is None and ChangeRef.typed(text):
        raise NotFound(f"no change {text.upper()}")
    if change_id is None and BatchRef.typed(text):
        raise BadRequest(_not_a_change(text))
    if change_id is None:
        raise BadRequest(
            f"'{ref}' is neither a change id (like CHG-0042) nor a checkpoint Id (a GUID)"
        )
    with session_scope(ctx.engine) as s:
        if s.get(Change, change_id) is None:
            raise NotFound(f"no change {change_ref(change_id)}")
    return change_id
