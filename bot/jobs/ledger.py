"""The job ledger: the database rows that decide who runs what.

Huey only delivers job ids; it may deliver one twice, late, or to several
workers. Every transition here is a conditional UPDATE whose rowcount (or
RETURNING row) decides, so the rows stay the source of truth whatever the
queue does, across threads, processes, machines and bot replicas.

The VM lock statements live in `bot.jobs.vmlock`; the lock order that
keeps PostgreSQL free of deadlocks is described there, and so is the hold
an interrupted job keeps on its VM until its change is settled.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, col
from sqlmodel import select as select_rows

from bot.jobs import hostslots, vmlock
from bot.jobs.errors import (
    IdempotencyConflict,
    JobError,
    JobNotFound,
    JobOwnershipLost,
    RetryNotAllowed,
)
from bot.jobs.states import ClaimOutcome, HostCall, JobState, is_final
from bot.store.db import redacted_url, session_scope
from bot.store.tables.jobs import Job

_JOB = vmlock.JOB

DEADLINE_BEFORE_START = "deadline passed before the job could start"
_MAX_ERROR = 4000

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class ClaimResult:
    outcome: ClaimOutcome
    # The job as it stands after the claim transaction.
    job: Job
    # vm_busy: the job holding the VM lock (running, or interrupted and
    # holding the VM until its change is settled).
    lock_holder: int | None = None
    # won by taking over a lock row: the job that held it (one that ended,
    # or an interrupted one with no change to settle).
    took_over_from: int | None = None

    @property
    def won(self) -> bool:
        return self.outcome is ClaimOutcome.WON


def _aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {value!r}")
    return value.astimezone(UTC)


class JobLedger:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        *,
        lock_stale_after: timedelta = timedelta(seconds=30),
    ) -> None:
        if lock_stale_after <= timedelta(0):
            raise ValueError("lock_stale_after must be positive")
        self._engine = engine
        self._clock = clock
        self.lock_stale_after = lock_stale_after

    def __repr__(self) -> str:
        # Not the URL's own repr: it hides the password of user:pass@ only,
        # not one in the query (bot.store.db.redacted_url).
        url = redacted_url(self._engine.url)
        return f"JobLedger({url}, lock_stale_after={self.lock_stale_after})"

    def now(self) -> datetime:
        return _aware(self._clock(), "clock()")

    # -- submitting -------------------------------------------------------

    def submit(
        self,
        kind: str,
        *,
        vm_id: str,
        host: str,
        change_id: int | None,
        payload: Mapping[str, Any],
        idempotency_key: str,
        destructive: bool,
        deadline: timedelta,
        max_attempts: int = 1,
        not_before: datetime | None = None,
        session: Session | None = None,
    ) -> tuple[Job, bool]:
        """Insert a queued job; `(job, True)` if new, `(existing, False)` if
        the idempotency key was seen before (also when racing another
        submitter: the unique key arbitrates, the loser reads the winner).

        With `session`, the row is written in that transaction (the state
        change that implies the job commits with it, or neither does) and
        the job is read back through it; otherwise in a transaction of its own.
        """
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        if deadline <= timedelta(0):
            raise ValueError(f"deadline must be positive, got {deadline}")
        if destructive:
            # A restore or remove that failed half-way must be looked at by
            # a human, never replayed.
            max_attempts = 1
        now = self.now()
        values = {
            "idempotency_key": idempotency_key,
            "kind": kind,
            "change_id": change_id,
            "vm_id": vm_id,
            "host": host,
            "state": JobState.QUEUED.value,
            "destructive": destructive,
            "attempt": 0,
            "max_attempts": max_attempts,
            "payload": dict(payload),
            "result": {},
            "created_at": now,
            "not_before": None if not_before is None else _aware(not_before, "not_before"),
            "deadline_at": now + deadline,
        }
        if session is not None:
            return self._insert(session, values)
        with session_scope(self._engine) as s:
            job, created = self._insert(s, values)
        return job, created

    def _insert(self, s: Session, values: dict[str, Any]) -> tuple[Job, bool]:
        kind, vm_id, idempotency_key = values["kind"], values["vm_id"], values["idempotency_key"]
        conn = s.connection()
        stmt = vmlock.insert_ignoring(conn.dialect.name, _JOB, values, "idempotency_key")
        new_id = conn.execute(stmt.returning(_JOB.c.id)).scalar()
        if new_id is not None:
            job = s.get(Job, new_id)
            assert job is not None
            return job, True
        existing = s.exec(
            select_rows(Job).where(col(Job.idempotency_key) == idempotency_key)
        ).first()
        if existing is None:
            raise IdempotencyConflict(
                f"idempotency key {idempotency_key!r} conflicted but no job holds it",
                key=idempotency_key,
            )
        if existing.kind != kind or existing.vm_id != vm_id:
            raise IdempotencyConflict(
                f"idempotency key {idempotency_key!r} already used by job {existing.id} "
                f"({existing.kind} on {existing.vm_id}), not {kind} on {vm_id}",
                job_id=existing.id,
                key=idempotency_key,
            )
        return existing, False

    # -- claiming ---------------------------------------------------------

    def claim(self, job_id: int, worker: str) -> ClaimResult:
        """Move the job queued → running and take its VM lock, atomically.

        On SQLite the transaction starts with BEGIN IMMEDIATE, so claims are
        serialised outright. On PostgreSQL (READ COMMITTED) nothing here is
        read-then-write: the job UPDATE re-checks `state='queued'` after any
        concurrent writer commits, the lock INSERT ... ON CONFLICT waits for
        an in-flight insert of the same VM, and a takeover UPDATE re-checks
        that the holder is unchanged.

        A holder whose worker stopped heart-beating is interrupted here (as
        the reconciler would), but its VM is not taken: the claim waits
        (`VM_BUSY`) until its change is settled (bot.jobs.vmlock).
        """
        took_over: int | None = None
        for _ in range(2):
            try:
                return self._claim_once(job_id, worker, took_over)
            except vmlock.VMBusy as busy:
                if not busy.stale or busy.holder is None:
                    return ClaimResult(
                        ClaimOutcome.VM_BUSY, self.get(job_id), lock_holder=busy.holder
                    )
                if self._interrupt_stale_holder(busy.holder):
                    return ClaimResult(
                        ClaimOutcome.VM_BUSY, self.get(job_id), lock_holder=busy.holder
                    )
                # Interrupted with no change to settle: its lock went with it.
                took_over = busy.holder
        return ClaimResult(ClaimOutcome.VM_BUSY, self.get(job_id))

    def _interrupt_stale_holder(self, holder: int) -> bool:
        """Interrupt `holder` if its worker is still silent; whether the VM
        is held (by it, or by whoever moved first)."""
        now = self.now()
        with session_scope(self._engine) as s:
            conn = s.connection()
            row = conn.execute(
                select(_JOB.c.vm_id, _JOB.c.worker, _JOB.c.change_id).where(_JOB.c.id == holder)
            ).first()
            if row is None or row.worker is None:
                return True  # moved on meanwhile: the next delivery claims again
            if not vmlock.interrupt_stale_job(
                conn,
                job_id=holder,
                worker=row.worker,
                now=now,
                cutoff=now - self.lock_stale_after,
            ):
                return True
            hostslots.release(conn, job_id=holder)
            return vmlock.hold_or_release(
                conn, vm_id=row.vm_id, job_id=holder, change_id=row.change_id
            )

    def _claim_once(self, job_id: int, worker: str, took_over: int | None) -> ClaimResult:
        """One claim transaction; raises `vmlock.VMBusy` (rolled back)."""
        now = self.now()
        try:
            with session_scope(self._engine) as s:
                conn = s.connection()
                claimed = conn.execute(
                    update(_JOB)
                    .where(
                        _JOB.c.id == job_id,
                        _JOB.c.state == JobState.QUEUED.value,
                        or_(_JOB.c.not_before.is_(None), _JOB.c.not_before <= now),
                    )
                    .values(
                        state=JobState.RUNNING.value,
                        attempt=_JOB.c.attempt + 1,
                        worker=worker,
                        started_at=now,
                        heartbeat_at=now,
                        # A destructive job's (a restore, a remove) says
                        # whether its host call went out; others say nothing.
                        host_call=case((_JOB.c.destructive, HostCall.NOT_SENT.value), else_=None),
                    )
                    .returning(_JOB.c.vm_id, _JOB.c.host, _JOB.c.payload)
                ).first()
                if claimed is not None:
                    taken = vmlock.take(
                        conn,
                        vm_id=claimed.vm_id,
                        job_id=job_id,
                        worker=worker,
                        now=now,
                        stale_after=self.lock_stale_after,
                    )
                    if taken is not None:
                        took_over = taken
                    limit = hostslots.limit_of(claimed.payload)
                    if limit is not None:
                        hostslots.take(
                            conn,
                            host=claimed.host,
                            limit=limit,
                            job_id=job_id,
                            worker=worker,
                            now=now,
                            stale_after=self.lock_stale_after,
                        )
                    # Then its cluster's, in the same transaction: a HostBusy
                    # from either rolls the whole claim back.
                    cluster = hostslots.cluster_of(claimed.payload)
                    if cluster is not None:
                        hostslots.take(
                            conn,
                            host=cluster[0],
                            limit=cluster[1],
                            job_id=job_id,
                            worker=worker,
                            now=now,
                            stale_after=self.lock_stale_after,
                        )
                    # It starts once it holds its lock and slots: taking one a
                    # finishing job frees waits for that job's commit (SQLite's
                    # write lock, PostgreSQL's row lock), so read now, its
                    # `started_at` follows the `finished_at` of the job it
                    # waited for, and the record's spans overlap no more than
                    # the slots allowed. (Read before the wait, it preceded it.)
                    started = self.now()
                    conn.execute(
                        update(_JOB)
                        .where(_JOB.c.id == job_id)
                        .values(started_at=started, heartbeat_at=started)
                    )
        except hostslots.HostBusy:
            return ClaimResult(ClaimOutcome.HOST_BUSY, self.get(job_id))
        job = self.get(job_id)
        if claimed is not None:
            return ClaimResult(ClaimOutcome.WON, job, took_over_from=took_over)
        if job.state == JobState.QUEUED and job.not_before is not None and job.not_before > now:
            return ClaimResult(ClaimOutcome.NOT_DUE, job)
        return ClaimResult(ClaimOutcome.LOST, job)

    # -- while running ----------------------------------------------------

    def heartbeat(self, job_id: int, worker: str) -> bool:
        """Refresh the job and its VM lock; False if `worker` lost either."""
        now = self.now()
        with session_scope(self._engine) as s:
            conn = s.connection()
            row = conn.execute(
                self._owned(update(_JOB), job_id, worker)
                .values(heartbeat_at=now)
                .returning(_JOB.c.vm_id)
            ).first()
            if row is None:
                return False
            hostslots.refresh(conn, job_id=job_id, worker=worker, now=now)
            return vmlock.refresh(conn, vm_id=row.vm_id, job_id=job_id, worker=worker, now=now)

    def mark_sent(self, job_id: int, worker: str) -> bool:
        """Record, right before it is sent, that the job's destructive host
        call goes out; False, with nothing written, when `worker` no longer
        runs the job (a reconciler interrupted it, or took its stale lock):
        then the call must not be sent, so that a reconciler that finds it
        "not_sent" may say nothing was done on the host (HostCall)."""
        with session_scope(self._engine) as s:
            marked = (
                s.connection()
                .execute(
                    self._owned(update(_JOB), job_id, worker).values(host_call=HostCall.SENT.value)
                )
                .rowcount
            )
        return bool(marked)

    def finish(
        self,
        job_id: int,
        worker: str,
        *,
        succeeded: bool,
        result: Mapping[str, Any],
        error: str | None,
    ) -> Job:
        state = JobState.SUCCEEDED if succeeded else JobState.FAILED
        self._end(
            job_id, worker, "finish", state=state.value, result=dict(result), error=_clip(error)
        )
        return self.get(job_id)

    def requeue(
        self,
        job_id: int,
        worker: str,
        *,
        not_before: datetime,
        error: str,
        beyond_attempts: bool = False,
    ) -> Job:
        """Put a failed non-destructive attempt back in the queue.
        `beyond_attempts`: the attempt did nothing (`RetryLater`), so it
        does not count against `max_attempts`; the deadline still bounds it."""
        not_before = _aware(not_before, "not_before")
        conditions: list[ColumnElement[bool]] = [_JOB.c.destructive.is_(False)]
        if not beyond_attempts:
            conditions.append(_JOB.c.attempt < _JOB.c.max_attempts)
        with session_scope(self._engine) as s:
            conn = s.connection()
            row = conn.execute(
                self._owned(update(_JOB), job_id, worker)
                .where(*conditions)
                .values(
                    state=JobState.QUEUED.value,
                    worker=None,
                    not_before=not_before,
                    error=_clip(error),
                )
                .returning(_JOB.c.vm_id)
            ).first()
            if row is None:
                job = s.get(Job, job_id)
                if job is not None and job.state == JobState.RUNNING and job.worker == worker:
                    why = (
                        "destructive jobs are never retried automatically"
                        if job.destructive
                        else f"no attempts left ({job.attempt} of {job.max_attempts})"
                    )
                    raise RetryNotAllowed(f"cannot requeue job {job_id}: {why}", job_id=job_id)
                raise self._not_owned(conn, job_id, worker, "requeue")
            vmlock.release(conn, vm_id=row.vm_id, job_id=job_id)
            hostslots.release(conn, job_id=job_id)
        return self.get(job_id)

    def fail_queued(self, job_id: int, *, error: str) -> bool:
        """Fail a job that never started; False if it is no longer queued."""
        now = self.now()
        with session_scope(self._engine) as s:
            done = (
                s.connection()
                .execute(
                    update(_JOB)
                    .where(_JOB.c.id == job_id, _JOB.c.state == JobState.QUEUED.value)
                    .values(state=JobState.FAILED.value, error=_clip(error), finished_at=now)
                )
                .rowcount
            )
        return bool(done == 1)

    def cancel_queued(self, s: Session, *, change_id: int, kind: str, error: str) -> list[int]:
        """Cancel, in the caller's transaction, the change's jobs of `kind`
        that no worker claimed yet (a scheduled create withdrawn by its
        requester); returns their ids. A job a worker claimed meanwhile is
        left alone: the change's own versioned transition decides which of
        the two wins (bot.service.withdrawal)."""
        rows = (
            s.connection()
            .execute(
                update(_JOB)
                .where(
                    _JOB.c.change_id == change_id,
                    _JOB.c.kind == kind,
                    _JOB.c.state == JobState.QUEUED.value,
                )
                .values(state=JobState.CANCELLED.value, error=_clip(error), finished_at=self.now())
                .returning(_JOB.c.id)
            )
            .all()
        )
        return [int(r[0]) for r in rows]

    def expire_overdue(self) -> list[int]:
        """Fail queued jobs whose deadline passed; returns their ids."""
        now = self.now()
        with session_scope(self._engine) as s:
            rows = (
                s.connection()
                .execute(
                    update(_JOB)
                    .where(
                        _JOB.c.state == JobState.QUEUED.value,
                        _JOB.c.deadline_at.is_not(None),
                        _JOB.c.deadline_at < now,
                    )
                    .values(
                        state=JobState.FAILED.value,
                        error=DEADLINE_BEFORE_START,
                        finished_at=now,
                    )
                    .returning(_JOB.c.id)
                )
                .all()
            )
        return sorted(int(r.id) for r in rows)

    def interrupt(self, job_id: int, worker: str, error: str) -> None:
        """`finish` for an outcome nobody knows (the job's own record could
        not be written, or its host call ended unanswered): `interrupted`,
        the state `interrupt_stale` gives a job whose worker vanished, set
        by the worker itself, conditional on its claim like every write. Its
        host slots are freed; its VM stays held (the host may still be
        running the call that timed out) until the reconciler, asking the
        host what happened, settles its change (bot.jobs.vmlock)."""
        self._end(
            job_id, worker, "interrupt", state=JobState.INTERRUPTED.value, error=error[:_MAX_ERROR]
        )

    def _end(self, job_id: int, worker: str, action: str, **values: Any) -> None:
        """Set the job's final `values`, conditional on this worker's claim,
        and free its host slots and VM lock (kept as a hold when it ends
        `interrupted`): what `finish` and `interrupt` share.
        JobOwnershipLost (or another InvalidJobState) when the claim is not
        this worker's any more."""
        with session_scope(self._engine) as s:
            conn = s.connection()
            now = self.now()
            row = conn.execute(
                self._owned(update(_JOB), job_id, worker)
                .values(**values, finished_at=now, heartbeat_at=now)
                .returning(_JOB.c.vm_id, _JOB.c.change_id)
            ).first()
            if row is None:
                raise self._not_owned(conn, job_id, worker, action)
            if values.get("state") == JobState.INTERRUPTED.value:
                vmlock.hold_or_release(
                    conn, vm_id=row.vm_id, job_id=job_id, change_id=row.change_id
                )
            else:
                vmlock.release(conn, vm_id=row.vm_id, job_id=job_id)
            hostslots.release(conn, job_id=job_id)

    def interrupt_stale(self) -> list[Job]:
        """Mark running jobs whose worker stopped heart-beating `interrupted`;
        returns them. Only after `lock_stale_after` without a beat, the same
        bar a claim uses, never earlier. A heartbeat that lands first wins:
        every condition is re-checked in the UPDATE itself. Their host
        slots are freed; their VMs stay held until their changes are
        settled: a vanished worker's host call goes on on the host (seen: a
        second Checkpoint-VM on a VM whose first was still being taken)."""
        now = self.now()
        cutoff = now - self.lock_stale_after
        stale = or_(_JOB.c.heartbeat_at.is_(None), _JOB.c.heartbeat_at < cutoff)
        interrupted: list[int] = []
        with session_scope(self._engine) as s:
            conn = s.connection()
            candidates = conn.execute(
                select(_JOB.c.id, _JOB.c.vm_id, _JOB.c.worker, _JOB.c.change_id).where(
                    _JOB.c.state == JobState.RUNNING.value, stale
                )
            ).all()
            for row in candidates:
                if vmlock.interrupt_stale_job(
                    conn, job_id=row.id, worker=row.worker, now=now, cutoff=cutoff
                ):
                    vmlock.hold_or_release(
                        conn, vm_id=row.vm_id, job_id=row.id, change_id=row.change_id
                    )
                    hostslots.release(conn, job_id=row.id)
                    interrupted.append(int(row.id))
        return [self.get(job_id) for job_id in interrupted]

    def holds(self) -> list[vmlock.Hold]:
        """The VMs held for interrupted jobs (bot.jobs.vmlock), oldest first."""
        with session_scope(self._engine) as s:
            return vmlock.holds(s.connection())

    def release_hold(self, job_id: int) -> bool:
        """Free the VM interrupted `job_id` holds: its change was settled
        against the host (or by a person). False if it held nothing."""
        with session_scope(self._engine) as s:
            return vmlock.release_hold(s.connection(), job_id=job_id)

    def stranded_queued(self, grace: timedelta) -> list[int]:
        """Queued jobs due for longer than `grace`: their delivery was lost
        (a queue flushed, a process gone between the insert and the
        enqueue). Enqueueing them again is safe; the claim decides. A job
        whose VM is locked is left out: it waits behind the holder, and its
        own delivery keeps retrying (VM busy) until the lock is free. A job
        never handed over at all is the job outbox's (bot.jobs.delivery)."""
        cutoff = self.now() - grace
        locked = select(vmlock.LOCK.c.vm_id)
        with session_scope(self._engine) as s:
            rows = s.exec(
                select_rows(Job.id).where(
                    col(Job.state) == JobState.QUEUED.value,
                    col(Job.delivered_at).is_not(None),
                    col(Job.created_at) < cutoff,
                    or_(col(Job.not_before).is_(None), col(Job.not_before) < cutoff),
                    col(Job.vm_id).not_in(locked),
                )
            ).all()
        return sorted(int(r) for r in rows if r is not None)

    def jobs_of_change(self, change_id: int) -> list[Job]:
        with session_scope(self._engine) as s:
            return list(
                s.exec(
                    select_rows(Job).where(col(Job.change_id) == change_id).order_by(col(Job.id))
                )
            )

    # -- reading ----------------------------------------------------------

    def get(self, job_id: int) -> Job:
        with session_scope(self._engine) as s:
            job = s.get(Job, job_id)
        if job is None:
            raise JobNotFound(f"no job with id {job_id}", job_id=job_id)
        return job

    def get_many(self, job_ids: Iterable[int]) -> dict[int, Job]:
        """The jobs of `job_ids` that exist, by id, in one query: what a
        command waiting for a wave's jobs reads on every poll (one read per
        job made a 45-VM wave 45 queries every 0.2 s)."""
        wanted = sorted(set(job_ids))
        if not wanted:
            return {}
        with session_scope(self._engine) as s:
            rows = s.exec(select_rows(Job).where(col(Job.id).in_(wanted))).all()
        return {job.id: job for job in rows if job.id is not None}

    def find_by_key(self, key: str) -> Job | None:
        with session_scope(self._engine) as s:
            return s.exec(select_rows(Job).where(col(Job.idempotency_key) == key)).first()

    def running_for_vm(self, vm_id: str) -> Job | None:
        with session_scope(self._engine) as s:
            return s.exec(
                select_rows(Job).where(
                    col(Job.vm_id) == vm_id, col(Job.state) == JobState.RUNNING.value
                )
            ).first()

    def leave(self, worker: str, why: str) -> int:
        """Say on each job `worker` still runs that its process `why` (e.g.
        "was reloaded (SIGHUP) after waiting 10 s for it") and leaves it:
        the reconciler that interrupts it once its claim lapses records that
        stop, not a worker that vanished (bot.jobs.vmlock.vanished_reason).
        Nothing else changes: the claim lapses as any other, so the host
        keeps its time to finish. How many jobs it marked."""
        with session_scope(self._engine) as s:
            conn = s.connection()
            marked = conn.execute(
                update(_JOB)
                .where(_JOB.c.worker == worker, _JOB.c.state == JobState.RUNNING.value)
                .values(result={vmlock.LEFT_KEY: why})
            ).rowcount
        return int(marked or 0)

    def running_by(self, worker: str) -> list[Job]:
        """The jobs `worker` holds the claim of now, oldest first."""
        with session_scope(self._engine) as s:
            return list(
                s.exec(
                    select_rows(Job)
                    .where(col(Job.worker) == worker, col(Job.state) == JobState.RUNNING.value)
                    .order_by(col(Job.id))
                )
            )

    def wait(self, job_id: int, timeout: float, poll: float = 0.05) -> Job:
        """Poll until the job is final or `timeout` seconds (real time) pass;
        returns the job as last seen either way."""
        give_up = time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if is_final(job.state) or time.monotonic() >= give_up:
                return job
            time.sleep(min(poll, max(0.0, give_up - time.monotonic())))

    # -- helpers ----------------------------------------------------------

    @staticmethod
    def _owned(stmt: Any, job_id: int, worker: str) -> Any:
        return stmt.where(
            _JOB.c.id == job_id,
            _JOB.c.state == JobState.RUNNING.value,
            _JOB.c.worker == worker,
        )

    @staticmethod
    def _not_owned(conn: Connection, job_id: int, worker: str, action: str) -> JobError:
        row = conn.execute(select(_JOB.c.state, _JOB.c.worker).where(_JOB.c.id == job_id)).first()
        if row is None:
            return JobNotFound(f"cannot {action} job {job_id}: no such job", job_id=job_id)
        expected = f"running by {worker}"
        return JobOwnershipLost(
            f"cannot {action} job {job_id} in state {row.state} (worker {row.worker}), "
            f"expected {expected}",
            job_id=job_id,
            state=row.state,
            expected=expected,
        )


def _clip(error: str | None) -> str | None:
    if error is None:
        return None
    return error if len(error) <= _MAX_ERROR else error[: _MAX_ERROR - 1] + "…"
