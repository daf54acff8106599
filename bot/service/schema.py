"""The database schema, for the operator's `db` commands."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from sqlalchemy.exc import InterfaceError, OperationalError, ProgrammingError

from bot.config import Settings
from bot.service.errors import Unavailable
from bot.service.outage import misconfigured_database
from bot.store import migrate
from bot.store.db import driver_reason, make_engine, missing_sqlite_file


@dataclass(frozen=True)
class SchemaChange:
    database: str  # the settings' label, never the URL (it may hold a password)
    before: str | None
    after: str | None

    @property
    def changed(self) -> bool:
        return self.before != self.after


def _not_answering(exc: BaseException, label: str) -> BaseException:
    """What a `db` command says when opening the database failed: a URL
    option the driver refuses (exit 2; psycopg raises an unknown option as
    a ProgrammingError, before any connection is tried), else that it does
    not answer (3). Any other ProgrammingError is the bot's own: raised as
    it is."""
    refused = misconfigured_database(exc, label)
    if refused is not None:
        return refused
    if isinstance(exc, ProgrammingError):
        return exc
    return Unavailable(f"{label}: the database does not answer: {driver_reason(exc)}")


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
    except (OperationalError, InterfaceError, ProgrammingError) as exc:
        raise _not_answering(exc, label) from None
    finally:
        engine.dispose()
    return SchemaChange(label, before, after)


class SchemaState(Enum):
    CURRENT = "current"  # this release's schema
    BEHIND = "behind"  # older: `db upgrade` applies the pending revisions
    EMPTY = "empty"  # no schema at all yet
    UNKNOWN = "unknown"  # a revision this release does not know: a newer release wrote it


@dataclass(frozen=True)
class SchemaStatus:
    database: str  # the settings' label, never the URL
    current: str | None
    needed: str  # the schema this release runs on
    pending: tuple[tuple[str, str], ...]  # (revision, what it does) `db upgrade` applies, in order
    # A SQLite record whose file does not exist: looked at, not created.
    missing_file: str | None = None
    # Where the record would be when the config names none: the directory
    # the command runs in (a command run from elsewhere finds none there).
    from_cwd: str | None = None

    @property
    def state(self) -> SchemaState:
        if self.current == self.needed:
            return SchemaState.CURRENT
        if self.current is None:
            return SchemaState.EMPTY
        return SchemaState.BEHIND if self.pending else SchemaState.UNKNOWN

    def to_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "state": self.state.value,
            "current": self.current,
            "needed": self.needed,
            "pending": [{"revision": rev, "does": doc} for rev, doc in self.pending],
            "missing_file": self.missing_file,
        }


def schema_status(settings: Settings) -> SchemaStatus:
    """Where the configured database's schema stands against this release's,
    read without changing anything (Alembic's version table). Unavailable,
    in one line, when the database does not answer."""
    label = settings.database_label
    known = migrate.revisions()
    missing = missing_sqlite_file(settings.database_url)
    current: str | None = None
    if missing is None:
        # A file that is not there is not opened: opening creates it (and a
        # record in the wrong directory, which `db upgrade` would then fill).
        engine = make_engine(settings.database_url)
        try:
            current = migrate.current_revision(engine)
        except (OperationalError, InterfaceError, ProgrammingError) as exc:
            raise _not_answering(exc, label) from None
        finally:
            engine.dispose()
    ids = [rev for rev, _ in known]
    if current is None:
        pending = tuple(known)
    elif current in ids:
        pending = tuple(known[ids.index(current) + 1 :])
    else:
        pending = ()
    return SchemaStatus(
        label,
        current,
        ids[-1],
        pending,
        missing_file=None if missing is None else str(missing),
        from_cwd=str(settings.workdir) if settings.database_from_cwd else None,
    )
