"""Approval requests: who must approve what on a change, and who did."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field

from bot.domain import ApprovalState
from bot.store.tables.base import Table, json_field, utc_field


class ApprovalRequest(Table, table=True):
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
    requested_at: datetime = utc_field()
    required: int = 1
    # The policy's requirement: who may approve (users, groups).
    requirement: dict[str, Any] = json_field()
    # [{"by": "U123", "team": "T123", "at": "...iso..."}] ("team" is None for cli:NAME)
    approvals: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    params: dict[str, Any] = json_field()
    resolved_at: datetime | None = utc_field(nullable=True)
    # Who settled it (a person, or why it no longer applies) and their workspace.
    resolved_by: str | None = Field(default=None, max_length=255)
    resolved_by_team: str | None = Field(default=None, max_length=32)
