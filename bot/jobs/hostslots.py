"""Bounded concurrency per host and per cluster: `host_slot` rows, one per
running job that carries a host limit (the members of a batch,
docs/batches.md), and one more for a job that also carries a cluster limit
(a member on a failover cluster's node: the cluster's slots are rows whose
`host` is `cluster:NAME`, so one table and one release serve both).

A job with `payload["host_limit"] = n` runs only while it holds one of the
host's slots 0..n-1, so at most n such jobs touch one host at once and a
wave never saturates its storage. Plain statements on the claim's
connection, like the VM lock (bot.jobs.vmlock), and taken after it: lock
order job rows → vm_lock → host_slot, so PostgreSQL stays deadlock-free.
A slot whose holder stopped heart-beating for `stale_after` is taken over,
the same bar the VM lock uses; the holder's job is the VM lock's and
reconciliation's to settle, a slot only counts work in progress.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, delete, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Insert

from bot.store.tables.jobs import HostSlot

SLOT: Table = HostSlot.metadata.tables["host_slot"]
LIMIT_KEY = "host_limit"
CLUSTER_KEY, CLUSTER_LIMIT_KEY = "cluster", "cluster_limit"


class HostBusy(Exception):
    """Raised inside a claim transaction so that it rolls back whole
    (the job stays queued, its VM lock is not kept)."""

    def __init__(self, host: str, limit: int) -> None:
        super().__init__(f"{host} already runs {limit} batch jobs")
        self.host = host
        self.limit = limit


def _insert_ignoring(dialect: str, values: Mapping[str, Any]) -> Insert:
    """INSERT ... ON CONFLICT (host, slot) DO NOTHING: the primary key
    arbitrates racing claimers (see bot.jobs.vmlock.insert_ignoring)."""
    keys = ["host", "slot"]
    if dialect == "postgresql":
        # Imported here: a dialect's module loads only when the engine speaks it
        # (the PostgreSQL one costs a SQLite CLI command ~20 ms, bench/cli_start.py).
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(SLOT).values(**values).on_conflict_do_nothing(index_elements=keys)
    if dialect == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(SLOT).values(**values).on_conflict_do_nothing(index_elements=keys)
    raise NotImplementedError(f"the job ledger does not support the {dialect} dialect")


def limit_of(payload: Mapping[str, Any] | None) -> int | None:
    """The job's host limit, or None for a job that is not bounded."""
    value = (payload or {}).get(LIMIT_KEY)
    return int(value) if isinstance(value, int) and value >= 1 else None


def cluster_of(payload: Mapping[str, Any] | None) -> tuple[str, int] | None:
    """(the slot key of the job's cluster, its limit), or None when the job
    is not bounded per cluster. Host names never contain ":", so the key
    cannot be mistaken for a host's."""
    data = payload or {}
    name, limit = data.get(CLUSTER_KEY), data.get(CLUSTER_LIMIT_KEY)
    if isinstance(name, str) and name and isinstance(limit, int) and limit >= 1:
        return f"cluster:{name}", limit
    return None


def take(
    conn: Connection,
    *,
    host: str,
    limit: int,
    job_id: int,
    worker: str,
    now: datetime,
    stale_after: timedelta,
) -> int:
    """Take a free slot of `host` for `job_id` (returns its number) or raise `HostBusy`."""
    cutoff = now - stale_after
    for slot in range(limit):
        values = {
            "host": host,
            "slot": slot,
            "job_id": job_id,
            "worker": worker,
            "acquired_at": now,
            "heartbeat_at": now,
        }
        stmt = _insert_ignoring(conn.dialect.name, values).returning(SLOT.c.slot)
        if conn.execute(stmt).first() is not None:
            return slot
        # Held: take it over only if its holder stopped heart-beating; the
        # UPDATE re-checks that, so a beat that lands first wins.
        taken = conn.execute(
            update(SLOT)
            .where(SLOT.c.host == host, SLOT.c.slot == slot, SLOT.c.heartbeat_at < cutoff)
            .values(job_id=job_id, worker=worker, acquired_at=now, heartbeat_at=now)
        ).rowcount
        if taken == 1:
            return slot
    raise HostBusy(host, limit)


def refresh(conn: Connection, *, job_id: int, worker: str, now: datetime) -> None:
    conn.execute(
        update(SLOT)
        .where(SLOT.c.job_id == job_id, SLOT.c.worker == worker)
        .values(heartbeat_at=now)
    )


def release(conn: Connection, *, job_id: int) -> None:
    # Only our own row: after a takeover the slot belongs to another job.
    conn.execute(delete(SLOT).where(SLOT.c.job_id == job_id))
