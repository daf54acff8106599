"""Patch waves: a batch and its append-only events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import UniqueConstraint
from sqlmodel import Field

from bot.store.tables.base import Table, json_field, utc_field


class Batch(Table, table=True):
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
    selection: dict[str, Any] = json_field()
    source: str = Field(default="cli", max_length=32)
    channel: str | None = Field(default=None, max_length=64)
    thread_ts: str | None = Field(default=None, max_length=64)
    created_at: datetime = utc_field()
    # The preview's token (a Slack "Take N checkpoints" button carries it):
    # a second click on the same preview finds this batch instead of
    # making another. None when asked for without a preview token (the CLI).
    token: str | None = Field(default=None, unique=True, max_length=64)
    # When the wave was asked to run (`--at`); None: at once.
    run_at: datetime | None = utc_field(nullable=True)


class BatchEvent(Table, table=True):
    """A batch's own history (created, rollback or merge of all asked):
    append-only, like `change_event`; the members keep their own events."""

    __tablename__ = "batch_event"
    __table_args__ = (UniqueConstraint("batch_id", "seq", name="uq_batch_event_seq"),)

    id: int | None = Field(default=None, primary_key=True)
    batch_id: int = Field(foreign_key="batch.id", index=True)
    seq: int
    at: datetime = utc_field()
    actor: str = Field(max_length=255)
    actor_team: str | None = Field(default=None, max_length=32)
    kind: str = Field(max_length=32)
    message: str = Field(default="", max_length=4000)
    details: dict[str, Any] = json_field()
    # The reply a milestone got in the wave's thread (bot.notify.thread),
    # claimed before it is posted; None: not posted (yet), or not a milestone.
    slack_ts: str | None = Field(default=None, max_length=64)
