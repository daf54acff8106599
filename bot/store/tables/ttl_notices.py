"""Where each TTL notice was posted, so it can follow what it is about
(bot.notify.ttl_notices)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Field

from bot.store.tables.base import Table, json_field, utc_field


class TTLNotice(Table, table=True):
    """A TTL reminder DM or expiry notice the bot posted, with buttons that
    decide a checkpoint (or a wave's): where it landed (`channel`, a `D…`
    conversation for a DM, and `ts`, as Slack answered the post) and what
    it showed. Once a change it is about is decided or extended, the
    message is updated in place to say what happened, without buttons;
    `shown` says what the message shows now, so each move is told once."""

    __tablename__ = "ttl_notice"

    id: int | None = Field(default=None, primary_key=True)
    # A lone change's notice names the change; a wave's names its batch
    # (and `about` its members).
    change_id: int | None = Field(default=None, foreign_key="change.id", index=True)
    batch_id: int | None = Field(default=None, foreign_key="batch.id", index=True)
    # "reminder" (the requester's DM) or "expired" (the channel's notice).
    phase: str = Field(max_length=16)
    channel: str = Field(max_length=64)
    ts: str = Field(max_length=64)
    posted_at: datetime = utc_field()
    # Each change the buttons were for, as the notice showed it:
    # {"<change id>": {"state": …, "expires_at": ISO-8601}}.
    about: dict[str, Any] = json_field()
    # A digest of what the message shows now (its changes' states and
    # expiries): set with a conditional update before each chat.update.
    shown: str = Field(max_length=64)
