"""The database schema, for the operator's `db` commands."""

from __future__ import annotations

from dataclasses import dataclass

from bot.config import Settings
from bot.store import migrate
from bot.store.db import make_engine


@dataclass(frozen=True)
class SchemaChange:
    database: str  # the settings' label, never the URL (it may hold a password)
    before: str | None
    after: str | None

    @property
    def changed(self) -> bool:
        return self.before != self.after


def upgrade_schema(settings: Settings) -> SchemaChange:
    """Migrate the configured database to the newest schema (idempotent)."""
    engine = make_engine(settings.database_url)
    try:
        before = migrate.current_revision(engine)
        migrate.upgrade(engine)
        after = migrate.current_revision(engine)
    finally:
        engine.dispose()
    return SchemaChange(settings.database_label, before, after)
