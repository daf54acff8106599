"""The job outbox: handing recorded jobs to the queue after their commit.

A job row is written in the same transaction as the state change that
implies it (`JobLedger.submit(session=...)`), so the database says what is
to run whatever the queue does. Handing the id to Huey comes after the
commit and may fail (Redis down, a process gone in between): the row's
`delivered_at` stays NULL, and `JobDelivery.redeliver`, ticked by every
process, hands it over as soon as the queue answers again. Delivering
twice is harmless (the ledger's claim decides who runs); delivering never
is what this module exists to prevent.

`delivered_at` is set in the same transaction as the enqueue, before it
commits: a worker's claim of the job (an UPDATE of the same row) waits
for that commit, so whatever `before_enqueue` writes (a thread note) is
in the record before the job can start.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.jobs.queue import JobQueue
from bot.jobs.states import JobState
from bot.store.db import driver_reason, session_scope
from bot.store.tables.jobs import Job

log = logging.getLogger(__name__)

_JOB = Job.__table__  # type: ignore[attr-defined]

# A job recorded this recently may still be being delivered by the process
# that committed it; re-delivery leaves it alone until then.
DELIVERY_GRACE = timedelta(seconds=2)

Clock = Callable[[], datetime]
# Seconds of real time to wait before a job due at `not_before` may run.
DelayOf = Callable[[datetime | None], float]


class QueueUnavailable(RuntimeError):
    """The queue did not take a job id (the error's type name only: a
    Redis URL in its text may carry a password)."""


class JobDelivery:
    def __init__(self, engine: Engine, queue: JobQueue, clock: Clock, delay_of: DelayOf) -> None:
        self._engine, self._queue, self._clock, self._delay_of = engine, queue, clock, delay_of

    def __repr__(self) -> str:
        return f"JobDelivery({self._queue!r})"

    def deliver(
        self, job_id: int, *, before_enqueue: Callable[[Session, Job], None] | None = None
    ) -> bool:
        """Hand `job_id` to the queue unless it was handed over already or
        is no longer queued; True if it is (now) with the queue, False if
        the queue refused: the row stays undelivered for `redeliver`."""
        now = self._clock()
        try:
            with session_scope(self._engine) as s:
                marked = (
                    s.connection()
                    .execute(
                        update(_JOB)
                        .where(
                            _JOB.c.id == job_id,
                            _JOB.c.delivered_at.is_(None),
                            _JOB.c.state == JobState.QUEUED.value,
                        )
                        .values(delivered_at=now)
                        .returning(_JOB.c.not_before)
                    )
                    .first()
                )
                if marked is None:
                    return True
                if before_enqueue is not None:
                    job = s.get(Job, job_id)
                    assert job is not None
                    before_enqueue(s, job)
                delay = self._delay_of(marked.not_before)
                self._enqueue(job_id, delay)
        except QueueUnavailable as exc:
            log.warning("job %s waits for the job queue: %s", job_id, exc)
            return False
        if delay <= 0:
            # Committed: a worker of this process may claim it now (woken
            # earlier, its claim would only wait for this transaction's lock).
            self._queue.wake()
        return True

    def _enqueue(self, job_id: int, delay: float) -> None:
        try:
            self._queue.enqueue(job_id, delay=max(0.0, delay), wake=False)
        except Exception as exc:
            # Huey's storage raises its backend's own errors (redis-py's
            # ConnectionError, sqlite3's OperationalError): all mean the
            # same here, and the job row is the truth either way.
            raise QueueUnavailable(f"the job queue did not answer ({driver_reason(exc)})") from None

    def undelivered(self, grace: timedelta = DELIVERY_GRACE) -> list[int]:
        """Queued jobs never handed to the queue, recorded before `grace` ago."""
        cutoff = self._clock() - grace
        with session_scope(self._engine) as s:
            rows = s.connection().execute(
                select(_JOB.c.id)
                .where(
                    _JOB.c.state == JobState.QUEUED.value,
                    _JOB.c.delivered_at.is_(None),
                    _JOB.c.created_at < cutoff,
                )
                .order_by(_JOB.c.id)
            )
            return [int(r.id) for r in rows]

    def redeliver(
        self,
        *,
        grace: timedelta = DELIVERY_GRACE,
        before_enqueue: Callable[[Session, Job], None] | None = None,
    ) -> list[int]:
        """Hand every undelivered job over, oldest first; stops at the first
        refusal (the queue is still down: the next tick tries again).
        Returns the ids delivered by this call."""
        delivered: list[int] = []
        for job_id in self.undelivered(grace):
            if not self.deliver(job_id, before_enqueue=before_enqueue):
                break
            delivered.append(job_id)
        return delivered
