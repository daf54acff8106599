"""Changes whose checkpoint is gone from the host.

Someone deletes a checkpoint in Hyper-V Manager, or a host is rebuilt: the
change still says `active`, so merges would fail forever and TTL reminders
go on. A change moves to `vanished` (terminal) only on proof: the host
answered, the VM is on it, and the VM's checkpoints do not include the Id
the change owns. A host that cannot be asked, or a VM it does not have
(moved, renamed), proves nothing: the change is left as it is.

    gone(host, vm_id, checkpoint_id) -> bool | None         ask the host
    settle(ctx, change_id, seen_version, why) -> bool        the transition
    check(ctx, change) -> bool                                both, for one change
    candidates(ctx, answered, present) -> [ChangeView]        for the sweep
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import TYPE_CHECKING

from sqlmodel import col, select

from bot.changes import Command, IllegalTransition, State
from bot.changes.record import ConcurrentUpdate, get_change, transition
from bot.changes.views import ChangeView
from bot.domain import BOT_ACTOR
from bot.hyperv import HyperVError, HyperVHost
from bot.service.errors import ServiceError
from bot.service.follow import follow
from bot.store.db import session_scope
from bot.store.tables.changes import Change

if TYPE_CHECKING:
    from bot.service.deps import ServiceDeps

log = logging.getLogger(__name__)

ACTOR = BOT_ACTOR
# Where a change holds a checkpoint and nothing is working on it.
_SETTLED = (State.ACTIVE.value, State.ROLLED_BACK.value)


def gone(host: HyperVHost, vm_id: str, checkpoint_id: str) -> bool | None:
    """True when the host lists the VM's checkpoints without this one;
    None when it cannot tell (unreachable, VM not on this host)."""
    try:
        present = host.list_checkpoints(vm_id)
    except HyperVError as exc:
        log.info("cannot tell whether %s is still on %s: %s", checkpoint_id, host.name, exc.message)
        return None
    return checkpoint_id not in {c.id for c in present}


def settle(ctx: ServiceDeps, change_id: int, seen_version: int, why: str) -> bool:
    """Move the change to `vanished` if it is still as it was when the host
    was asked (its version); True when it moved."""
    try:
        with session_scope(ctx.engine) as s:
            change = get_change(s, change_id)
            if change.version != seen_version:
                return False
            transition(
                s,
                change,
                Command.VANISH,
                actor=ACTOR,
                now=ctx.clock(),
                message=f"checkpoint {change.checkpoint_id} is no longer on {change.host} "
                f"({why}): it was deleted outside the bot or the host was rebuilt, so there is "
                "nothing left to roll back or merge and no more reminders",
            )
    except (IllegalTransition, ConcurrentUpdate):
        return False
    ctx.notifier.changed(change_id)
    return True


def check(ctx: ServiceDeps, change: ChangeView, why: str) -> bool:
    """Ask the host about one change's checkpoint; settle it if gone. The
    VM's node now is asked (a live migration takes its checkpoints along):
    the change follows it first, and a VM no node has proves nothing."""
    if change.checkpoint_id is None:
        return False
    try:
        with session_scope(ctx.engine) as s:
            row = get_change(s, change.id)
        if row.version != change.version:
            return False
        row = follow(
            ctx.engine, ctx.decider.locator, ctx.inventory, ctx.clock, row, ctx.notifier.changed
        )
        host = ctx.host_for(row.host)
    except (ServiceError, HyperVError, LookupError) as exc:
        log.info("cannot tell whether %s is still there: %s", change.checkpoint_id, exc)
        return False
    if gone(host, change.vm_id, change.checkpoint_id) is not True:
        return False
    return settle(ctx, change.id, row.version, why)


def candidates(
    ctx: ServiceDeps, answered: Collection[str], present: Collection[str]
) -> list[ChangeView]:
    """Changes holding a checkpoint on a host that answered a full listing
    which did not include it: each still to be confirmed with `check` (the
    listing is a moment old, and the VM must be on that host)."""
    if not answered:
        return []
    hosts = {h.casefold() for h in answered}
    with session_scope(ctx.engine) as s:
        rows = s.exec(
            select(Change).where(
                col(Change.state).in_(_SETTLED), col(Change.checkpoint_id).is_not(None)
            )
        ).all()
        return [
            ChangeView.of(c)
            for c in rows
            if c.host.casefold() in hosts and c.checkpoint_id not in present
        ]
