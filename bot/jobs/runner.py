"""Running one job: claim it, run its handler, record the outcome.

`JobRunner.run(job_id)` is what a queue task calls. It never trusts the
queue: a duplicate or late delivery loses the claim and does nothing. It
returns a `RunOutcome` whose `retry_after` tells the queue to deliver the
id again later (VM busy, retry backoff); the ledger row already says why.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from bot.clock import real_seconds
from bot.jobs.errors import (
    HandledFailure,
    HandledInterruption,
    JobDeadlineExceeded,
    JobError,
    JobNotFound,
    JobOwnershipLost,
    RetryLater,
)
from bot.jobs.ledger import DEADLINE_BEFORE_START, Clock, JobLedger
from bot.jobs.states import ClaimOutcome, JobState
from bot.store.db import driver_reason
from bot.store.outage import is_transient
from bot.store.tables.jobs import Job

log = logging.getLogger(__name__)

VM_BUSY_PAST_DEADLINE = (
    "VM busy: another operation on this VM did not finish before this job's deadline"
)
HOST_BUSY_PAST_DEADLINE = (
    "host busy: the host's batch slots (batches.per_host) stayed taken until this job's deadline"
)
_MAX_MESSAGE = 500
# The job row's error when the handler's own record of its work could not
# be written: what the reconciler quotes in the change's history and thread.
RECORD_NOT_WRITTEN = "the record could not be written: the database did not answer ({reason})"

ProgressCallback = Callable[[int, str], None]


def default_worker_id() -> str:
    """Unique per runner: host, process and a random tail, so that a
    restarted process never mistakes an old claim for its own."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def describe_error(exc: BaseException) -> str:
    """One line for the job row: type name and message, no traceback."""
    text = " ".join(str(exc).split())
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return line if len(line) <= _MAX_MESSAGE else line[: _MAX_MESSAGE - 1] + "…"


@dataclass
class JobContext:
    """What a handler gets: plain values, never ORM objects."""

    job_id: int
    kind: str
    change_id: int | None
    vm_id: str
    host: str
    payload: dict[str, Any]
    attempt: int
    deadline: datetime
    clock: Clock = field(repr=False)
    on_progress: ProgressCallback | None = field(default=None, repr=False)
    # Writes `job.host_call = 'sent'`; False when this worker no longer
    # runs the job (JobLedger.mark_sent). None: nothing records it (tests
    # that call a handler directly).
    on_sending: Callable[[], bool] | None = field(default=None, repr=False)
    _lost: threading.Event = field(default_factory=threading.Event, repr=False)

    def remaining(self) -> float:
        return (self.deadline - self.clock()).total_seconds()

    @property
    def ownership_lost(self) -> bool:
        return self._lost.is_set()

    def check_deadline(self) -> None:
        """Call between steps: raises once the deadline passed, or when a
        heartbeat found that this worker no longer owns the job."""
        if self._lost.is_set():
            raise JobOwnershipLost(
                f"job {self.job_id} is no longer owned by this worker (its lock was taken over)",
                job_id=self.job_id,
            )
        if self.remaining() <= 0:
            raise JobDeadlineExceeded(
                f"job {self.job_id} passed its deadline {self.deadline.isoformat()}",
                job_id=self.job_id,
                deadline=self.deadline,
            )

    def sending(self, call: str) -> None:
        """Call right before the job's destructive host call (`call`, the
        cmdlet): records that it goes out, or raises JobOwnershipLost, and
        then it must not be sent, when this worker no longer runs the job.
        A failure to write is raised as it is: nothing was sent."""
        if self.on_sending is None or self.on_sending():
            return
        self._lost.set()
        raise JobOwnershipLost(
            f"job {self.job_id} is no longer owned by this worker: {call} was not sent",
            job_id=self.job_id,
        )

    def progress(self, message: str) -> None:
        if self.on_progress is None:
            return
        try:
            self.on_progress(self.job_id, message)
        except Exception:
            # Progress is a courtesy to humans; it must not fail the job.
            log.exception("progress callback failed for job %s", self.job_id)


Handler = Callable[[JobContext], Mapping[str, Any]]


class RunStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REQUEUED = "requeued"
    VM_BUSY = "vm_busy"
    NOT_DUE = "not_due"
    LOST = "lost"
    OWNERSHIP_LOST = "ownership_lost"
    # What the host did is unknown (the database did not answer while the
    # job recorded its work, or the host stopped answering mid-call: a
    # `HandledInterruption`): the reconciler asks it (never a failure).
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class RunOutcome:
    job_id: int
    status: RunStatus
    # Seconds after which the queue should deliver this job id again.
    retry_after: float | None = None
    error: str | None = None
    # What the handler returned, for a job that ran to its end.
    result: Mapping[str, Any] | None = None


class _Heartbeat:
    def __init__(self, beat: Callable[[], bool], interval: float, lost: threading.Event) -> None:
        self._beat = beat
        self._interval = interval
        self._lost = lost
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-heartbeat", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        missed = 0
        while not self._stop.wait(self._interval):
            try:
                owned = self._beat()
            except Exception as exc:
                # A database blip: the lock only goes stale after several
                # missed beats, so keep trying. An outage is said once per
                # job, not with a traceback every beat; a bug keeps its own.
                missed += 1
                if not is_transient(exc):
                    log.warning("heartbeat failed; will retry", exc_info=True)
                elif missed == 1:
                    log.warning(
                        "heartbeat failed, the database did not answer (%s); will retry",
                        driver_reason(exc),
                        exc_info=exc if log.isEnabledFor(logging.DEBUG) else None,
                    )
                continue
            if missed:
                log.info("heartbeat recorded again after %d missed", missed)
                missed = 0
            if not owned:
                self._lost.set()
                return


class JobRunner:
    def __init__(
        self,
        ledger: JobLedger,
        handlers: Mapping[str, Handler],
        worker_id: str,
        *,
        clock: Clock,
        heartbeat_interval: float = 2.0,
        vm_busy_retry: float = 1.0,
        retry_backoff: float = 1.0,
        max_retry_delay: float = 60.0,
        on_progress: ProgressCallback | None = None,
        db_retry: float = 1.0,
        db_retry_for: float = 60.0,
    ) -> None:
        if heartbeat_interval <= 0 or vm_busy_retry <= 0:
            raise ValueError("heartbeat_interval and vm_busy_retry must be positive")
        if heartbeat_interval * 3 > ledger.lock_stale_after.total_seconds():
            # Fewer than three missed beats must never make a lock stale.
            raise ValueError(
                f"heartbeat_interval {heartbeat_interval}s is too long for a lock that goes "
                f"stale after {ledger.lock_stale_after}"
            )
        self.ledger = ledger
        self.handlers = dict(handlers)
        self.worker_id = worker_id
        self._clock = clock
        self.heartbeat_interval = heartbeat_interval
        self.vm_busy_retry = vm_busy_retry
        self.retry_backoff = retry_backoff
        self.max_retry_delay = max_retry_delay
        self.on_progress = on_progress
        # A database that does not answer: how often, and how long, to try
        # again to record a job's outcome (real seconds).
        self.db_retry = db_retry
        self.db_retry_for = db_retry_for
        # The jobs this runner's handlers run now, known without asking the
        # database (a process stopping asks it; it may not answer, or no
        # longer read its own schema after a `db downgrade`).
        self._running: set[int] = set()
        # Those whose outcome could not be written (`_left_running`): still
        # `running` in the ledger under this worker's claim.
        self._unwritten: set[int] = set()
        self._running_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"JobRunner(worker_id={self.worker_id!r}, kinds={sorted(self.handlers)})"

    def running(self) -> frozenset[int]:
        """The ids of the jobs whose handlers run in this process now."""
        with self._running_lock:
            return frozenset(self._running)

    def left_behind(self) -> frozenset[int]:
        """The jobs this process would leave to a reconciler if it stopped
        now: those running, and those whose outcome it could not record."""
        with self._running_lock:
            return frozenset(self._running | self._unwritten)

    def run(self, job_id: int) -> RunOutcome:
        with self._running_lock:
            self._running.add(job_id)
        try:
            return self._run(job_id)
        finally:
            with self._running_lock:
                self._running.discard(job_id)

    def _run(self, job_id: int) -> RunOutcome:
        try:
            claim = self.ledger.claim(job_id, self.worker_id)
        except JobNotFound:
            log.warning("job %s was delivered but does not exist", job_id)
            return RunOutcome(job_id, RunStatus.LOST)
        except Exception as exc:
            if not is_transient(exc):
                raise
            # The claim is a conditional update: delivering the id again is
            # safe, whether or not this one reached the database.
            log.warning("job %s: the database is unavailable; delivering it again", job_id)
            return RunOutcome(
                job_id, RunStatus.REQUEUED, retry_after=self.db_retry, error=describe_error(exc)
            )
        job = claim.job
        if claim.outcome is ClaimOutcome.LOST:
            return RunOutcome(job_id, RunStatus.LOST)
        if claim.outcome is ClaimOutcome.NOT_DUE:
            assert job.not_before is not None
            wait = max(real_seconds(self._clock, job.not_before - self.ledger.now()), 0.01)
            return RunOutcome(job_id, RunStatus.NOT_DUE, retry_after=wait)
        if claim.outcome is ClaimOutcome.VM_BUSY:
            return self._vm_busy(job)
        if claim.outcome is ClaimOutcome.HOST_BUSY:
            return self._vm_busy(job, HOST_BUSY_PAST_DEADLINE)
        if claim.took_over_from is not None:
            log.warning(
                "job %s took over the stale lock on VM %s from job %s",
                job_id,
                job.vm_id,
                claim.took_over_from,
            )
        return self._execute(job)

    def _vm_busy(self, job: Job, why: str = VM_BUSY_PAST_DEADLINE) -> RunOutcome:
        """The VM (or the host's slots) is taken: deliver the id again
        shortly, or fail the job once its deadline has passed."""
        assert job.id is not None
        if job.deadline_at is not None and self._clock() >= job.deadline_at:
            if self.ledger.fail_queued(job.id, error=why):
                return RunOutcome(job.id, RunStatus.FAILED, error=why)
            return RunOutcome(job.id, RunStatus.LOST)
        return RunOutcome(job.id, RunStatus.VM_BUSY, retry_after=self.vm_busy_retry)

    def _execute(self, job: Job) -> RunOutcome:
        assert job.id is not None and job.deadline_at is not None
        job_id = job.id
        ctx = JobContext(
            job_id=job.id,
            kind=job.kind,
            change_id=job.change_id,
            vm_id=job.vm_id,
            host=job.host,
            payload=dict(job.payload),
            attempt=job.attempt,
            deadline=job.deadline_at,
            clock=self._clock,
            on_progress=self.on_progress,
            on_sending=lambda: self.ledger.mark_sent(job_id, self.worker_id),
        )
        if ctx.remaining() <= 0:
            return self._finish(ctx, succeeded=False, error=DEADLINE_BEFORE_START)
        handler = self.handlers.get(job.kind)
        if handler is None:
            error = f"no handler for job kind {job.kind!r} on worker {self.worker_id}"
            return self._finish(ctx, succeeded=False, error=error)

        def beat() -> bool:
            return self.ledger.heartbeat(ctx.job_id, self.worker_id)

        try:
            with _Heartbeat(beat, self.heartbeat_interval, ctx._lost):
                result = dict(handler(ctx))
                json.dumps(result)  # fail here, not half-way through the UPDATE
        except RetryLater as exc:
            log.info("job %s (%s on %s) will try again: %s", job.id, job.kind, job.vm_id, exc)
            return self._failed(job, ctx, describe_error(exc), retry_later=True)
        except HandledInterruption as exc:
            # Its handler recorded the unknown outcome where people read it:
            # one line here, no traceback.
            log.info("job %s (%s on %s) interrupted: %s", job.id, job.kind, job.vm_id, exc)
            return self._interrupted(ctx, str(exc))
        except HandledFailure as exc:
            # Its handler recorded it where people read it: one line here.
            log.info("job %s (%s on %s) failed: %s", job.id, job.kind, job.vm_id, exc)
            return self._failed(job, ctx, describe_error(exc))
        except JobOwnershipLost as exc:
            # Another process settles it (a reconciler interrupted it, or a
            # claim took its stale lock): nothing of it is written here.
            log.warning("job %s (%s on %s): %s", job.id, job.kind, job.vm_id, exc)
            return RunOutcome(ctx.job_id, RunStatus.OWNERSHIP_LOST, error=str(exc))
        except Exception as exc:
            if is_transient(exc):
                return self._unrecorded(job, ctx, exc)
            if not self._still_ours(ctx):
                # Seen: a worker paused past its claim woke after a reconciler
                # had settled its rollback ("not run"); its re-check then failed
                # and recording that found the change settled. Not this job's
                # failure, and no traceback: whoever took the job settles it.
                log.warning(
                    "job %s (%s on %s) is no longer this worker's; it stopped there: %s",
                    job.id,
                    job.kind,
                    job.vm_id,
                    describe_error(exc),
                )
                return RunOutcome(ctx.job_id, RunStatus.OWNERSHIP_LOST, error=describe_error(exc))
            log.exception("job %s (%s on %s) failed", job.id, job.kind, job.vm_id)
            return self._failed(job, ctx, describe_error(exc))
        if ctx.ownership_lost:
            log.error("job %s finished after this worker lost its claim", job.id)
        return self._finish(ctx, succeeded=True, result=result)

    def _still_ours(self, ctx: JobContext) -> bool:
        """Whether this worker still runs the job, as the ledger says now (a
        heartbeat may not have noticed yet); True when it cannot be read."""
        if ctx.ownership_lost:
            return False
        try:
            job = self.ledger.get(ctx.job_id)
        except Exception:  # the database's answer decides nothing here
            return True
        return job.state == JobState.RUNNING and job.worker == self.worker_id

    def _unrecorded(self, job: Job, ctx: JobContext, exc: BaseException) -> RunOutcome:
        """The handler could not write its record because the database did
        not answer: the host may have done the work, or part of it. Neither
        a failure nor a retry (that could run a destructive operation
        twice): the job ends `interrupted`, as if its worker had vanished,
        and the reconciler asks the host what happened."""
        reason = driver_reason(exc)
        log.warning(
            "job %s (%s on %s): the record could not be written, the database did not "
            "answer (%s); the outcome on the host is left to the reconciler",
            job.id,
            job.kind,
            job.vm_id,
            reason,
            exc_info=exc if log.isEnabledFor(logging.DEBUG) else None,
        )
        return self._interrupted(ctx, RECORD_NOT_WRITTEN.format(reason=reason))

    def _interrupted(self, ctx: JobContext, error: str) -> RunOutcome:
        """End the job `interrupted` with `error`: what happened on the host
        is unknown, so the reconciler asks it (never a failure, never a
        retry)."""
        try:
            self._recorded(lambda: self.ledger.interrupt(ctx.job_id, self.worker_id, error))
        except JobOwnershipLost as lost:
            if lost.state == JobState.INTERRUPTED:
                # Its heartbeats stopped (with the database, or while a host
                # call hung), so the reconciler took the job first: the end
                # this write wanted. It asks the host what happened.
                log.warning(
                    "job %s: the reconciler interrupted it meanwhile (its heartbeat lapsed); "
                    "it asks the host what happened",
                    ctx.job_id,
                )
                return RunOutcome(ctx.job_id, RunStatus.INTERRUPTED, error=error)
            log.error("job %s: %s", ctx.job_id, lost)
            return RunOutcome(ctx.job_id, RunStatus.OWNERSHIP_LOST, error=str(lost))
        except Exception as again:
            if not is_transient(again):
                raise
            return self._left_running(ctx, again, error)
        return RunOutcome(ctx.job_id, RunStatus.INTERRUPTED, error=error)

    def _left_running(self, ctx: JobContext, exc: BaseException, error: str) -> RunOutcome:
        """Not even the outcome could be written in `db_retry_for`: the row
        stays `running` under this worker's claim, which no heartbeat renews
        now, so the reconciler interrupts it once the claim lapses and asks
        the host (the path of a worker that died)."""
        with self._running_lock:
            self._unwritten.add(ctx.job_id)
        log.warning(
            "job %s: its outcome could not be recorded in %ss, the database did not answer "
            "(%s); it is left to the reconciler once its claim lapses",
            ctx.job_id,
            self.db_retry_for,
            driver_reason(exc),
        )
        return RunOutcome(ctx.job_id, RunStatus.INTERRUPTED, error=error)

    def _failed(
        self, job: Job, ctx: JobContext, error: str, *, retry_later: bool = False
    ) -> RunOutcome:
        if job.destructive or (job.attempt >= job.max_attempts and not retry_later):
            return self._finish(ctx, succeeded=False, error=error)
        delay = min(self.retry_backoff * 2 ** (job.attempt - 1), self.max_retry_delay)
        not_before = self._clock() + timedelta(seconds=delay)
        if not_before >= ctx.deadline:
            return self._finish(
                ctx, succeeded=False, error=f"{error} (no time left to retry before the deadline)"
            )
        try:
            self._recorded(
                lambda: self.ledger.requeue(
                    ctx.job_id,
                    self.worker_id,
                    not_before=not_before,
                    error=error,
                    beyond_attempts=retry_later,
                )
            )
        except JobError as exc:
            log.warning("could not requeue job %s: %s", ctx.job_id, exc)
            return RunOutcome(ctx.job_id, RunStatus.OWNERSHIP_LOST, error=str(exc))
        except Exception as exc:
            if not is_transient(exc):
                raise
            return self._left_running(
                ctx, exc, RECORD_NOT_WRITTEN.format(reason=driver_reason(exc))
            )
        return RunOutcome(ctx.job_id, RunStatus.REQUEUED, retry_after=delay, error=error)

    def _finish(
        self,
        ctx: JobContext,
        *,
        succeeded: bool,
        result: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> RunOutcome:
        try:
            self._recorded(
                lambda: self.ledger.finish(
                    ctx.job_id,
                    self.worker_id,
                    succeeded=succeeded,
                    result=result or {},
                    error=error,
                )
            )
        except JobOwnershipLost as exc:
            log.error("job %s: %s", ctx.job_id, exc)
            return RunOutcome(ctx.job_id, RunStatus.OWNERSHIP_LOST, error=str(exc))
        except Exception as exc:
            if not is_transient(exc):
                raise
            return self._left_running(
                ctx, exc, RECORD_NOT_WRITTEN.format(reason=driver_reason(exc))
            )
        status = RunStatus.SUCCEEDED if succeeded else RunStatus.FAILED
        return RunOutcome(ctx.job_id, status, error=error, result=result)

    def _recorded(self, write: Callable[[], object]) -> None:
        """Run a ledger write, trying again while the database does not
        answer (for at most `db_retry_for` seconds). The writes are
        conditional on this worker's claim, so one that reached the database
        before its answer was lost makes the next try lose the claim; it
        never records an outcome twice."""
        started = time.monotonic()
        tries = 0
        while True:
            try:
                write()
            except Exception as exc:
                if not is_transient(exc) or time.monotonic() >= started + self.db_retry_for:
                    raise
                tries += 1
                if tries == 1:
                    # Once, not every `db_retry`: the outage lasts as long as it lasts.
                    log.warning(
                        "the database did not answer (%s); recording a job outcome again "
                        "every %ss for up to %ss",
                        driver_reason(exc),
                        self.db_retry,
                        self.db_retry_for,
                    )
                time.sleep(self.db_retry)
                continue
            if tries:
                log.info(
                    "job outcome recorded once the database answered, after %.0fs",
                    time.monotonic() - started,
                )
            return
