"""The modelled hosts' own table, on its own metadata.

It is not part of the bot's schema: migrations never create it, and a
production install never imports this module. `SqlHostStateStore` creates it
on first use, in whatever database the demo or the emulator is given.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column
from sqlalchemy.engine import Engine
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from bot.store.migrate import MIGRATION_LOCK


class DevtoolsTable(SQLModel, registry=registry()):
    """Base of the dev tools' tables: a registry (and metadata) of their own."""


class HostStateRow(DevtoolsTable, table=True):
    """One modelled host's state as a JSON document, so the demo and the CLI
    keep their checkpoints between runs."""

    __tablename__ = "devtools_host_state"

    host: str = Field(primary_key=True, max_length=255)
    state: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    version: int = Field(default=1)


def create_tables(engine: Engine) -> None:
    """Idempotent: `CREATE TABLE IF NOT EXISTS` for the dev tools' tables.
    On PostgreSQL under the migrations' lock: emulators started together on
    a new database would otherwise both find no table and both create it."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        DevtoolsTable.metadata.create_all(conn)
