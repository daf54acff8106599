"""Where each VM was last seen (table `vm_sighting`, migration 0012).

    last_seen(engine, vm_id) -> Sighting | None
    all_seen(engine) -> dict[vm_id, Sighting]
    record_seen(engine, vm_id, host, at) -> Sighting     one row per VMId, upserted
    next_sighting(previous, host, at) -> Sighting        the pure rule it applies

A sighting is only ever written after a host answered that it has the VM, so
it is evidence, never a guess; the bot still asks the host before acting.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Engine
from sqlalchemy.sql.dml import Insert
from sqlmodel import select

from bot.store.db import session_scope
from bot.store.tables.hosts import VMSighting

__all__ = ["Sighting", "all_seen", "last_seen", "next_sighting", "record_seen"]


@dataclass(frozen=True)
class Sighting:
    vm_id: str
    host: str
    seen_at: datetime
    since: datetime
    previous_host: str | None = None
    previous_seen_at: datetime | None = None

    @property
    def moved(self) -> bool:
        return self.previous_host is not None

    def to_dict(self) -> dict[str, str | None]:
        return {
            "host": self.host,
            "seen_at": self.seen_at.isoformat(),
            "since": self.since.isoformat(),
            "previous_host": self.previous_host,
            "previous_seen_at": (
                self.previous_seen_at.isoformat() if self.previous_seen_at else None
            ),
        }


def next_sighting(previous: Sighting | None, vm_id: str, host: str, at: datetime) -> Sighting:
    """The sighting after `host` answered that it has the VM at `at`. A later
    sighting never goes back in time (two processes may record out of order)."""
    if previous is None:
        return Sighting(vm_id, host, at, at)
    if at < previous.seen_at:
        return previous
    if previous.host.casefold() == host.casefold():
        return Sighting(
            vm_id,
            previous.host,
            at,
            previous.since,
            previous.previous_host,
            previous.previous_seen_at,
        )
    return Sighting(vm_id, host, at, at, previous.host, previous.seen_at)


def _of(row: VMSighting) -> Sighting:
    return Sighting(
        row.vm_id, row.host, row.seen_at, row.since, row.previous_host, row.previous_seen_at
    )


def last_seen(engine: Engine, vm_id: str) -> Sighting | None:
    with session_scope(engine) as s:
        row = s.get(VMSighting, vm_id)
        return _of(row) if row is not None else None


def all_seen(engine: Engine) -> dict[str, Sighting]:
    with session_scope(engine) as s:
        return {row.vm_id: _of(row) for row in s.exec(select(VMSighting)).all()}


def _insert_ignoring(dialect: str, table: Table, values: dict[str, Any]) -> Insert:
    if dialect == "postgresql":
        # Imported here: a dialect's module loads only when the engine speaks it
        # (the PostgreSQL one costs a SQLite CLI command ~20 ms, bench/cli_start.py).
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table).values(**values).on_conflict_do_nothing()
    if dialect == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table).values(**values).on_conflict_do_nothing()
    raise NotImplementedError(f"sightings do not support the {dialect} dialect")


def record_seen(engine: Engine, vm_id: str, host: str, at: datetime) -> Sighting:
    """Record that `host` has the VM as of `at`; returns the sighting now stored."""
    table = VMSighting.__table__  # type: ignore[attr-defined]
    assert isinstance(table, Table)
    with session_scope(engine) as s:
        first = {"vm_id": vm_id, "host": host, "seen_at": at, "since": at}
        # The primary key arbitrates two processes seeing a VM for the first time.
        s.execute(_insert_ignoring(engine.dialect.name, table, first))
        row = s.exec(select(VMSighting).where(VMSighting.vm_id == vm_id).with_for_update()).one()
        new = next_sighting(_of(row), vm_id, host, at)
        row.host, row.seen_at, row.since = new.host, new.seen_at, new.since
        row.previous_host, row.previous_seen_at = new.previous_host, new.previous_seen_at
        s.add(row)
        return new
