"""The per-VM lock: one `vm_lock` row per VM with an operation running,
or whose last operation's outcome on the host is not known yet.

Plain statements on a connection inside the caller's transaction, so the
ledger can move a job and its lock together. Lock order (PostgreSQL
deadlock freedom): callers touch job rows first, their own job before any
other; the `vm_lock` row comes last.

A job that ends `interrupted` (its worker vanished, or its host call ended
with the outcome unknown) keeps its row: a *hold*. Its host call may still
be running on the host (a Hyper-V job goes on after the client that asked
for it is gone), so no other operation may start on the VM until the
change is settled against the host (bot.service.reconcile releases the
hold then). A hold is a lock row whose job is `interrupted`; it is never
refreshed, so it never needs a schema of its own, and a claim never takes
it over, however old it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, delete, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Insert

from bot.jobs.states import JobState
from bot.store.tables.jobs import Job, VMLock

JOB: Table = Job.metadata.tables["job"]
LOCK: Table = VMLock.metadata.tables["vm_lock"]

# How the two reasons below end: what a reader of an interrupted job must
# do (`cause_of` drops it where the record proves the host untouched).
UNKNOWN_OUTCOME = "; the outcome on the host is unknown and must be reconciled"
WORKER_VANISHED = "worker {worker} stopped heartbeating" + UNKNOWN_OUTCOME
# A process that stops (or reloads) with a job still running past its grace
# says so on the job (`JobLedger.leave`) before it goes: the job then reads
# as left by that stop, not as a worker that vanished without a word.
LEFT_AT_STOP = "worker {worker} {why} with this job still running" + UNKNOWN_OUTCOME
# The key of a running job's `result` that holds what its process said as
# it left it (written only while the job runs; a job that ends writes its
# own result over it).
LEFT_KEY = "left"


def vanished_reason(worker: str, result: Mapping[str, Any] | None) -> str:
    """Why a running job of `worker` is interrupted: the stop its process
    recorded as it left the job, else a worker that stopped heart-beating."""
    left = (result or {}).get(LEFT_KEY)
    if isinstance(left, str) and left:
        return LEFT_AT_STOP.format(worker=worker, why=left)
    return WORKER_VANISHED.format(worker=worker)


def cause_of(error: str) -> str:
    """An interrupted job's error without the outcome it leaves unknown:
    what stopped it ("worker W was interrupted (Ctrl-C) with this job
    still running")."""
    return error.removesuffix(UNKNOWN_OUTCOME)


class VMBusy(Exception):
    """Raised inside a claim transaction so that it rolls back whole.
    `stale`: the holder is a running job whose worker stopped heart-beating;
    the claimer interrupts it after the rollback (`interrupt_stale_job`, in
    a transaction of its own: the claim's lock order puts its own job row
    first) and still waits: the holder's host call may go on."""

    def __init__(self, holder: int | None, *, stale: bool = False) -> None:
        super().__init__(holder)
        self.holder = holder
        self.stale = stale


@dataclass(frozen=True)
class Hold:
    """A VM held for an interrupted job until its change is settled."""

    vm_id: str
    job_id: int
    change_id: int | None
    since: datetime


def insert_ignoring(dialect: str, table: Table, values: Mapping[str, Any], key: str) -> Insert:
    """INSERT ... ON CONFLICT (key) DO NOTHING: the unique index arbitrates
    racing inserters; on PostgreSQL a second inserter waits for the first
    to commit or roll back instead of failing."""
    if dialect == "postgresql":
        # Imported here: a dialect's module loads only when the engine speaks it
        # (the PostgreSQL one costs a SQLite CLI command ~20 ms, bench/cli_start.py).
        from sqlalchemy.dialects import postgresql

        return (
            postgresql.insert(table).values(**values).on_conflict_do_nothing(index_elements=[key])
        )
    if dialect == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table).values(**values).on_conflict_do_nothing(index_elements=[key])
    raise NotImplementedError(f"the job ledger does not support the {dialect} dialect")


def take(
    conn: Connection,
    *,
    vm_id: str,
    job_id: int,
    worker: str,
    now: datetime,
    stale_after: timedelta,
) -> int | None:
    """Take the VM lock for `job_id` or raise `VMBusy`.

    Never taken from a job whose outcome on the host is unknown: a running
    job, even one whose worker stopped heart-beating (`VMBusy(stale=True)`:
    its host call may still run, seen: a second Checkpoint-VM sent 33 s
    after a worker was cut off from the database while the first one was
    still being taken), nor an interrupted one (a hold). Returns the id of
    the job whose row was taken over, which only happens to a row left by a
    job that ended otherwise (nothing of it can still run).
    """
    values = {
        "vm_id": vm_id,
        "job_id": job_id,
        "worker": worker,
        "acquired_at": now,
        "heartbeat_at": now,
    }
    cutoff = now - stale_after
    # Under READ COMMITTED the holder can release between our INSERT and
    # our SELECT; then simply try the INSERT again.
    for _ in range(3):
        inserted = conn.execute(
            insert_ignoring(conn.dialect.name, LOCK, values, "vm_id").returning(LOCK.c.vm_id)
        ).first()
        if inserted is not None:
            return None
        holder = conn.execute(
            select(LOCK.c.job_id, LOCK.c.worker, LOCK.c.heartbeat_at, JOB.c.state)
            .select_from(LOCK.outerjoin(JOB, JOB.c.id == LOCK.c.job_id))
            .where(LOCK.c.vm_id == vm_id)
        ).first()
        if holder is None:
            continue
        if holder.state == JobState.INTERRUPTED.value:
            raise VMBusy(holder.job_id)
        if holder.state == JobState.RUNNING.value:
            raise VMBusy(holder.job_id, stale=holder.heartbeat_at < cutoff)
        # The row of a job that succeeded, failed or never ran: nothing of
        # it is on the host any more. The conditions let a racing claimer
        # that took it first win instead.
        taken = conn.execute(
            update(LOCK)
            .where(
                LOCK.c.vm_id == vm_id,
                LOCK.c.job_id == holder.job_id,
                LOCK.c.worker == holder.worker,
            )
            .values(job_id=job_id, worker=worker, acquired_at=now, heartbeat_at=now)
        ).rowcount
        if taken == 1:
            return int(holder.job_id)
        raise VMBusy(holder.job_id)
    raise VMBusy(None)


def interrupt_stale_job(
    conn: Connection, *, job_id: int, worker: str, now: datetime, cutoff: datetime
) -> bool:
    """Mark a running job whose worker stopped heart-beating before `cutoff`
    `interrupted` (its outcome on the host is unknown and must be
    reconciled); False when a heartbeat landed first or it moved on. Every
    condition is re-checked in the UPDATE itself."""
    result = conn.execute(select(JOB.c.result).where(JOB.c.id == job_id)).scalar()
    done = conn.execute(
        update(JOB)
        .where(
            JOB.c.id == job_id,
            JOB.c.state == JobState.RUNNING.value,
            JOB.c.worker == worker,
            or_(JOB.c.heartbeat_at.is_(None), JOB.c.heartbeat_at < cutoff),
        )
        .values(
            state=JobState.INTERRUPTED.value,
            error=vanished_reason(worker, result),
            finished_at=now,
        )
    ).rowcount
    return bool(done == 1)


def hold_or_release(conn: Connection, *, vm_id: str, job_id: int, change_id: int | None) -> bool:
    """After `job_id` became `interrupted`: its row stays as the VM's hold
    (True) until its change is settled. A job with no change has nothing
    that would ever settle it, so its lock is freed as before (False);
    every job the bot submits for a change has one (bot.context)."""
    if change_id is not None:
        return True
    release(conn, vm_id=vm_id, job_id=job_id)
    return False


def holds(conn: Connection) -> list[Hold]:
    """Every VM held for an interrupted job, oldest first."""
    rows = conn.execute(
        select(LOCK.c.vm_id, LOCK.c.job_id, JOB.c.change_id, LOCK.c.acquired_at)
        .select_from(LOCK.join(JOB, JOB.c.id == LOCK.c.job_id))
        .where(JOB.c.state == JobState.INTERRUPTED.value)
        .order_by(LOCK.c.acquired_at, LOCK.c.job_id)
    ).all()
    return [Hold(r.vm_id, int(r.job_id), r.change_id, r.acquired_at) for r in rows]


def release_hold(conn: Connection, *, job_id: int) -> bool:
    """End the hold of interrupted `job_id`; False when it holds nothing
    (released already, or the job is not interrupted: a running job's lock
    is its own to free)."""
    interrupted = select(JOB.c.id).where(
        JOB.c.id == job_id, JOB.c.state == JobState.INTERRUPTED.value
    )
    done = conn.execute(
        delete(LOCK).where(LOCK.c.job_id == job_id, LOCK.c.job_id.in_(interrupted))
    ).rowcount
    return bool(done)


def refresh(conn: Connection, *, vm_id: str, job_id: int, worker: str, now: datetime) -> bool:
    refreshed = conn.execute(
        update(LOCK)
        .where(LOCK.c.vm_id == vm_id, LOCK.c.job_id == job_id, LOCK.c.worker == worker)
        .values(heartbeat_at=now)
    ).rowcount
    return bool(refreshed == 1)


def release(conn: Connection, *, vm_id: str, job_id: int) -> None:
    # Only our own row: after a takeover it belongs to another job.
    conn.execute(delete(LOCK).where(LOCK.c.vm_id == vm_id, LOCK.c.job_id == job_id))
