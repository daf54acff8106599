"""Backups of the database, whole and consistent, while the bot runs.

SQLite: the online backup API (https://www.sqlite.org/backup.html, through
Python's `sqlite3.Connection.backup`) copies every page under a read
transaction, so writers keep going and the copy is one snapshot; WAL
content not yet checkpointed is included. The copy is checked with
`PRAGMA integrity_check` before it replaces FILE, and FILE is replaced
only when the copy is complete (nothing half-written is left behind).

PostgreSQL: `pg_dump --format=custom`, one consistent snapshot of the
database (https://www.postgresql.org/docs/current/app-pgdump.html). No
secret of the URL is on pg_dump's command line, where `ps` (any local user,
/proc/PID/cmdline) would show it: the password, from `user:pass@` or the
query's `password=`, is handed over in PGPASSWORD; a client key's
`sslpassword=`, which has no environment variable, in a connection service
file only this user can read, for as long as pg_dump runs. Restore is
`pg_restore` (docs/upgrading.md).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import tempfile
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url

from bot.store.db import libpq_home, url_without_secrets
from bot.store.pg_tls import TLS_HINT, tls_refusal, with_tls_default


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
    """A new, empty file beside `dest` for the copy, renamed over `dest`
    once whole: made by `mkstemp` (O_EXCL, a name of its own, mode 0600),
    so never through a symlink someone left under a fixed `FILE.partial` in
    a shared directory, and readable by this user alone, as the record it
    will hold. BackupError when the directory does not take it."""
    try:
        fd, name = tempfile.mkstemp(prefix=f"{dest.name}.", suffix=".partial", dir=dest.parent)
    except OSError as exc:
        # The destination's fault, not the live database's; procfs says
        # ENOENT of a directory that exists, so the directory is named.
        raise BackupError(
            f"cannot write {dest}: {dest.parent} takes no new file ({exc.strerror or exc})"
        ) from None
    os.close(fd)
    return Path(name)


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
    # mode=ro: a backup never creates or changes the live database.
    live = f"{source.resolve().as_uri()}?mode=ro"
    try:
        # The copy is opened apart: a FILE that cannot be written is named as
        # such, not blamed on the live database. (An empty file is a new
        # database to SQLite.)
        copy_conn = sqlite3.connect(partial)
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
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
    # The TLS make_engine asks for, so the dump goes the way the bot does.
    bare, secrets = url_without_secrets(with_tls_default(make_url(url), os.environ, libpq_home()))
    libpq = bare.set(drivername="postgresql").render_as_string(hide_password=False)
    env = {**os.environ}
    if "password" in secrets:
        env["PGPASSWORD"] = secrets["password"]
    with tempfile.TemporaryDirectory(prefix="checkpoint-bot-pg-") as private:
        if "sslpassword" in secrets:
            env |= _service_file(bare, secrets["sslpassword"], Path(private), env)
        partial = _partial(dest)
        try:
            done = subprocess.run(
                [
                    tool,
                    "--format=custom",
                    "--no-password",
                    f"--file={partial}",
                    f"--dbname={libpq}",
                ],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                first = (done.stderr.strip().splitlines() or ["no message"])[0]
                refused = tls_refusal(done.stderr)
                if refused is not None:
                    # The server answered: no retry helps (bot/store/pg_tls.py).
                    raise BackupError(f"pg_dump failed: {refused}; {TLS_HINT}")
                unreachable = "connection" in first or "could not connect" in first
                raise BackupError(f"pg_dump failed: {first}", unavailable=unreachable)
            partial.replace(dest)
        finally:
            partial.unlink(missing_ok=True)
    return BackupResult(dest, "pg_dump", dest.stat().st_size, None, None, None)


# The section of the connection service file `_service_file` writes.
_SERVICE = "checkpoint-bot-backup"


def _service_file(url: URL, sslpassword: str, private: Path, env: dict[str, str]) -> dict[str, str]:
    """The environment that gives pg_dump the client key's passphrase:
    libpq has no variable for `sslpassword` (PGPASSWORD is the password's
    alone), but reads any connection parameter from the service PGSERVICE
    names in the file PGSERVICEFILE names
    (https://www.postgresql.org/docs/current/libpq-pgservice.html). The
    file is written into `private`, a directory only this user can enter
    (tempfile.mkdtemp makes it 0700), and goes with it."""
    if any(key.lower() == "service" for key in url.query) or env.get("PGSERVICE"):
        # That service would be looked up in this file instead of its own,
        # and not be found: said, never guessed at.
        raise BackupError(
            "the database URL has an sslpassword= and a service (service= or PGSERVICE): "
            "db backup cannot hand pg_dump the sslpassword but on its command line; put "
            "sslpassword in that service's entry of the connection service file instead"
        )
    # libpq reads a line of the file up to its end, trailing blanks trimmed:
    # a passphrase with a line break or a trailing blank cannot be written.
    if "\n" in sslpassword or "\r" in sslpassword or sslpassword != sslpassword.rstrip():
        raise BackupError(
            "the sslpassword in the database URL ends in a blank or holds a line break: "
            "db backup cannot hand it to pg_dump (a connection service file cannot hold it)"
        )
    service = private / "pg_service.conf"
    with open(
        os.open(service, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8"
    ) as file:
        file.write(f"[{_SERVICE}]\nsslpassword={sslpassword}\n")
    return {"PGSERVICEFILE": str(service), "PGSERVICE": _SERVICE}


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
