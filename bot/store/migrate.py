"""Schema migrations (Alembic), run programmatically."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic (with Mako and Pygments under it) is imported by the functions that
# migrate or walk the scripts, not here: every CLI command checks the schema
# at start, and `schema_is_current` answers that without it.
_MIGRATIONS = Path(__file__).with_name("migrations")

# The newest revision under migrations/versions, written down so that the
# start-up check need not load Alembic to find it; tests/test_store.py
# checks it against Alembic's own answer, so a new migration updates it.
HEAD = "0021"

# The columns migration 0015 adds, which databases migrated by earlier
# commits lack: 53389d6's 0016 revised 0014, so a database it took to 0016
# (and on to 0018) never ran 0015; 3d1b17c's and ca15dd6's 0015 had no
# batch_event.slack_ts. Migration 0019 adds each one missing (it names them
# again: a migration is not changed by later code); `lacking` checks them
# on a database at 0015 or later.
REPAIRED = (("change", "run_at"), ("batch", "run_at"), ("batch_event", "slack_ts"))
# The migration that adds them, applied again by `repair`.
REPAIR_REVISION = "0019"
# The advisory lock key migrations hold on PostgreSQL (any constant no other
# lock of this database uses; these are "ckpt" in ASCII).
MIGRATION_LOCK = 0x636B7074


def _config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    return cfg


# How long a SQLite migrator waits for another's write lock, and the wait
# every other write of the pool's connections has (bot.store.db).
_MIGRATION_WAIT_MS = 10 * 60 * 1000
_WRITE_WAIT_MS = 30_000


@contextmanager
def _migrating(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction for Alembic. On SQLite, foreign keys
    are off while it runs: a batch migration rebuilds a table (copy, drop,
    rename), and dropping a table that other rows reference fails with
    them on. They are checked before the commit and turned back on, the
    procedure SQLite documents (https://www.sqlite.org/lang_altertable.html,
    "Making Other Kinds Of Table Schema Changes")."""
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        raw: Any = conn.connection.driver_connection if sqlite else None
        if sqlite:
            # Outside any transaction, where the pragma takes effect.
            raw.execute("PRAGMA foreign_keys=OFF")
            # A second migrator waits for the first however long it takes
            # (docs/upgrading.md), not the 30 s a write waits elsewhere
            # (bot.store.db): seen in CI under heavy disk load, three
            # migrators of one new file, one "database is locked".
            raw.execute(f"PRAGMA busy_timeout={_MIGRATION_WAIT_MS}")
        try:
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    # One migrator at a time: two processes on a new database
                    # both read "no revision" and both insert the first one
                    # (seen: emulators started together; a `db upgrade` beside
                    # a deployment's migration Job). The lock is the
                    # transaction's, so it ends with the commit; the next
                    # migrator then reads the new revision and has nothing
                    # to do (https://www.postgresql.org/docs/current/explicit-locking.html#ADVISORY-LOCKS).
                    # SQLite needs none: every transaction here begins
                    # IMMEDIATE, holding the write lock (bot.store.db).
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
                yield conn
                if sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"the migration broke foreign keys: {broken[:5]}")
        finally:
            if sqlite:
                raw.execute("PRAGMA foreign_keys=ON")
                raw.execute(f"PRAGMA busy_timeout={_WRITE_WAIT_MS}")


def upgrade(engine: Engine, revision: str = "head") -> None:
    from alembic import command

    with _migrating(engine) as conn:
        cfg = _config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config()).get_current_head()


def schema_is_current(engine: Engine) -> bool:
    """True when the database is at `HEAD`, read with one SELECT of Alembic's
    `alembic_version` table. False means "ask Alembic" (`current_revision`,
    `head_revision`): this never says current when it is not."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return False
        rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    return [r[0] for r in rows] == [HEAD]


def lacking(engine: Engine, revision: str, order: Sequence[str]) -> tuple[str, ...]:
    """What the live schema lacks of what schema `revision` holds, read by
    SQLAlchemy's inspection ("table" for a table, "table.column" for a
    column; `order` is every revision, oldest first). At `HEAD`, every table
    and column the models define; at an older revision from 0015 on, 0015's
    columns (`REPAIRED`); none before. A query or two per table: for
    `db status`, not for every command's start."""
    if revision not in order or order.index(revision) < order.index("0015"):
        return ()
    with engine.connect() as conn:
        insp = inspect(conn)
        tables = set(insp.get_table_names())
        if revision != HEAD:
            return tuple(
                f"{table}.{column}"
                for table, column in REPAIRED
                if table in tables and column not in _columns(insp, table)
            )
        from sqlmodel import SQLModel

        import bot.store.models  # noqa: F401 (registers the tables on the metadata)

        found: list[str] = []
        for table in SQLModel.metadata.sorted_tables:
            if table.name not in tables:
                found.append(table.name)
                continue
            have = _columns(insp, table.name)
            found.extend(f"{table.name}.{c.name}" for c in table.columns if c.name not in have)
        return tuple(found)


def _columns(insp: Any, table: str) -> set[str]:
    return {c["name"] for c in insp.get_columns(table)}


def repairable(missing: Sequence[str]) -> bool:
    """Whether `repair` (migration 0019) adds any of `missing`."""
    return any(f"{table}.{column}" in missing for table, column in REPAIRED)


def repair(engine: Engine) -> None:
    """Apply migration 0019 again on a database already at it or later: it
    adds those of 0015's columns that are missing, and nothing else (a
    database whose columns went after it was applied, by hand or by a
    restore; `db upgrade` calls this when `lacking` names one)."""
    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_config()).get_revision(REPAIR_REVISION)
    assert script is not None
    with _migrating(engine) as conn:
        opts = {"render_as_batch": conn.dialect.name == "sqlite"}
        with Operations.context(MigrationContext.configure(conn, opts=opts)):
            script.module.upgrade()


def autogenerate(engine: Engine, message: str) -> None:
    """Developer helper: write a new revision from the model diff."""
    from alembic import command

    with engine.begin() as conn:
        cfg = _config()
        cfg.attributes["connection"] = conn
        command.revision(cfg, message=message, autogenerate=True)


def downgrade(engine: Engine, revision: str) -> None:
    """Undo migrations down to `revision` ("base" undoes them all). Columns
    and tables a migration added are dropped with their data."""
    from alembic import command

    with _migrating(engine) as conn:
        cfg = _config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def revisions() -> list[tuple[str, str]]:
    """Every revision, oldest first, with the first line of its docstring."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_config())
    found = [
        (rev.revision, (rev.doc or "").strip().splitlines()[0] if rev.doc else "")
        for rev in script.walk_revisions()
    ]
    return list(reversed(found))
