"""Change-window notices, each once per opening: opening soon (with the
changes scheduled for it), open, closing soon (the active checkpoints of
VMs in its scope that need a decision, with buttons) and closed (what
happened in it).

What waits for a window (`WindowNotices.waiting_for`, also what
`/checkpoint windows` and `checkpoint-bot windows` count) is two lists:
creates *scheduled* for the opening (approved, their job queued for it)
of a VM the window governs, and creates *awaiting approval* for a VM the
window governs. A scheduled create waits for the window whose opening lets
it run: one whose scope holds its VM and that opens when its job is due
(the `change_window` rule schedules it for the next opening of the windows
that apply to the VM). Two windows opening at the same instant over
different VMs each list only their own; a VM both govern is listed by
both, as either opening lets it run. Creates awaiting approval are
listed apart because nothing runs until an approver says yes: approved
before the opening, it is scheduled for it; while the window is open, it
runs at once; after the close, it waits for the next opening. Every notice
names them, so approvers see what a window would carry.

`due_notices` is pure: the window and the time in, the notices due out.
`WindowNotices.tick` claims each one by `(kind, slot)` before posting, so
any number of processes may tick and each notice goes out once. A notice
whose moment passed while no process ran is not sent late: "opens in 30
minutes" an hour after it opened helps nobody. A notice about nothing (no
checkpoint scheduled, held or touched in the window's scope) is not posted
unless the window says `notices: {always: true}` (`worth_posting`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlmodel import col, select

from bot.changes.lifecycle import HOLDS_CHECKPOINT, State
from bot.changes.views import ChangeView
from bot.jobs import JobState
from bot.store.db import session_scope
from bot.store.tables.changes import Change, ChangeEvent
from bot.store.tables.jobs import Job
from policies import Effect
from policies.policy import ScopeUnknown
from policies.scopes import scope_matches
from policies.windows import Window

if TYPE_CHECKING:
    from bot.service.deps import ServiceDeps

log = logging.getLogger(__name__)

# How long after a window closed its summary may still go out.
CLOSED_GRACE = timedelta(hours=1)
# A scheduled create's not_before is the opening it waits for, give or take.
_SAME_INSTANT = timedelta(seconds=1)
# The policy rule that holds creates for a window (policies/rules/schedule.py).
_WINDOW_RULE = "change_window"


class Phase(StrEnum):
    OPENING_SOON = "opening_soon"
    OPEN = "open"
    CLOSING_SOON = "closing_soon"
    CLOSED = "closed"


@dataclass(frozen=True)
class DueNotice:
    phase: Phase
    window: Window
    opens_at: datetime
    closes_at: datetime

    @property
    def kind(self) -> str:
        return f"window_{self.phase.value}"

    @property
    def slot(self) -> str:
        """The opening the notice belongs to, in the window's own time zone.
        By name: the policy loader refuses a name used twice, so no window's
        notice is claimed by another's (policies/config.py)."""
        local = self.opens_at.astimezone(self.window.tz)
        return f"{self.window.name}:{local.isoformat(timespec='minutes')}"


def due_notices(window: Window, now: datetime) -> list[DueNotice]:
    """The notices of `window` due at `now` (at most one per opening)."""
    due: list[DueNotice] = []
    start = window.last_start(now)
    if start is not None:
        end = start + window.duration
        if now < end:
            # A window shorter than its closing lead still says "open" first.
            closing = now >= max(end - window.closing_notice, start + window.duration / 2)
            due.append(DueNotice(Phase.CLOSING_SOON if closing else Phase.OPEN, window, start, end))
        elif now < end + CLOSED_GRACE:
            due.append(DueNotice(Phase.CLOSED, window, start, end))
    upcoming = window.next_start(now)
    if now >= upcoming - window.opening_notice:
        due.append(DueNotice(Phase.OPENING_SOON, window, upcoming, upcoming + window.duration))
    return due


@dataclass(frozen=True)
class Waiting:
    """What waits for one opening of a window (see the module's docstring)."""

    scheduled: tuple[ChangeView, ...] = ()
    awaiting_approval: tuple[ChangeView, ...] = ()


@dataclass(frozen=True)
class WindowSummary:
    """What happened to changes in scope while the window was open."""

    created: int
    merged: int
    rolled_back: int
    failed: int
    still_active: tuple[ChangeView, ...]
    # Creates still without their approval at the close: they wait for the next opening.
    awaiting_approval: tuple[ChangeView, ...] = ()

    @property
    def happened(self) -> int:
        return self.created + self.merged + self.rolled_back + self.failed


def worth_posting(
    phase: Phase,
    *,
    scheduled: int,
    active: int,
    happened: int,
    always: bool,
    awaiting_approval: int = 0,
) -> bool:
    """Does a notice of `phase` concern anything? Opening soon: checkpoints
    scheduled for the opening; open: those, or checkpoints held in scope;
    closing soon: checkpoints held in scope (they need a decision); closed:
    anything taken, merged, rolled back or failed in it, or still held. In
    every phase, a create in scope that waits for its approval counts: its
    approvers need to hear that the window it waits for is coming, open,
    closing or gone."""
    if always or awaiting_approval > 0:
        return True
    match phase:
        case Phase.OPENING_SOON:
            return scheduled > 0
        case Phase.OPEN:
            return scheduled > 0 or active > 0
        case Phase.CLOSING_SOON:
            return active > 0
        case Phase.CLOSED:
            return happened > 0 or active > 0


class WindowNotices:
    name = "window_notices"

    def __init__(self, ctx: ServiceDeps) -> None:
        self.ctx = ctx

    def __repr__(self) -> str:
        return f"WindowNotices({len(self.ctx.policy.windows)} windows)"

    def tick(self, now: datetime) -> None:
        if not self.ctx.channels.enabled:
            return
        for window in self.ctx.policy.windows:
            channel = window.channel or self.ctx.settings.slack.changes_channel
            if channel is None:
                continue
            for notice in due_notices(window, now):
                if self.ctx.ticks.claim(notice.kind, notice.slot):
                    self.post(notice, channel)

    def post(self, notice: DueNotice, channel: str) -> str | None:
        """Post `notice` when it concerns something; its ts, or None."""
        values: dict[str, object] = {}
        scheduled: list[ChangeView] = []
        active: list[ChangeView] = []
        happened = 0
        if notice.phase is Phase.OPENING_SOON:
            scheduled = values["scheduled"] = self.scheduled_for(notice.window, notice.opens_at)
        elif notice.phase is Phase.OPEN:
            # By the time "open" goes out its creates may be running or done.
            scheduled = values["scheduled"] = self.scheduled_for(
                notice.window, notice.opens_at, started=True
            )
            active = values["active"] = self.active_in(notice.window)
        elif notice.phase is Phase.CLOSING_SOON:
            active = values["active"] = self.active_in(notice.window)
        if notice.phase is Phase.CLOSED:
            summary = values["summary"] = self.summary(notice)
            active, happened = list(summary.still_active), summary.happened
            awaiting = list(summary.awaiting_approval)
        else:
            awaiting = self.awaiting_approval_in(notice.window, notice.closes_at)
        values["awaiting_approval"] = awaiting
        if not worth_posting(
            notice.phase,
            scheduled=len(scheduled),
            active=len(active),
            happened=happened,
            always=notice.window.notices_always,
            awaiting_approval=len(awaiting),
        ):
            log.info("%s %s: nothing in scope, not posted", notice.kind, notice.slot)
            return None
        return self.ctx.channels.post(
            channel,
            "window_notice",
            n=notice,
            opens=notice.window.local_text(notice.opens_at),
            closes=notice.window.local_text(notice.closes_at),
            start_after_restore=self.ctx.settings.defaults.start_after_restore,
            **values,
        )

    # -- what the notices list ------------------------------------------------

    def in_scope(self, window: Window, vm_id: str) -> bool:
        """Does the window govern this VM? An unknown match counts: better
        to tell one team too many than to leave one out."""
        try:
            vm = self.ctx.inventory.vm_by_id(vm_id)
        except LookupError:
            return False
        matches, _ = scope_matches(window.scope, self.ctx.decider.inventory_facts(vm))
        return matches is not False

    def waiting_for(self, window: Window, opens_at: datetime) -> Waiting:
        """What still waits for the opening of `window` at `opens_at`: never
        a create that already began or ended in it (`/checkpoint windows`
        and `checkpoint-bot windows` count these while the window is open)."""
        return Waiting(
            tuple(self.scheduled_for(window, opens_at)),
            tuple(self.awaiting_approval_in(window, opens_at + window.duration)),
        )

    def scheduled_for(
        self, window: Window, opens_at: datetime, *, started: bool = False
    ) -> list[ChangeView]:
        """The creates of VMs `window` governs waiting for its opening at
        `opens_at`; with `started`, also those that already began (or ended)
        since it opened (the "open" notice shows how each is doing; a count
        of what waits must not). The time alone is not enough: another
        window may open at the same instant over other VMs."""
        waiting = [
            col(Change.state) == State.SCHEDULED.value,
            col(Job.state) == JobState.QUEUED.value,
        ]
        with session_scope(self.ctx.engine) as s:
            rows = s.exec(
                select(Change)
                .join(Job, col(Job.change_id) == col(Change.id))
                .where(
                    *([] if started else waiting),
                    col(Job.kind) == "create",
                    col(Job.not_before) >= opens_at - _SAME_INSTANT,
                    col(Job.not_before) <= opens_at + _SAME_INSTANT,
                )
                .order_by(col(Change.id))
            ).all()
            views = [ChangeView.of(c) for c in rows]
        return [v for v in views if self.in_scope(window, v.vm_id)]

    def awaiting_approval_in(self, window: Window, closes_at: datetime) -> list[ChangeView]:
        """Creates waiting for their approval, of VMs `window` governs, that
        the window holds (its rule defers or refuses them outside it; a
        `warn` window would not) and that were not asked for after
        `closes_at` (`--at`: those wait for their own time)."""
        with session_scope(self.ctx.engine) as s:
            rows = s.exec(
                select(Change)
                .where(col(Change.state) == State.AWAITING_APPROVAL.value)
                .order_by(col(Change.id))
            ).all()
            views = [ChangeView.of(c) for c in rows]
        return [
            v
            for v in views
            if (v.run_at is None or v.run_at < closes_at)
            and self.in_scope(window, v.vm_id)
            and self.held_by_windows(v.vm_id)
        ]

    def held_by_windows(self, vm_id: str) -> bool:
        """Does the policy make this VM's creates wait for its windows? An
        undecidable override counts, as in `in_scope`."""
        if _WINDOW_RULE not in self.ctx.policy.rules:
            return False
        try:
            vm = self.ctx.inventory.vm_by_id(vm_id)
        except LookupError:
            return False
        rule = self.ctx.policy.resolve(_WINDOW_RULE, self.ctx.decider.inventory_facts(vm))
        if isinstance(rule, ScopeUnknown):
            return True
        return rule.enabled and rule.effect is not Effect.WARN

    def active_in(self, window: Window) -> list[ChangeView]:
        holding = [s.value for s in HOLDS_CHECKPOINT if s is not State.MERGING]
        with session_scope(self.ctx.engine) as s:
            rows = s.exec(
                select(Change).where(col(Change.state).in_(holding)).order_by(col(Change.id))
            ).all()
            views = [ChangeView.of(c) for c in rows]
        return [v for v in views if self.in_scope(window, v.vm_id)]

    def summary(self, notice: DueNotice) -> WindowSummary:
        reached = {"created": 0, "merged": 0, "rolled_back": 0, "failed": 0}
        to_key = {
            State.ACTIVE.value: "created",
            State.MERGED.value: "merged",
            State.ROLLED_BACK.value: "rolled_back",
            State.FAILED.value: "failed",
        }
        with session_scope(self.ctx.engine) as s:
            rows = s.exec(
                select(ChangeEvent, Change)
                .where(
                    col(ChangeEvent.change_id) == col(Change.id),
                    col(ChangeEvent.at) >= notice.opens_at,
                    col(ChangeEvent.at) < notice.closes_at,
                    col(ChangeEvent.to_state).in_(list(to_key)),
                )
                .order_by(col(ChangeEvent.id))
            ).all()
            events = [(e.to_state, e.from_state, c.vm_id) for e, c in rows]
        for to_state, from_state, vm_id in events:
            if not self.in_scope(notice.window, vm_id):
                continue
            # Back to active after a failed merge or restore is not a new checkpoint.
            if to_state == State.ACTIVE.value and from_state != State.CREATING.value:
                continue
            reached[to_key[str(to_state)]] += 1
        return WindowSummary(
            **reached,
            still_active=tuple(self.active_in(notice.window)),
            awaiting_approval=tuple(self.awaiting_approval_in(notice.window, notice.closes_at)),
        )
