"""The tables: the change record, its append-only events, the job ledger.

Ids are integers; people see changes as `CHG-0042` (see `change_ref`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from bot.domain import ApprovalState, BatchRef, ref_text
from bot.store.columns import UTCDateTime


class _Table(SQLModel):
    """A table's pydantic schema is built when first used, not at import:
    rows are made by the ORM and by constructors, which SQLModel does not
    validate, so most commands never need it
    (https://docs.pydantic.dev/latest/api/config/#pydantic.config.ConfigDict.defer_build)."""

    model_config = {"defer_build": True}


def _utc(nullable: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable))


def _json() -> Any:
    return Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Change(_Table, table=True):
    __tablename__ = "change"

    id: int | None = Field(default=None, primary_key=True)
    action: str = Field(default="checkpoint", max_length=32)
    vm_id: str = Field(index=True, max_length=64)
    vm_name: str = Field(max_length=255)
    host: str = Field(max_length=255)
    # What was asked for (production | production-only | standard), as the
    # policy adjusted it. What the host really took is `taken_type`.
    checkpoint_type: str = Field(max_length=32)
    reason: str = Field(max_length=2000)
    requester: str = Field(max_length=255)
    # The Slack workspace (team id) of a Slack requester: a user id alone
    # names a person only within its workspace. None for `cli:NAME` (and
    # for rows recorded before 0007).
    requester_team: str | None = Field(default=None, max_length=32)
    # The Slack user groups the requester was in when they asked (for the
    # record; every later check resolves them again). None before 0010.
    requester_groups: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    source: str = Field(default="cli", max_length=32)
    channel: str | None = Field(default=None, max_length=64)
    thread_ts: str | None = Field(default=None, max_length=64)
    state: str = Field(index=True, max_length=32)
    decision: dict[str, Any] = _json()
    ttl_seconds: int
    created_at: datetime = _utc()
    updated_at: datetime = _utc()
    expires_at: datetime | None = _utc(nullable=True)
    checkpoint_id: str | None = Field(default=None, index=True, max_length=64)
    checkpoint_name: str | None = Field(default=None, max_length=255)
    # What the host took (production | standard | unknown) and why the bot
    # believes it (bot.hyperv.evidence); set when the checkpoint exists.
    taken_type: str | None = Field(default=None, max_length=32)
    taken_evidence: str | None = Field(default=None, max_length=500)
    # Whether the checkpoint holds the VM's memory (a restore brings the
    # running state back) or not (the VM comes back Off); None: unknown.
    holds_memory: bool | None = Field(default=None)
    # The VM's power state after the last rollback (Off, Saved, Running):
    # a VM left off is said, with a Start button.
    vm_state_after: str | None = Field(default=None, max_length=32)
    # Optimistic locking: every update is `WHERE version = :seen`.
    version: int = Field(default=1)
    # The batch (patch wave) this change is a member of; None for a change
    # asked for on its own. A member is an ordinary change in every other way.
    batch_id: int | None = Field(default=None, foreign_key="batch.id", index=True)
    # The instant its requester asked for (`--at`, docs/batches.md "At a
    # time"); None: now, or when the policy's change window opens.
    run_at: datetime | None = _utc(nullable=True)


class Batch(_Table, table=True):
    """A patch wave: one request over several VMs, the parent of ordinary
    changes (`change.batch_id`). Its state is never stored: it is derived
    from its members' states (bot.changes.batch_state)."""

    __tablename__ = "batch"

    id: int | None = Field(default=None, primary_key=True)
    requester: str = Field(max_length=255)
    requester_team: str | None = Field(default=None, max_length=32)
    reason: str = Field(max_length=2000)
    # What was asked for; each member records what the policy made of it.
    checkpoint_type: str = Field(max_length=32)
    # The lifetime the members inherit (the policy may still shorten one).
    ttl_seconds: int
    # The selection as typed (names, tags, groups, hosts), for the record.
    selection: dict[str, Any] = _json()
    source: str = Field(default="cli", max_length=32)
    channel: str | None = Field(default=None, max_length=64)
    thread_ts: str | None = Field(default=None, max_length=64)
    created_at: datetime = _utc()
    # The preview's token (a Slack "Take N checkpoints" button carries it):
    # a second click on the same preview finds this batch instead of
    # making another. None when asked for without a preview token (the CLI).
    token: str | None = Field(default=None, unique=True, max_length=64)
    # When the wave was asked to run (`--at`); None: at once.
    run_at: datetime | None = _utc(nullable=True)


class BatchEvent(_Table, table=True):
    """A batch's own history (created, rollback or merge of all asked):
    append-only, like `change_event`; the members keep their own events."""

    __tablename__ = "batch_event"
    __table_args__ = (UniqueConstraint("batch_id", "seq", name="uq_batch_event_seq"),)

    id: int | None = Field(default=None, primary_key=True)
    batch_id: int = Field(foreign_key="batch.id", index=True)
    seq: int
    at: datetime = _utc()
    actor: str = Field(max_length=255)
    actor_team: str | None = Field(default=None, max_length=32)
    kind: str = Field(max_length=32)
    message: str = Field(default="", max_length=4000)
    details: dict[str, Any] = _json()
    # The reply a milestone got in the wave's thread (bot.notify.thread),
    # claimed before it is posted; None: not posted (yet), or not a milestone.
    slack_ts: str | None = Field(default=None, max_length=64)


class ChangeEvent(_Table, table=True):
    """Append-only: rows are inserted, never updated or deleted."""

    __tablename__ = "change_event"
    __table_args__ = (UniqueConstraint("change_id", "seq", name="uq_change_event_seq"),)

    id: int | None = Field(default=None, primary_key=True)
    change_id: int = Field(foreign_key="change.id", index=True)
    seq: int
    at: datetime = _utc()
    actor: str = Field(max_length=255)
    # The actor's Slack workspace (team id); None for the bot, the policy and `cli:NAME`.
    actor_team: str | None = Field(default=None, max_length=32)
    kind: str = Field(max_length=32)
    from_state: str | None = Field(default=None, max_length=32)
    to_state: str | None = Field(default=None, max_length=32)
    message: str = Field(default="", max_length=4000)
    details: dict[str, Any] = _json()
    slack_ts: str | None = Field(default=None, max_length=64)


class Job(_Table, table=True):
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
    payload: dict[str, Any] = _json()
    result: dict[str, Any] = _json()
    error: str | None = Field(default=None, max_length=4000)
    worker: str | None = Field(default=None, max_length=255)
    created_at: datetime = _utc()
    not_before: datetime | None = _utc(nullable=True)
    started_at: datetime | None = _utc(nullable=True)
    heartbeat_at: datetime | None = _utc(nullable=True)
    finished_at: datetime | None = _utc(nullable=True)
    deadline_at: datetime | None = _utc(nullable=True)
    # When the job id was handed to the queue; NULL: not yet (the queue was
    # down, or the process died between the commit and the enqueue). The
    # job outbox (bot.jobs.delivery) hands such jobs over on every tick.
    delivered_at: datetime | None = _utc(nullable=True)


class VMLock(_Table, table=True):
    """One operation per VM across every process: a row per locked VM."""

    __tablename__ = "vm_lock"

    vm_id: str = Field(primary_key=True, max_length=64)
    job_id: int = Field(foreign_key="job.id")
    worker: str = Field(max_length=255)
    acquired_at: datetime = _utc()
    heartbeat_at: datetime = _utc()


class HostSlot(_Table, table=True):
    """Bounded concurrency per host: a job that carries a host limit (the
    members of a batch) runs only while it holds one of the host's first
    `limit` slots, so a wave does not saturate one host's storage
    (docs/batches.md). Taken, refreshed and released with the VM lock."""

    __tablename__ = "host_slot"

    host: str = Field(primary_key=True, max_length=255)
    slot: int = Field(primary_key=True)
    job_id: int = Field(foreign_key="job.id", index=True)
    worker: str = Field(max_length=255)
    acquired_at: datetime = _utc()
    heartbeat_at: datetime = _utc()


class ApprovalRequest(_Table, table=True):
    """An action on a change that waits for approvers: the create itself, a
    rollback or an extension. Approvals are appended to `approvals`; the
    change's own version serializes every write to it."""

    __tablename__ = "approval_request"

    id: int | None = Field(default=None, primary_key=True)
    change_id: int = Field(foreign_key="change.id", index=True)
    action: str = Field(max_length=32)
    state: str = Field(default=ApprovalState.PENDING, index=True, max_length=32)
    requested_by: str = Field(max_length=255)
    requested_by_team: str | None = Field(default=None, max_length=32)
    # Where the requester asked from and the Slack user groups they were in
    # then: the principal the re-check on approval resolves again. None before 0010.
    requested_in: str | None = Field(default=None, max_length=64)
    requested_by_groups: list[str] | None = Field(
        default=None, sa_column=Column(JSON, nullable=True)
    )
    requested_at: datetime = _utc()
    required: int = 1
    # The policy's requirement: who may approve (users, groups).
    requirement: dict[str, Any] = _json()
    # [{"by": "U123", "team": "T123", "at": "...iso..."}] ("team" is None for cli:NAME)
    approvals: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    params: dict[str, Any] = _json()
    resolved_at: datetime | None = _utc(nullable=True)
    # Who settled it (a person, or why it no longer applies) and their workspace.
    resolved_by: str | None = Field(default=None, max_length=255)
    resolved_by_team: str | None = Field(default=None, max_length=32)


class VMSettingChange(_Table, table=True):
    """An admin's change to a VM's checkpoint settings (Set-VM): part of the
    record like every change, though it has no lifecycle of its own."""

    __tablename__ = "vm_setting_change"

    id: int | None = Field(default=None, primary_key=True)
    vm_id: str = Field(index=True, max_length=64)
    vm_name: str = Field(max_length=255)
    host: str = Field(max_length=255)
    actor: str = Field(max_length=255)
    actor_team: str | None = Field(default=None, max_length=32)
    at: datetime = _utc()
    before: dict[str, Any] = _json()
    after: dict[str, Any] = _json()
    reason: str = Field(default="", max_length=2000)


class Tick(_Table, table=True):
    """Periodic work (a window notice, a TTL reminder, a sweep) claimed by
    `(kind, slot)`: any number of replicas may tick, one row wins per slot,
    so each notice goes out once."""

    __tablename__ = "tick"
    __table_args__ = (UniqueConstraint("kind", "slot", name="uq_tick_kind_slot"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=64)
    slot: str = Field(max_length=255)
    worker: str = Field(max_length=255)
    claimed_at: datetime = _utc()


class VMSighting(_Table, table=True):
    """Where a VM (by VMId) was last seen, and since when: a clustered VM
    moves between nodes, so the node the inventory names is only where the
    bot looks first (bot.service.locate, docs/clusters.md). One row per VM,
    overwritten by each sighting; the move it last saw is kept beside it."""

    __tablename__ = "vm_sighting"

    vm_id: str = Field(primary_key=True, max_length=64)
    host: str = Field(max_length=255)
    # Seen on `host` at `seen_at`; first seen there at `since`.
    seen_at: datetime = _utc()
    since: datetime = _utc()
    # The node it was seen on before, and when it was last seen there: the
    # move happened between `previous_seen_at` and `since`.
    previous_host: str | None = Field(default=None, max_length=255)
    previous_seen_at: datetime | None = _utc(nullable=True)


def change_ref(change_id: int) -> str:
    return ref_text(change_id)


def batch_ref(batch_id: int) -> str:
    return str(BatchRef(batch_id))


class CheckpointSize(_Table, table=True):
    """One sample of a checkpoint's size, taken by the sweep: the history
    that shows how fast a forgotten checkpoint grows. Append-only; old
    samples are pruned after `sweep.keep_sizes`."""

    __tablename__ = "checkpoint_size"
    __table_args__ = (Index("ix_checkpoint_size_checkpoint_at", "checkpoint_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    host: str = Field(max_length=255)
    vm_id: str = Field(max_length=64)
    checkpoint_id: str = Field(max_length=64)
    at: datetime = _utc()
    # BIGINT: an .avhdx grows past 2 GiB in a day on a busy VM.
    size_bytes: int = Field(sa_column=Column(BigInteger(), nullable=False))


class CheckpointAdoption(_Table, table=True):
    """A human adopted an orphan: the checkpoint's Id is the primary key, so
    two clicks (on any replica) cannot both create a change that owns it."""

    __tablename__ = "checkpoint_adoption"

    checkpoint_id: str = Field(primary_key=True, max_length=64)
    change_id: int = Field(foreign_key="change.id", index=True)
    host: str = Field(max_length=255)
    vm_id: str = Field(max_length=64)
    adopted_by: str = Field(max_length=255)
    at: datetime = _utc()


class SlackDelivery(_Table, table=True):
    """A Slack request already taken, by its delivery key (the Events API's
    event_id, else a digest of the signed body): a replay or retry of it,
    on any replica, is dropped. Kept a little longer than the five minutes
    in which a signature is accepted, then pruned."""

    __tablename__ = "slack_delivery"
    __table_args__ = (Index("ix_slack_delivery_seen_at", "seen_at"),)

    key: str = Field(primary_key=True, max_length=80)
    seen_at: datetime = _utc()


class SlackOutbox(_Table, table=True):
    """A change whose Slack views (thread root, replies, cards) are behind
    its record: written in the same transaction as the change, so a crash
    after the commit loses no post. A drainer on every process claims the
    rows of one change with a lease, brings its thread up to date (every
    post itself claimed by `slack_ts`, so posted once), and marks them done.
    Rows are kept a while after `done_at` for the record, then pruned."""

    __tablename__ = "slack_outbox"
    __table_args__ = (Index("ix_slack_outbox_pending", "done_at", "change_id"),)

    id: int | None = Field(default=None, primary_key=True)
    change_id: int = Field(foreign_key="change.id", index=True)
    created_at: datetime = _utc()
    # The process draining it, and until when its claim holds.
    claimed_by: str | None = Field(default=None, max_length=255)
    lease_until: datetime | None = _utc(nullable=True)
    attempts: int = 0
    # When this entry was tried last without success (for a backoff).
    not_before: datetime | None = _utc(nullable=True)
    error: str | None = Field(default=None, max_length=500)
    done_at: datetime | None = _utc(nullable=True)


class StaleHome(_Table, table=True):
    """A change whose App Homes are behind it, left by a process that has
    no Slack app to publish them (a `checkpoint-bot worker`, a CLI command)
    for one that has (`serve`): each serving process claims rows with a
    lease on its tick, publishes the Home of everyone the change concerns
    (who that is, it reads from the change when it publishes), and deletes
    them. Written after the change's thread was synced (docs/operations.md,
    "App Homes across processes")."""

    __tablename__ = "stale_home"

    id: int | None = Field(default=None, primary_key=True)
    change_id: int = Field(foreign_key="change.id", index=True)
    created_at: datetime = _utc()
    # The serving process publishing it, and until when its claim holds.
    claimed_by: str | None = Field(default=None, max_length=255)
    lease_until: datetime | None = _utc(nullable=True)
