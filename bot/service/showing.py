"""One change as the record holds it (`change show`, a thread's card, the
CLI after a job). It reads the change, its events, its jobs and which of
its approval requests wait, and imports nothing else: not the inventory,
not the hosts' tables (bench/cli_start.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlmodel import Session, col, select

from bot.changes.lifecycle import State, still_wanted
from bot.changes.record import events_of, get_change
from bot.changes.views import ChangeView
from bot.domain import ApprovalState
from bot.service.finding import find_change
from bot.store.db import session_scope
from bot.store.tables.approvals import ApprovalRequest
from bot.store.tables.changes import Change
from bot.store.tables.jobs import Job

if TYPE_CHECKING:
    from bot.service.deps import ServiceDeps


def show_change(ctx: ServiceDeps, ref: str) -> ChangeView:
    change_id = find_change(ctx, ref)
    with session_scope(ctx.engine) as s:
        change = get_change(s, change_id)
        jobs = list(s.exec(select(Job).where(Job.change_id == change_id).order_by(col(Job.id))))
        return ChangeView.of(change, events_of(s, change_id), jobs, _waiting(s, change))


def _waiting(s: Session, change: Change) -> tuple[str, ...]:
    """The actions whose approval requests wait and can still be carried out
    (a rollback asked for before the change was merged cannot)."""
    actions = s.exec(
        select(ApprovalRequest.action)
        .where(
            ApprovalRequest.change_id == change.id,
            ApprovalRequest.state == ApprovalState.PENDING,
        )
        .order_by(col(ApprovalRequest.id))
    ).all()
    return tuple(a for a in actions if still_wanted(a, State(change.state)))
