"""What else the record holds about VMs: an admin's change to a VM's
checkpoint settings, and an orphan checkpoint a person adopted."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Field

from bot.store.tables.base import Table, json_field, utc_field


class VMSettingChange(Table, table=True):
    """An admin's change to a VM's checkpoint settings (Set-VM): part of the
    record like every change, though it has no lifecycle of its own."""

    __tablename__ = "vm_setting_change"

    id: int | None = Field(default=None, primary_key=True)
    vm_id: str = Field(index=True, max_length=64)
    vm_name: str = Field(max_length=255)
    host: str = Field(max_length=255)
    actor: str = Field(max_length=255)
    actor_team: str | None = Field(default=None, max_length=32)
    at: datetime = utc_field()
    before: dict[str, Any] = json_field()
    after: dict[str, Any] = json_field()
    reason: str = Field(default="", max_length=2000)


class CheckpointAdoption(Table, table=True):
    """A human adopted an orphan: the checkpoint's Id is the primary key, so
    two clicks (on any replica) cannot both create a change that owns it."""

    __tablename__ = "checkpoint_adoption"

    checkpoint_id: str = Field(primary_key=True, max_length=64)
    change_id: int = Field(foreign_key="change.id", index=True)
    host: str = Field(max_length=255)
    vm_id: str = Field(max_length=64)
    adopted_by: str = Field(max_length=255)
    at: datetime = utc_field()
