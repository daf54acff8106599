"""What the sweep and the locator saw on the hosts: where a VM was last seen,
and checkpoint sizes over time."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, Index
from sqlmodel import Field

from bot.store.tables.base import Table, utc_field


class VMSighting(Table, table=True):
    """Where a VM (by VMId) was last seen, and since when: a clustered VM
    moves between nodes, so the node the inventory names is only where the
    bot looks first (bot.service.locate, docs/clusters.md). One row per VM,
    overwritten by each sighting; the move it last saw is kept beside it."""

    __tablename__ = "vm_sighting"

    vm_id: str = Field(primary_key=True, max_length=64)
    host: str = Field(max_length=255)
    # Seen on `host` at `seen_at`; first seen there at `since`.
    seen_at: datetime = utc_field()
    since: datetime = utc_field()
    # The node it was seen on before, and when it was last seen there: the
    # move happened between `previous_seen_at` and `since`.
    previous_host: str | None = Field(default=None, max_length=255)
    previous_seen_at: datetime | None = utc_field(nullable=True)


class CheckpointSize(Table, table=True):
    """One sample of a checkpoint's size, taken by the sweep: the history
    that shows how fast a forgotten checkpoint grows. Append-only; old
    samples are pruned after `sweep.keep_sizes`."""

    __tablename__ = "checkpoint_size"
    __table_args__ = (Index("ix_checkpoint_size_checkpoint_at", "checkpoint_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    host: str = Field(max_length=255)
    vm_id: str = Field(max_length=64)
    checkpoint_id: str = Field(max_length=64)
    at: datetime = utc_field()
    # BIGINT: an .avhdx grows past 2 GiB in a day on a busy VM.
    size_bytes: int = Field(sa_column=Column(BigInteger(), nullable=False))
