"""Engines and sessions for SQLite (default) and PostgreSQL."""

from __future__ import annotations

import os
import pwd
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlmodel import Session, create_engine

from bot.interrupts import interrupts_held
from bot.store.outage import watch_writes
from bot.store.pg_tls import tls_refusal, with_tls_default


def driver_reason(exc: BaseException) -> str:
    """The first line of what the database driver (or the job queue's
    client) said: enough to tell a refused connection from a failed login
    or a missing file. Never SQLAlchemy's own text around it, which appends
    the statement and its parameters; libpq, SQLite and redis-py do not
    repeat a password."""
    orig = getattr(exc, "orig", None)
    said = orig if isinstance(orig, BaseException) else exc
    lines = [line.strip() for line in str(said).splitlines() if line.strip()]
    return lines[0] if lines else type(said).__name__


# What libpq (and psycopg, which checks a few options itself) says of a
# connection option it cannot use, before any connection is tried: the
# URL is wrong, so retrying cannot help. Refused, timed out and unresolved
# hosts are absent on purpose: those may answer in a minute. libpq's words,
# from fe-connect.c; the text is matched anywhere, because libpq may put
# "connection to server at ... failed:" before it.
_BAD_OPTION = re.compile(
    r"invalid connection option \"|invalid URI query parameter|"
    r"invalid integer value \"|invalid port number|"
    r"invalid [a-z_]+ value: \"|bad value for [a-z_]+:|"
    r"value \"[^\"]*\" invalid when SSL support is not compiled in|"
    r"weak sslmode \"|invalid SSL protocol version range|"
    r"could not match \d+ (?:host names|port numbers) to|"
    r"missing \"=\" after \"|unterminated quoted string in connection info string|"
    r"invalid percent-encoded token"
)


def bad_connection_option(exc: BaseException) -> str | None:
    """What the driver said of a connection option it refuses (an invalid
    sslmode, an unknown option, a non-integer timeout), from the first such
    line on; None when `exc` is anything else, an unreachable server
    included."""
    orig = getattr(exc, "orig", None)
    said = orig if isinstance(orig, BaseException) else exc
    if type(said).__module__.split(".")[0] != "psycopg":
        return None
    for line in str(said).splitlines():
        found = _BAD_OPTION.search(line)
        if found is not None:
            return line[found.start() :].strip()
    return None


def tls_refused(exc: BaseException) -> str | None:
    """What the driver said when the database's TLS could not be had or
    verified (bot/store/pg_tls.py); None for anything else."""
    orig = getattr(exc, "orig", None)
    said = orig if isinstance(orig, BaseException) else exc
    if type(said).__module__.split(".")[0] != "psycopg":
        return None
    return tls_refusal(str(said))


# The connection parameters that hold a secret. libpq and psycopg take the
# password in the URL's query (`?password=`) as well as in `user:pass@`, and
# `sslpassword` is the passphrase of the client key
# (https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-PARAMKEYWORDS).
# Matched whatever the case: a key libpq would refuse as spelt (`PASSWORD=`)
# still holds what someone meant as a password.
_SECRET_PARAMETERS = frozenset({"password", "sslpassword"})


def _secret(key: str) -> bool:
    return key.lower() in _SECRET_PARAMETERS


def _values(value: str | tuple[str, ...]) -> tuple[str, ...]:
    # SQLAlchemy keeps a key given twice as a tuple of its values.
    return (value,) if isinstance(value, str) else value


def url_has_password(url: URL) -> bool:
    """A password in `user:pass@` or in the query (password=, sslpassword=)."""
    return bool(url.password) or any(
        any(_values(value)) for key, value in url.query.items() if _secret(key)
    )


# What a hidden secret reads as (SQLAlchemy's own `hide_password` mask).
_MASK = "***"


def redacted_url(url: URL) -> str:
    """`url` as text for messages, every secret shown as `***`: the password
    in `user:pass@` (as SQLAlchemy hides it) and each password or
    sslpassword in the query, which SQLAlchemy's `hide_password` leaves
    in. The query keeps its order. A host with an "@" in it is the tail of
    a password that held one unencoded (`user:pa@ss@host`; `Settings`
    refuses such a URL): only what follows its last "@" is shown."""
    if url.host is not None and "@" in url.host:
        url = url.set(host=url.host.rsplit("@", 1)[1], password=_MASK)
    shown = url.set(query={}).render_as_string(hide_password=True)
    pairs = [
        f"{quote_plus(key)}={'***' if _secret(key) else quote_plus(value)}"
        for key, values in url.query.items()
        for value in _values(values)
    ]
    return f"{shown}?{'&'.join(pairs)}" if pairs else shown


def url_without_secrets(url: URL) -> tuple[URL, dict[str, str]]:
    """`url` with no password anywhere in it, for a command line (which any
    local user reads in /proc/PID/cmdline), and the secrets taken out of it
    by libpq's keyword, lower case. A key given more than once counts as its
    last value, as libpq reads it; the query's password wins over the
    userinfo's, as it does for libpq and for SQLAlchemy's psycopg dialect."""
    secrets: dict[str, str] = {}
    if url.password is not None:
        secrets["password"] = str(url.password)
    kept: dict[str, str | tuple[str, ...]] = {}
    for key, value in url.query.items():
        if _secret(key):
            secrets[key.lower()] = _values(value)[-1]
        else:
            kept[key] = value
    # Made anew, not `url.set(password=None)`: `set` leaves alone what it
    # is given as None, so that kept the password (and pg_dump had it on
    # its command line until 2026-12-05).
    bare = URL.create(
        url.drivername,
        username=url.username,
        host=url.host,
        port=url.port,
        database=url.database,
        query=kept,
    )
    return bare, secrets


def default_sqlite_url(workdir: Path) -> str:
    return f"sqlite:///{workdir / 'var' / 'checkpoint-bot.db'}"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer; busy_timeout makes a
    # second writer wait instead of failing with "database is locked".
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")
    _switch_to_wal(cur)
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _switch_to_wal(cur: Any) -> None:
    """`PRAGMA journal_mode=WAL`, waiting for a connection that switches
    the same new file at that moment. The switch needs the file to itself,
    and SQLite answers "database is locked" at once there rather than
    through the busy timeout (seen: three processes opening one new
    database together, one failed; reproduced about once in ten tries).
    The mode is kept in the file, so once any of them has switched it,
    the others' switch is a no-op that succeeds."""
    import sqlite3  # only a SQLite connection gets here
    import time

    deadline = time.monotonic() + 30
    pause = 0.01
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


# Execution options of a connection that only reads (a long export): its
# transaction must not hold SQLite's write lock (see _sqlite_begin).
READ_ONLY: dict[str, Any] = {"checkpoint_bot_read_only": True}


def _sqlite_begin_immediate(conn: Any) -> None:
    # pysqlite's deferred BEGIN lets two writers both read, then one fails
    # on upgrade; taking the write lock at BEGIN makes conditional claims
    # serialize cleanly. A read-only connection takes a deferred BEGIN: in
    # WAL mode it reads a snapshot and never blocks a writer
    # (https://www.sqlite.org/lang_transaction.html).
    if conn.get_execution_options().get("checkpoint_bot_read_only"):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def missing_sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names when it does not exist yet (opening it
    would create it, and `make_engine` its directory), else None."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    path = Path(parsed.database)
    return None if path.exists() else path


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            # A directory that cannot be made (read-only, procfs) is said by
            # the first connect, "unable to open database file", where every
            # caller already tells a database that cannot be opened. One made
            # here is its owner's alone (0700): it holds the whole record,
            # whatever the umask made of the files in it (0644 with 022,
            # outside the shipped units' UMask=0077). One that exists is
            # left as its owner set it.
            with suppress(OSError):
                Path(parsed.database).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "isolation_level": None}
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_immediate)
        watch_writes(engine)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    parsed = with_tls_default(parsed, os.environ, libpq_home())
    engine = create_engine(parsed, pool_pre_ping=True, pool_size=10, max_overflow=20)
    watch_writes(engine)
    return engine


def libpq_home() -> Path:
    """The home directory libpq reads `~/.postgresql/` from: the user's
    entry in the password database, not $HOME (libpq's pqGetHomeDirectory)."""
    try:
        return Path(pwd.getpwuid(os.getuid()).pw_dir)
    except KeyError:
        return Path.home()


class RecordSession(Session):
    """A session that maps every table before it writes. A command that
    only reads imports the modules of the tables it reads
    (bot.store.tables), but a flush orders its writes by the foreign keys
    of the tables it writes, and resolving a foreign key needs the table it
    names mapped on the same metadata: without it SQLAlchemy raises
    NoReferencedTableError at the flush, in a process that read nothing
    else first (https://docs.sqlalchemy.org/en/20/core/constraints.html#defining-foreign-keys).
    Every commit and autoflush goes through `flush`; one with nothing to
    write (`dirty` is optimistic: it holds every instance touched, changed
    or not, https://docs.sqlalchemy.org/en/20/orm/session_api.html#sqlalchemy.orm.Session.dirty)
    leaves a reader's imports alone."""

    def flush(self, objects: Sequence[Any] | None = None) -> None:
        # Once every table is mapped (any serving process, after its first
        # write) a flush skips the check: `dirty` walks the session's objects.
        if "bot.store.models" not in sys.modules and (self.new or self.dirty or self.deleted):
            import bot.store.models  # noqa: F401  (maps every table; once per process)
        super().flush(objects)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error. A Ctrl-C
    (or `serve`'s SIGTERM) is raised as it ends, never inside it: raised
    half-way into SQLAlchemy's begin, it left SQLite's write lock held by a
    transaction nothing would end (bot/interrupts.py)."""
    with interrupts_held(), RecordSession(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
