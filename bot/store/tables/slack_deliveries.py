"""Slack requests already taken, by delivery key (bot.store.deliveries)."""

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
