"""The per-VM lock: one `vm_lock` row per VM with an operation running.

Plain statements on a connection inside the caller's transaction, so the
ledger can move a job and its lock together. Lock order (PostgreSQL
deadlock freedom): callers touch job rows first, their own job before any
other; the `vm_lock` row comes last.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, delete, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Insert

from bot.jobs.states import JobState
from bot.store.tables.jobs import Job, VMLock

JOB: Table = Job.metadata.tables["job"]
LOCK: Table = VMLock.metadata.tables["vm_lock"]

WORKER_VANISHED = (
    "worker {worker} stopped heartbeating; the outcome on the host is unknown "
    "and must be reconciled"
)


class VMBusy(Exception):
    """Raised inside a claim transaction so that it rolls back whole."""

    def __init__(self, holder: int | None) -> None:
        super().__init__(holder)
        self.holder = holder


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

    Returns the id of the job whose stale lock was taken over, if any.
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
            select(LOCK.c.job_id, LOCK.c.worker, LOCK.c.heartbeat_at).where(LOCK.c.vm_id == vm_id)
        ).first()
        if holder is None:
            continue
        if holder.heartbeat_at >= cutoff:
            raise VMBusy(holder.job_id)
        # The holder's worker is presumed dead and its job's outcome is
        # unknown, so that job becomes `interrupted` for reconciliation. The
        # conditions let a heartbeat that lands first win instead; then the
        # lock UPDATE below matches nothing and the whole claim rolls back.
        conn.execute(
            update(JOB)
            .where(
                JOB.c.id == holder.job_id,
                JOB.c.state == JobState.RUNNING.value,
                JOB.c.worker == holder.worker,
                or_(JOB.c.heartbeat_at.is_(None), JOB.c.heartbeat_at < cutoff),
            )
            .values(
                state=JobState.INTERRUPTED.value,
                error=WORKER_VANISHED.format(worker=holder.worker),
                finished_at=now,
            )
        )
        taken = conn.execute(
            update(LOCK)
            .where(
                LOCK.c.vm_id == vm_id,
                LOCK.c.job_id == holder.job_id,
                LOCK.c.worker == holder.worker,
                LOCK.c.heartbeat_at < cutoff,
            )
            .values(job_id=job_id, worker=worker, acquired_at=now, heartbeat_at=now)
        ).rowcount
        if taken == 1:
            return int(holder.job_id)
        # Another claimer took it over first, or the holder came back.
        raise VMBusy(holder.job_id)
    raise VMBusy(None)


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
