"""The Slack outbox: changes whose thread is behind their record."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field

from bot.store.tables.base import Table, utc_field


class SlackOutbox(Table, table=True):
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
    created_at: datetime = utc_field()
    # The process draining it, and until when its claim holds.
    claimed_by: str | None = Field(default=None, max_length=255)
    lease_until: datetime | None = utc_field(nullable=True)
    attempts: int = 0
    # When this entry was tried last without success (for a backoff).
    not_before: datetime | None = utc_field(nullable=True)
    error: str | None = Field(default=None, max_length=500)
    done_at: datetime | None = utc_field(nullable=True)
