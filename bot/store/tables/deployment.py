"""This record's own key, which marks the checkpoints its jobs take."""

from __future__ import annotations

from sqlmodel import Field

from bot.store.tables.base import Table


class DeploymentKey(Table, table=True):
    """One row, made by the migration that added the table: 32 random bytes
    (hex) drawn once per record. A checkpoint's name carries a mark made
    with it (bot.service.ownership `mark`), so a checkpoint whose job the
    record lacks (taken after the backup it was restored from) is still
    provably this deployment's; a record made afresh draws a new key, and
    another deployment's marks never verify here. Kept with the record, so
    `db backup` and a restore keep it."""

    __tablename__ = "deployment_key"

    id: int = Field(primary_key=True)
    key: str = Field(max_length=64)
