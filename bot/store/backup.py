"""Backups of the database, whole and consistent, while the bot runs.

SQLite: the online backup API (https://www.sqlite.org/backup.html, through
Python's `sqlite3.Connection.backup`) copies every page under a read
transaction, so writers keep going and the copy is one snapshot; WAL
content not yet checkpointed is included. The copy is checked with
`PRAGMA integrity_check` before it replaces FILE, and FILE is replaced
only when the copy is complete (nothing half-written is left behind).

PostgreSQL: `pg_dump --format=custom`, one consistent snapshot of the
database (https://www.postgresql.org/docs/current/app-pgdump.html). The
password is handed over in PGPASSWORD, never on the command line (where
`ps` would show it); restore is `pg_restore` (docs/upgrading.md).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url


class BackupError(Exception):
    """A backup that could not be made; `unavailable` when the database
    itself could not be reached (the CLI's exit code 3)."""

    def __init__(self, message: str, *, unavailable: bool = False) -> None:
        super().__init__(message)
        self.unavailable = unavailable


@dataclass(frozen=True)
class BackupResult:
    file: Path
    method: str  # "sqlite-backup-api" | "pg_dump"
    bytes: int
    schema: str | None
    changes: int | None
    events: int | None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "file": str(self.file)}


def _partial(dest: Path) -> Path:
    return dest.with_name(dest.name + ".partial")


def _counts(conn: sqlite3.Connection) -> tuple[str | None, int | None, int | None]:
    def one(sql: str) -> Any:
        try:
            row = conn.execute(sql).fetchone()
        except sqlite3.OperationalError:
            return None  # an empty database: no such table yet
        return row[0] if row else None

    return (
        one("SELECT version_num FROM alembic_version"),
        one("SELECT count(*) FROM change"),
        one("SELECT count(*) FROM change_event"),
    )


def backup_sqlite(source: Path, dest: Path) -> BackupResult:
    if not source.is_file():
        raise BackupError(f"no SQLite database at {source}", unavailable=True)
    partial = _partial(dest)
    partial.unlink(missing_ok=True)
    # mode=ro: a backup never creates or changes the live database.
    live = f"{source.resolve().as_uri()}?mode=ro"
    try:
        # The copy is opened apart: a FILE that cannot be written is named as
        # such, not blamed on the live database.
        copy_conn = sqlite3.connect(partial)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot write {dest}: {exc}") from None
    try:
        # The copy's closing entered first: a live database that cannot be
        # opened must not leave the copy's connection open.
        with closing(copy_conn) as copy, closing(sqlite3.connect(live, uri=True)) as src:
            src.backup(copy)
            check = copy.execute("PRAGMA integrity_check").fetchone()
            if not check or check[0] != "ok":
                raise BackupError(f"the copy of {source} failed its integrity check: {check}")
            schema, changes, events = _counts(copy)
        partial.replace(dest)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot back up {source}: {exc}", unavailable=True) from None
    finally:
        partial.unlink(missing_ok=True)
    return BackupResult(dest, "sqlite-backup-api", dest.stat().st_size, schema, changes, events)


def backup_postgres(url: str, dest: Path, pg_dump: str | None = None) -> BackupResult:
    tool = pg_dump or shutil.which("pg_dump")
    if tool is None:
        raise BackupError(
            "pg_dump is not installed here: install the PostgreSQL client of your "
            "server's version (Debian: postgresql-client) or run pg_dump where it is "
            "(docs/upgrading.md#postgresql)"
        )
    parsed = make_url(url)
    env = {**os.environ}
    if parsed.password is not None:
        env["PGPASSWORD"] = str(parsed.password)
    libpq = parsed.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    partial = _partial(dest)
    try:
        done = subprocess.run(
            [tool, "--format=custom", "--no-password", f"--file={partial}", f"--dbname={libpq}"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            first = (done.stderr.strip().splitlines() or ["no message"])[0]
            unreachable = "connection" in first or "could not connect" in first
            raise BackupError(f"pg_dump failed: {first}", unavailable=unreachable)
        partial.replace(dest)
    finally:
        partial.unlink(missing_ok=True)
    return BackupResult(dest, "pg_dump", dest.stat().st_size, None, None, None)


def backup(url: str, dest: Path) -> BackupResult:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise BackupError("an in-memory SQLite database has nothing to back up")
        return backup_sqlite(Path(parsed.database), dest)
    if backend == "postgresql":
        return backup_postgres(url, dest)
    raise BackupError(f"cannot back up a {backend} database: SQLite and PostgreSQL only")
