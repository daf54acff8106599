"""The batch record: a batch (a patch wave) and its append-only events.

A batch holds no state of its own (bot.changes.batch_state derives it from
its members), so the only writes are its insertion and its events; the
events' `(batch_id, seq)` is unique, so two writers never share a seq.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from bot.domain import BatchRef
from bot.store.tables.batches import Batch, BatchEvent


class BatchNotFound(LookupError):
    def __init__(self, batch_id: int) -> None:
        super().__init__(f"no batch {BatchRef(batch_id)} (batch ids look like BAT-0007)")
        self.batch_id = batch_id


def get_batch(session: Session, batch_id: int) -> Batch:
    batch = session.get(Batch, batch_id, populate_existing=True)
    if batch is None:
        raise BatchNotFound(batch_id)
    return batch


def open_batch(session: Session, batch: Batch, *, now: datetime, details: dict[str, Any]) -> Batch:
    """Insert a new batch with its first event, `requested`."""
    batch.created_at = now
    session.add(batch)
    session.flush()
    batch_note(
        session,
        batch,
        kind="requested",
        actor=batch.requester,
        actor_team=batch.requester_team,
        now=now,
        message=batch.reason,
        details=details,
    )
    return batch


def batch_note(
    session: Session,
    batch: Batch,
    *,
    kind: str,
    actor: str,
    now: datetime,
    message: str,
    details: dict[str, Any] | None = None,
    actor_team: str | None = None,
) -> BatchEvent:
    """Append an event to the batch's own history."""
    assert batch.id is not None
    last = session.exec(
        select(func.max(col(BatchEvent.seq))).where(col(BatchEvent.batch_id) == batch.id)
    ).one()
    event = BatchEvent(
        batch_id=batch.id,
        seq=(last or 0) + 1,
        at=now,
        actor=actor,
        actor_team=actor_team,
        kind=kind,
        message=message,
        details=dict(details or {}),
    )
    session.add(event)
    session.flush()
    return event
