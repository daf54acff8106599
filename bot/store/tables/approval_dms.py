"""Where each approval DM was posted, so it can follow its request
(bot.notify.approval_dms)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field

from bot.store.tables.base import Table, utc_field


class ApprovalDM(Table, table=True):
    """A direct message asking one approver to decide an approval request
    (the approvals rule's `dm: true`): where it landed (`channel`, the `D…`
    conversation Slack answered, and `ts`). Once the request is settled
    (approved, rejected, withdrawn, refused, superseded) the message is
    updated in place to say so; `shown` is the request's state the message
    shows now, so each settlement is told once."""

    __tablename__ = "approval_dm"

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="approval_request.id", index=True)
    # The change, so a sync of it finds its DMs without a join.
    change_id: int = Field(foreign_key="change.id", index=True)
    user: str = Field(max_length=32)
    channel: str = Field(max_length=64)
    ts: str = Field(max_length=64)
    posted_at: datetime = utc_field()
    shown: str = Field(max_length=32)
