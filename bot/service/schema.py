"""The database schema, for the operator's `db` commands."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum
from typing import Any

from sqlalchemy.exc import InterfaceError, OperationalError, ProgrammingError

from bot.config import ConfigError, Settings
from bot.service.errors import Unavailable
from bot.service.outage import misconfigured_database
from bot.store import migrate
from bot.store.db import driver_reason, make_engine, missing_sqlite_file

log = logging.getLogger(__name__)


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


def written_by_newer(label: str, current: str, newest: str) -> str:
    """What every command says of a database at a revision this release does
    not know (`db status` says it too): a newer release wrote it."""
    return (
        f"the database ({label}) is at schema {current}, which this release does not know "
        f"(its newest is {newest}): a newer release wrote it; run that release, or roll the "
        "schema back with it (docs/upgrading.md)"
    )


def upgrade_schema(settings: Settings) -> SchemaChange:
    """Migrate the configured database to the newest schema (idempotent).
    Unavailable, in one line, when the database does not answer; a
    ConfigError, with nothing changed, when a newer release wrote it. A
    database at 0019 or later that lacks a column migration 0019 adds
    (`migrate.REPAIRED`) gets it: 0019 is applied again. (A URL that does
    not parse never gets here: `Settings` refuses it.)"""
    label = settings.database_label
    order = [rev for rev, _ in migrate.revisions()]
    engine = make_engine(settings.database_url)
    try:
        before = migrate.current_revision(engine)
        if before is not None and before not in order:
            raise ConfigError(written_by_newer(label, before, order[-1]))
        migrate.upgrade(engine)
        # 0019 ran on this database already (before it, `upgrade` ran it
        # just now): a column it adds that is still missing gets it again.
        if (
            before in order
            and order.index(before) >= order.index(migrate.REPAIR_REVISION)
            and migrate.repairable(migrate.lacking(engine, migrate.HEAD, order))
        ):
            migrate.repair(engine)
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
    # At this release's revision, but lacking tables or columns the models
    # define (`missing`): an edited migration chain, or a hand's edit.
    INCOMPLETE = "incomplete"


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
    # What the live schema lacks of what its revision holds ("table" or
    # "table.column", `migrate.lacking`).
    missing: tuple[str, ...] = ()

    @property
    def state(self) -> SchemaState:
        if self.current == self.needed:
            return SchemaState.INCOMPLETE if self.missing else SchemaState.CURRENT
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
            "missing": list(self.missing),
        }


def schema_status(settings: Settings) -> SchemaStatus:
    """Where the configured database's schema stands against this release's,
    read without changing anything (Alembic's version table, and the live
    tables and columns against what that revision holds: `migrate.lacking`).
    What is missing is also said in a warning, with whether `db upgrade`
    adds it. Unavailable, in one line, when the database does not answer."""
    label = settings.database_label
    known = migrate.revisions()
    ids = [rev for rev, _ in known]
    missing = missing_sqlite_file(settings.database_url)
    current: str | None = None
    lacks: tuple[str, ...] = ()
    if missing is None:
        # A file that is not there is not opened: opening creates it (and a
        # record in the wrong directory, which `db upgrade` would then fill).
        engine = make_engine(settings.database_url)
        try:
            current = migrate.current_revision(engine)
            if current is not None:
                lacks = migrate.lacking(engine, current, ids)
        except (OperationalError, InterfaceError, ProgrammingError) as exc:
            raise _not_answering(exc, label) from None
        finally:
            engine.dispose()
    if current is None:
        pending = tuple(known)
    elif current in ids:
        pending = tuple(known[ids.index(current) + 1 :])
    else:
        pending = ()
    if lacks:
        if not pending and migrate.repairable(lacks):
            # At the newest revision: `db upgrade` applies 0019 again.
            pending = tuple(known[ids.index(migrate.REPAIR_REVISION) :][:1])
        log.warning("%s", _lacking_said(label, str(current), lacks))
    return SchemaStatus(
        label,
        current,
        ids[-1],
        pending,
        missing_file=None if missing is None else str(missing),
        from_cwd=str(settings.workdir) if settings.database_from_cwd else None,
        missing=lacks,
    )


def _lacking_said(label: str, current: str, lacks: tuple[str, ...]) -> str:
    """One line: what the database lacks of what its revision holds, and
    whether `db upgrade` adds it (migration 0019 adds 0015's columns; for
    anything else only a backup has it)."""
    added = {f"{table}.{column}" for table, column in migrate.REPAIRED}
    repaired = [name for name in lacks if name in added]
    lost = [name for name in lacks if name not in added]

    def them(names: list[str]) -> str:
        # Named again only when the two kinds are mixed.
        if repaired and lost:
            return _named(names)
        return "it" if len(names) == 1 else "them"

    fixes = []
    if repaired:
        fixes.append(
            f"'checkpoint-bot db upgrade' adds {them(repaired)} "
            f"(migration {migrate.REPAIR_REVISION})"
        )
    if lost:
        fixes.append(
            f"no migration of this release adds {them(lost)} back: restore a backup "
            "(docs/upgrading.md)"
        )
    return (
        f"the database ({label}) lacks {_named(list(lacks))}, which schema {current} has: "
        + "; ".join(fixes)
    )


def _named(names: list[str]) -> str:
    """'the table t', 'the columns a.b and c.d', 'the table t and the column a.b'."""
    tables = [name for name in names if "." not in name]
    columns = [name for name in names if "." in name]
    parts = []
    for kind, found in (("table", tables), ("column", columns)):
        if found:
            listed = found[0] if len(found) == 1 else f"{', '.join(found[:-1])} and {found[-1]}"
            parts.append(f"the {kind}{'' if len(found) == 1 else 's'} {listed}")
    return " and ".join(parts)
