"""The change record: a change and its append-only events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field

from bot.store.tables.base import Table, json_field, utc_field


class Change(Table, table=True):
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
    decision: dict[str, Any] = json_field()
    ttl_seconds: int
    created_at: datetime = utc_field()
    updated_at: datetime = utc_field()
    expires_at: datetime | None = utc_field(nullable=True)
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
    run_at: datetime | None = utc_field(nullable=True)


class ChangeEvent(Table, table=True):
    """Append-only: rows are inserted, never updated or deleted."""

    __tablename__ = "change_event"
    __table_args__ = (UniqueConstraint("change_id", "seq", name="uq_change_event_seq"),)

    id: int | None = Field(default=None, primary_key=True)
    change_id: int = Field(foreign_key="change.id", index=True)
    seq: int
    at: datetime = utc_field()
    actor: str = Field(max_length=255)
    # The actor's Slack workspace (team id); None for the bot, the policy and `cli:NAME`.
    actor_team: str | None = Field(default=None, max_length=32)
    kind: str = Field(max_length=32)
    from_state: str | None = Field(default=None, max_length=32)
    to_state: str | None = Field(default=None, max_length=32)
    message: str = Field(default="", max_length=4000)
    details: dict[str, Any] = json_field()
    slack_ts: str | None = Field(default=None, max_length=64)
