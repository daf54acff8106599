"""App Homes behind their change, left for a serving process (bot.notify.homes)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field

from bot.store.tables.base import Table, utc_field


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
