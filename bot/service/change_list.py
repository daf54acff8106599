"""Which changes the record holds, for `change list`: open ones by default,
newest first, with what each waits for."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_
from sqlmodel import col, select

from bot.changes import FINAL_STATES, State
from bot.changes.views import ChangeView
from bot.changes.waiting import waiting_actions
from bot.service.actors import actor_id
from bot.service.errors import BadRequest
from bot.service.ttl_chase import auto_merge_at, auto_merge_words
from bot.store.db import session_scope
from bot.store.tables.changes import Change

if TYPE_CHECKING:
    from bot.service.deps import ServiceDeps

OPEN_STATES = tuple(s.value for s in State if s not in FINAL_STATES)
# Holding a checkpoint nobody is deciding on now (a merge or a restore
# under way is a decision): what `--overdue` looks among.
UNDECIDED = (State.ACTIVE.value, State.ROLLED_BACK.value)


@dataclass(frozen=True)
class ChangeListing:
    changes: tuple[ChangeView, ...]
    # More changes matched than the limit let through (the oldest are left out).
    more: bool
    # When it was listed: what "overdue" is measured against.
    at: datetime | None = None
    # Change id → when the TTL chase asks for its keep & merge on its own,
    # for an overdue change whose automatic merge is still to come
    # (bot/service/ttl_chase.py `auto_merge_at`).
    auto_merges: Mapping[int, datetime] = field(default_factory=dict)

    def is_overdue(self, change: ChangeView) -> bool:
        return overdue(change, self.at)

    def auto_merge_said(self, change: ChangeView) -> str | None:
        """ "it is kept & merged automatically in 40s unless someone decides
        first", when that is coming; else None."""
        due = self.auto_merges.get(change.id)
        if due is None or self.at is None:
            return None
        return auto_merge_words(due - self.at)

    def to_dict(self) -> dict[str, Any]:
        return {
            "changes": [_summary(c, self.at, self.auto_merges) for c in self.changes],
            "more": self.more,
        }


def overdue(change: ChangeView, now: datetime | None) -> bool:
    """Still holding a checkpoint nobody is deciding on, past its expiry."""
    return (
        now is not None
        and change.state in UNDECIDED
        and change.expires_at is not None
        and change.expires_at <= now
    )


def _summary(
    c: ChangeView, now: datetime | None, auto_merges: Mapping[int, datetime]
) -> dict[str, Any]:
    """A change as a list shows it: its record without events and jobs
    (`change show --json` has those), whether it is overdue, and when its
    automatic keep & merge is due (null when none is coming)."""
    data = c.to_dict()
    for detail in ("events", "jobs", "decision"):
        data.pop(detail, None)
    data["overdue"] = overdue(c, now)
    due = auto_merges.get(c.id)
    data["auto_merge_at"] = due.isoformat() if due is not None else None
    return data


def list_changes(
    ctx: ServiceDeps,
    *,
    states: Collection[str] = (),
    every: bool = False,
    vm: str | None = None,
    requester: str | None = None,
    limit: int = 50,
    overdue_only: bool = False,
) -> ChangeListing:
    """The newest changes first: those in `states`, else every one (`every`),
    else the open ones (not denied, rejected, withdrawn, expired, failed,
    merged or vanished); of one VM (its recorded name, any case, or its VM
    id) or one requester when asked. `overdue_only`: only those still holding a
    checkpoint whose lifetime is over, nobody having decided (the state
    `expired` is another thing: a job that could not start in time)."""
    if limit < 1:
        raise BadRequest("--limit must be at least 1")
    query = select(Change)
    if states:
        unknown = sorted(set(states) - {s.value for s in State})
        if unknown:
            raise BadRequest(
                f"no state {unknown[0]!r}: use one of {', '.join(s.value for s in State)}"
            )
        query = query.where(col(Change.state).in_(list(states)))
    elif not every:
        query = query.where(col(Change.state).in_(OPEN_STATES))
    if vm is not None:
        name = vm.strip()
        if not name:
            raise BadRequest("--vm is empty: give a VM's name (as recorded) or its VM id")
        wanted = name.lower()
        query = query.where(
            or_(func.lower(Change.vm_name) == wanted, func.lower(Change.vm_id) == wanted)
        )
    now = ctx.clock()
    if overdue_only:
        query = query.where(
            col(Change.state).in_(UNDECIDED),
            col(Change.expires_at).is_not(None),
            col(Change.expires_at) <= now,
        )
    if requester is not None:
        who = actor_id(
            requester,
            option="--requester",
            what="a requester",
            forms="a Slack user id (U0123ABCD or <@U0123ABCD>) or cli:NAME",
        )
        query = query.where(Change.requester == who)
    with session_scope(ctx.engine) as s:
        rows = s.exec(query.order_by(col(Change.id).desc()).limit(limit + 1)).all()
        kept = rows[:limit]
        waiting = waiting_actions(s, kept)
        views = tuple(ChangeView.of(c, waiting=waiting.get(c.id or 0, ())) for c in kept)
    return ChangeListing(
        views, more=len(rows) > limit, at=now, auto_merges=_auto_merges(ctx, views, now)
    )


def _auto_merges(
    ctx: ServiceDeps, views: tuple[ChangeView, ...], now: datetime
) -> dict[int, datetime]:
    """When each overdue change nobody asked anything for is kept & merged
    on its own, where that is still to come. One already due is left out:
    the chase has asked for it, or is about to, and whether that merge ran,
    waits for an approver or was refused is the change's own record."""
    due: dict[int, datetime] = {}
    for view in views:
        if not overdue(view, now) or view.waiting:
            continue
        at = auto_merge_at(ctx, view)
        if at is not None and at > now:
            due[view.id] = at
    return due
