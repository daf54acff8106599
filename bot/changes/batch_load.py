"""Reading a batch whole (`load_batch`): its members as they stand, what
waits for approvers on each, each checkpoint's last sampled size, and the
batch's own events. The service shows it; the notifier renders its thread's
root from it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from sqlmodel import Session, col, select

from bot.changes.batch_record import get_batch
from bot.changes.batch_views import BatchView, MemberView
from bot.changes.lifecycle import Command, State
from bot.domain import ApprovalState, user_mention
from bot.store.tables.approvals import ApprovalRequest
from bot.store.tables.batches import BatchEvent
from bot.store.tables.changes import Change, ChangeEvent
from bot.store.tables.hosts import CheckpointSize
from bot.store.tables.jobs import Job


def load_batch(s: Session, batch_id: int) -> BatchView:
    """The batch with id `batch_id` (BatchNotFound if there is none)."""
    batch = get_batch(s, batch_id)
    events = s.exec(
        select(BatchEvent).where(col(BatchEvent.batch_id) == batch_id).order_by(col(BatchEvent.seq))
    ).all()
    members = members_of(s, batch_id)
    pending = s.exec(
        select(
            ApprovalRequest.id,
            ApprovalRequest.change_id,
            ApprovalRequest.action,
            ApprovalRequest.requested_by,
        )
        .where(
            col(ApprovalRequest.change_id).in_([m.change_id for m in members]),
            col(ApprovalRequest.state) == ApprovalState.PENDING,
        )
        .order_by(col(ApprovalRequest.id))
    ).all()
    waits: dict[int, tuple[str, str]] = {}
    requests: list[int] = []
    for request_id, change_id, action, requested_by in pending:
        waits.setdefault(change_id, (action, requested_by))
        if request_id is not None:
            requests.append(request_id)
    sizes = _sizes(s, [m.checkpoint_id for m in members if m.checkpoint_id])
    due = due_times(s, [m.change_id for m in members if m.state == State.SCHEDULED])
    members = [
        replace(
            m,
            waiting=waits[m.change_id][0] if m.change_id in waits else None,
            waiting_by=waits[m.change_id][1] if m.change_id in waits else None,
            size_bytes=sizes.get(m.checkpoint_id or ""),
            run_at=due.get(m.change_id, m.run_at),
        )
        for m in members
    ]
    return BatchView.of(
        batch, members, list(events), awaiting=len(waits), pending_requests=tuple(requests)
    )


def members_of(s: Session, batch_id: int) -> list[MemberView]:
    changes = s.exec(
        select(Change).where(col(Change.batch_id) == batch_id).order_by(col(Change.id))
    ).all()
    ids = [c.id for c in changes]
    events = s.exec(
        select(ChangeEvent)
        .where(col(ChangeEvent.change_id).in_(ids))
        .order_by(col(ChangeEvent.change_id), col(ChangeEvent.seq))
    ).all()
    by_change: dict[int, list[ChangeEvent]] = {}
    for e in events:
        by_change.setdefault(e.change_id, []).append(e)
    members = []
    for c in changes:
        events_of_c = by_change.get(c.id or 0, [])
        rejected = rejection(events_of_c) if c.state == State.REJECTED else None
        members.append(
            MemberView.of(
                c,
                _note(c, events_of_c, rejected),
                rejected_by=rejected.by if rejected else None,
                rejected_reason=rejected.reason if rejected else None,
            )
        )
    return members


@dataclass(frozen=True)
class Rejection:
    """Who rejected a member's request, and why in their own words ("" when
    they gave none): the reason is a person's, kept apart from the bot's
    words (bot/service/approvals.py `reject`), so it is shown escaped."""

    by: str
    reason: str

    def words(self) -> str:
        """ "rejected by <@U…>: not today", for a reader of plain text (the
        CLI); Slack renders the mention and the escaped reason apart."""
        said = f"rejected by {user_mention(self.by)}"
        return f"{said}: {self.reason}" if self.reason else said


def rejection(events: list[ChangeEvent]) -> Rejection | None:
    """The rejection of a member's create (the `reject` step that made it
    rejected), from its events in order; None when there is none."""
    for e in reversed(events):
        if e.kind == Command.REJECT and e.to_state == State.REJECTED:
            return rejection_in(e)
    return None


def rejection_in(e: ChangeEvent) -> Rejection:
    """Who rejected and why, as a `reject` or `<action>_rejected` event says."""
    reason = (e.details or {}).get("reason")
    return Rejection(e.actor, reason if isinstance(reason, str) else "")


def _note(c: Change, events: list[ChangeEvent], rejected: Rejection | None = None) -> str | None:
    """A refused member's reasons (the policy's words), who rejected a
    rejected one and why (never the policy's reason for asking: an approver
    said no), or the failure that put a member where it is (a restore that
    failed leaves it active), as `ChangeView.last_error` reads it; a
    vanished one's why (its checkpoint deleted outside the bot), from the
    step that ended it; else nothing."""
    if rejected is not None:
        return rejected.words()
    if c.state in ("denied", "rejected", "expired"):
        rules = c.decision.get("rules", [])
        # Denied: what refused it, not an approval it would also have needed.
        wanted = ("deny",) if c.state == "denied" else ("deny", "needs_approval")
        fired = [
            r.get("message", "") for r in rules if r.get("fired") and r.get("effect") in wanted
        ]
        if any(fired):
            return "; ".join(m for m in fired if m)
        # Allowed when asked, refused at its job's re-check (or rejected,
        # expired): the event that ended it says why.
        ended = [e for e in events if e.to_state == c.state and e.message]
        return ended[-1].message if ended else c.state
    if c.state == State.VANISHED:
        gone = [e for e in events if e.to_state == State.VANISHED and e.message]
        return gone[-1].message if gone else None
    for e in reversed(events):
        if e.kind.endswith("failed") or e.kind == "interrupt":
            return e.message
        if e.to_state:
            return None
    return None


def due_times(s: Session, change_ids: list[int]) -> dict[int, datetime]:
    """When each change's queued create job is due (its `not_before`): what
    a worker keeps to, so what a scheduled member says of when it runs. A
    change without one (its job is starting this moment) is left out."""
    if not change_ids:
        return {}
    rows = s.exec(
        select(Job.change_id, Job.not_before)
        .where(
            col(Job.change_id).in_(change_ids),
            col(Job.kind) == "create",
            col(Job.state) == "queued",
            col(Job.not_before).is_not(None),
        )
        .order_by(col(Job.id))
    ).all()
    # The newest job of a change wins (later rows overwrite earlier ones).
    return {change_id: at for change_id, at in rows if change_id is not None and at is not None}


def _sizes(s: Session, checkpoint_ids: list[str]) -> dict[str, int]:
    """Each checkpoint's latest sampled size (the sweep's samples, oldest first)."""
    rows = s.exec(
        select(CheckpointSize.checkpoint_id, CheckpointSize.size_bytes)
        .where(col(CheckpointSize.checkpoint_id).in_(checkpoint_ids))
        .order_by(col(CheckpointSize.at))
    ).all()
    latest: dict[str, int] = {}
    for checkpoint_id, size in rows:
        latest[checkpoint_id] = size  # later samples overwrite earlier ones
    return latest
