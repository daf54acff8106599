"""One change as the record holds it (`change show`, a thread's card, the
CLI after a job). It reads the change, its events, its jobs and which of
its approval requests wait, and imports nothing else: not the inventory,
not the hosts' tables (bench/cli_start.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlmodel import col, select

from bot.changes.record import events_of, get_change
from bot.changes.views import ChangeView
from bot.changes.waiting import waiting_actions
from bot.service.finding import find_change
from bot.store.db import session_scope
from bot.store.tables.jobs import Job

if TYPE_CHECKING:
    from bot.service.deps import ServiceDeps


def show_change(ctx: ServiceDeps, ref: str) -> ChangeView:
    change_id = find_change(ctx, ref, verb="show")
    with session_scope(ctx.engine) as s:
        change = get_change(s, change_id)
        jobs = list(s.exec(select(Job).where(Job.change_id == change_id).order_by(col(Job.id))))
        waiting = waiting_actions(s, [change]).get(change_id, ())
        return ChangeView.of(change, events_of(s, change_id), jobs, waiting)
