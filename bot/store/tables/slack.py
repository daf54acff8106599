"""What Slack is owed and has sent: deliveries already taken, the outbox of
threads behind their record, App Homes behind their change."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field

from bot.store.tables.base import Table, utc_field


class SlackDelivery(Table, table=True):
    """A Slack request already taken, by its delivery key (the Events API's
    event_id, else a digest of the signed body): a replay or retry of it,
    on any replica, is dropped. Kept a little longer than the five minutes
    in which a signature is accepted, then pruned."""

    __tablename__ = "slack_delivery"
    __table_args__ = (Index("ix_slack_delivery_seen_at", "seen_at"),)

    key: str = Field(primary_key=True, max_length=80)
    seen_at: datetime = utc_field()


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


class StaleHome(Table, table=True):
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
    created_at: datetime = utc_field()
    # The serving process publishing it, and until when its claim holds.
    claimed_by: str | None = Field(default=None, max_length=255)
    lease_until: datetime | None = utc_field(nullable=True)
