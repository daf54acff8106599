"""What waits to be handed over after a commit (`checkpoint-bot outbox`):
jobs the queue has not taken (the job outbox, bot.service.dispatch) and
changes whose Slack thread is behind their record (the Slack outbox,
bot.notify). It only looks, and it reads three tables (the two outboxes,
and the changes waiting in the Slack one): it imports their modules alone,
not the whole record (bot.store.tables)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlmodel import col, select

from bot.notify.horizon import too_late_for_a_thread
from bot.store.db import session_scope
from bot.store.tables import change_ref
from bot.store.tables.changes import Change
from bot.store.tables.jobs import Job
from bot.store.tables.slack import SlackOutbox

if TYPE_CHECKING:
    from bot.service.deps import ServiceDeps


@dataclass(frozen=True)
class OutboxStatus:
    """What waits to be handed over: jobs the queue has not taken, and
    changes whose Slack thread is behind their record."""

    undelivered_jobs: list[dict[str, Any]]
    slack_changes: int
    slack_entries: int
    slack_retrying: list[dict[str, Any]]
    # Of `slack_changes`, those settled too long ago to get a thread
    # (bot.notify.horizon): a drainer marks them done without posting.
    slack_too_late: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "undelivered_jobs": self.undelivered_jobs,
            "slack": {
                "changes": self.slack_changes,
                "entries": self.slack_entries,
                "retrying": self.slack_retrying,
                "settled_long_ago": self.slack_too_late,
            },
        }


def outbox_status(ctx: ServiceDeps) -> OutboxStatus:
    """Both outboxes as they stand (`checkpoint-bot outbox`)."""
    with session_scope(ctx.engine) as s:
        jobs = s.exec(
            select(Job)
            .where(col(Job.state) == "queued", col(Job.delivered_at).is_(None))
            .order_by(col(Job.id))
        ).all()
        pending = s.exec(select(SlackOutbox).where(col(SlackOutbox.done_at).is_(None))).all()
        waiting = {entry.change_id for entry in pending}
        changes = s.exec(select(Change).where(col(Change.id).in_(waiting))).all() if waiting else []
    now = ctx.clock()
    too_late = sum(1 for change in changes if too_late_for_a_thread(change, now))
    retrying: dict[int, SlackOutbox] = {}
    for entry in pending:
        if entry.attempts and entry.attempts >= retrying.get(entry.change_id, entry).attempts:
            retrying[entry.change_id] = entry
    return OutboxStatus(
        undelivered_jobs=[
            {
                "job": j.id,
                "kind": j.kind,
                "change": change_ref(j.change_id) if j.change_id is not None else None,
                "recorded_at": j.created_at.isoformat(),
            }
            for j in jobs
        ],
        slack_changes=len(waiting),
        slack_too_late=too_late,
        slack_entries=len(pending),
        slack_retrying=[
            {
                "change": change_ref(change_id),
                "attempts": e.attempts,
                "next_try": e.not_before.isoformat() if e.not_before else None,
                "error": e.error,
            }
            for change_id, e in sorted(retrying.items())
        ],
    )
