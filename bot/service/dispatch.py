"""Jobs handed to the queue after the commit that recorded them, and what
the thread says while the queue is down (the job outbox of
`bot.jobs.delivery`, seen from the change record).

The database row is the truth: a change already moved to `approved` or
`rolling_back` with its job recorded is never reported as "nothing was
changed" because the queue did not answer. The requester is told the job
starts as soon as the queue is back, the thread gets a reply saying so,
and another when the job is finally handed over (within one tick of the
queue answering: `jobs.tick_seconds`).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from bot.changes.record import ConcurrentUpdate, get_change, note
from bot.domain import JOBS_ACTOR
from bot.jobs import job_words
from bot.store.db import session_scope
from bot.store.tables import change_ref
from bot.store.tables.changes import ChangeEvent
from bot.store.tables.jobs import Job

if TYPE_CHECKING:
    from bot.service.deps import ServiceDeps

log = logging.getLogger(__name__)

ACTOR = JOBS_ACTOR
QUEUE_WAIT = "queue_wait"
QUEUE_BACK = "queue_back"


def deliver(ctx: ServiceDeps, job_id: int) -> bool:
    """Hand a committed job to the queue. If the queue does not answer,
    the thread says the work waits for it; False then."""
    if ctx.job_delivery().deliver(job_id):
        return True
    try:
        with session_scope(ctx.engine) as s:
            job = s.get(Job, job_id)
            if job is None or job.change_id is None or job.delivered_at is not None:
                return job is not None and job.delivered_at is not None
            note(
                s,
                get_change(s, job.change_id),
                kind=QUEUE_WAIT,
                actor=ACTOR,
                now=ctx.clock(),
                message=f"recorded; {job_words(job.kind)} will start as soon as the job "
                "queue is back",
                details={"job": job_id},
            )
            change_id = job.change_id
    except (SQLAlchemyError, ConcurrentUpdate):
        # The job is recorded all the same; the outbox hands it over later
        # (a note that met another writer's is a courtesy lost, not an error
        # for the person whose request is recorded).
        log.warning("could not note that job %s waits for the queue", job_id, exc_info=True)
        return False
    ctx.notifier.changed(change_id)
    return False


def awaits_queue(ctx: ServiceDeps, job_id: int | None) -> bool:
    """Whether a recorded job is still waiting to be handed to the queue."""
    if job_id is None:
        return False
    with session_scope(ctx.engine) as s:
        job = s.get(Job, job_id)
        return job is not None and job.delivered_at is None and job.state == "queued"


def _waited(s: Session, job: Job) -> bool:
    """The thread said this job waits for the queue (and not yet that it is back)."""
    last = s.exec(
        select(ChangeEvent)
        .where(
            col(ChangeEvent.change_id) == job.change_id,
            col(ChangeEvent.kind).in_([QUEUE_WAIT, QUEUE_BACK]),
        )
        .order_by(col(ChangeEvent.seq).desc())
    ).first()
    return last is not None and last.kind == QUEUE_WAIT and last.details.get("job") == job.id


class JobOutbox:
    """The periodic task: every process hands undelivered jobs to the queue
    on every tick; the conditional `delivered_at` update picks one."""

    name = "job-outbox"

    def __init__(self, ctx: ServiceDeps) -> None:
        self.ctx = ctx

    def __repr__(self) -> str:
        return "JobOutbox()"

    def tick(self, now: datetime) -> None:
        self.hand_over(now)

    def hand_over(self, now: datetime) -> list[int]:
        """Hand every undelivered job to the queue; the ids handed over.
        Also what `checkpoint-bot reconcile` runs: where no bot or worker
        ticks (the CLI alone), a job whose command died between recording
        it and the enqueue is otherwise never handed over."""
        # Job id → its change, for each "queue is back" note written in a
        # delivering transaction. A delivery the queue then refuses rolls its
        # transaction (and the note) back: only delivered jobs are told, or a
        # queue still down was announced back, and its thread re-posted, on
        # every tick.
        noted: dict[int, int] = {}

        def before_enqueue(s: Session, job: Job) -> None:
            # In the delivering transaction: in the record before the job can start.
            if job.change_id is None or not _waited(s, job):
                return
            note(
                s,
                get_change(s, job.change_id),
                kind=QUEUE_BACK,
                actor=ACTOR,
                now=now,
                message=f"the job queue is back: {job_words(job.kind)} starts now",
                details={"job": job.id},
            )
            assert job.id is not None
            noted[job.id] = job.change_id

        handed = self.ctx.job_delivery().redeliver(before_enqueue=before_enqueue)
        for job_id in handed:
            log.info("job %s handed to the queue by the outbox", job_id)
            change_id = noted.get(job_id)
            if change_id is not None:
                log.info("%s: the job queue is back", change_ref(change_id))
                self.ctx.notifier.changed(change_id)
        return handed
