"""Schema migrations (Alembic), run programmatically."""

from __future__ import annotations

from collections.abc import Iterator
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
HEAD = "0018"


def _config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    return cfg


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
        try:
            with conn.begin():
                yield conn
                if sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"the migration broke foreign keys: {broken[:5]}")
        finally:
            if sqlite:
                raw.execute("PRAGMA foreign_keys=ON")


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
