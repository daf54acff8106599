"""The job ledger: jobs, the VM locks and host slots they hold, and periodic
work claimed by slot."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field

from bot.store.tables.base import Table, json_field, utc_field


class Job(Table, table=True):
    """The execution ledger. A worker runs a job only after winning the
    conditional claim `UPDATE job SET state='running' WHERE state='queued'`."""

    __tablename__ = "job"
    __table_args__ = (Index("ix_job_state_kind", "state", "kind"),)

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(unique=True, max_length=255)
    kind: str = Field(max_length=32)
    change_id: int | None = Field(default=None, foreign_key="change.id", index=True)
    vm_id: str = Field(index=True, max_length=64)
    host: str = Field(max_length=255)
    state: str = Field(max_length=32)
    destructive: bool = False
    attempt: int = 0
    max_attempts: int = 1
    payload: dict[str, Any] = json_field()
    result: dict[str, Any] = json_field()
    error: str | None = Field(default=None, max_length=4000)
    worker: str | None = Field(default=None, max_length=255)
    created_at: datetime = utc_field()
    not_before: datetime | None = utc_field(nullable=True)
    started_at: datetime | None = utc_field(nullable=True)
    heartbeat_at: datetime | None = utc_field(nullable=True)
    finished_at: datetime | None = utc_field(nullable=True)
    deadline_at: datetime | None = utc_field(nullable=True)
    # When the job id was handed to the queue; NULL: not yet (the queue was
    # down, or the process died between the commit and the enqueue). The
    # job outbox (bot.jobs.delivery) hands such jobs over on every tick.
    delivered_at: datetime | None = utc_field(nullable=True)
    # Whether a destructive job (a rollback, a merge) sent its host call
    # (bot.jobs.states.HostCall): "not_sent" from its claim, "sent" once the
    # job wrote it, right before the call, in an UPDATE that needs the job
    # still running and its own. NULL: not a destructive job, or claimed by
    # a release before migration 0020, which never said.
    host_call: str | None = Field(default=None, max_length=16)


class VMLock(Table, table=True):
    """One operation per VM across every process: a row per locked VM."""

    __tablename__ = "vm_lock"

    vm_id: str = Field(primary_key=True, max_length=64)
    job_id: int = Field(foreign_key="job.id")
    worker: str = Field(max_length=255)
    acquired_at: datetime = utc_field()
    heartbeat_at: datetime = utc_field()


class HostSlot(Table, table=True):
    """Bounded concurrency per host: a job that carries a host limit (the
    members of a batch) runs only while it holds one of the host's first
    `limit` slots, so a wave does not saturate one host's storage
    (docs/batches.md). Taken, refreshed and released with the VM lock."""

    __tablename__ = "host_slot"

    host: str = Field(primary_key=True, max_length=255)
    slot: int = Field(primary_key=True)
    job_id: int = Field(foreign_key="job.id", index=True)
    worker: str = Field(max_length=255)
    acquired_at: datetime = utc_field()
    heartbeat_at: datetime = utc_field()


class Tick(Table, table=True):
    """Periodic work (a window notice, a TTL reminder, a sweep) claimed by
    `(kind, slot)`: any number of replicas may tick, one row wins per slot,
    so each notice goes out once."""

    __tablename__ = "tick"
    __table_args__ = (UniqueConstraint("kind", "slot", name="uq_tick_kind_slot"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=64)
    slot: str = Field(max_length=255)
    worker: str = Field(max_length=255)
    claimed_at: datetime = utc_field()
