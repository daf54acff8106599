"""The database schema, for the operator's `db` commands."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.exc import InterfaceError, OperationalError

from bot.config import Settings
from bot.service.errors import Unavailable
from bot.store import migrate
from bot.store.db import driver_reason, make_engine


@dataclass(frozen=True)
class SchemaChange:
    database: str  # the settings' label, never the URL (it may hold a password)
    before: str | None
    after: str | None

    @property
    def changed(self) -> bool:
        return self.before != self.after


def upgrade_schema(settings: Settings) -> SchemaChange:
    """Migrate the configured database to the newest schema (idempotent).
    Unavailable, in one line, when the database does not answer. (A URL that
    does not parse never gets here: `Settings` refuses it.)"""
    label = settings.database_label
    engine = make_engine(settings.database_url)
    try:
        before = migrate.current_revision(engine)
        migrate.upgrade(engine)
        after = migrate.current_revision(engine)
    except (OperationalError, InterfaceError) as exc:
        raise Unavailable(f"{label}: the database does not answer: {driver_reason(exc)}") from None
    finally:
        engine.dispose()
    return SchemaChange(label, before, after)
