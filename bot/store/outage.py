"""Telling a database outage from a bug, and knowing what it interrupted.

`is_transient` names the errors that mean "the database could not be
reached or dropped the connection" (SQLAlchemy's `OperationalError` and
`InterfaceError`, or any DBAPI error that invalidated its connection): the
same work may succeed in a minute. A constraint violation or a bad
statement is not transient, and neither is a statement naming a table or
column the database lacks (`schema_mismatch`: SQLite reports it as an
OperationalError too): its schema does not match the code, and no retry
fixes that.

`committed_writes` counts, per thread, the transactions that wrote
something and were sent a COMMIT (counted when the COMMIT is sent, so a
commit whose answer was lost still counts). A caller that saw no new count
since it started, when the database failed, can truthfully say that
nothing was changed; otherwise it must not.
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

_WROTE = "checkpoint_bot_wrote"
_WRITES = ("insert", "update", "delete")
_counts = threading.local()


# What SQLite says of a table or column a statement names and the schema
# lacks ("no such column: change.run_at"; an INSERT's "table batch_event
# has no column named slack_ts"), and PostgreSQL's SQLSTATEs for the same:
# undefined_column and undefined_table.
_SQLITE_LACKS = ("no such column: ", "no such table: ")
_SQLITE_INSERT_LACKS = " has no column named "
_PG_LACKS = frozenset({"42703", "42P01"})


def schema_mismatch(exc: BaseException) -> str | None:
    """What the database said, in one line and without the statement, when
    `exc` (SQLAlchemy's error or the driver's own) means a statement named
    a table or column the live schema lacks: the schema does not match this
    release's. None for any other error."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    if getattr(orig, "sqlstate", None) in _PG_LACKS:
        # psycopg's primary message ("column change.run_at does not exist");
        # its str() goes on with the statement (LINE 1: SELECT …).
        said = getattr(getattr(orig, "diag", None), "message_primary", None) or str(orig)
        return said.strip().splitlines()[0] if said.strip() else type(orig).__name__
    if isinstance(orig, sqlite3.OperationalError):
        said = str(orig).strip()
        if said.startswith(_SQLITE_LACKS) or _SQLITE_INSERT_LACKS in said:
            return said.splitlines()[0]
    return None


def is_transient(exc: BaseException) -> bool:
    """Did the database fail to answer (as opposed to refusing the work)?"""
    if schema_mismatch(exc) is not None:
        return False
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def committed_writes() -> int:
    """Transactions with writes this thread has sent COMMIT for, so far."""
    count: int = getattr(_counts, "value", 0)
    return count


def _note_statement(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
    if statement.lstrip()[:6].lower() in _WRITES:
        conn.info[_WROTE] = True


def _note_commit(conn: Any) -> None:
    if conn.info.pop(_WROTE, False):
        _counts.value = committed_writes() + 1


def _note_rollback(conn: Any) -> None:
    conn.info.pop(_WROTE, None)


def watch_writes(engine: Engine) -> None:
    """Count `engine`'s committed writes (see `committed_writes`)."""
    event.listen(engine, "before_cursor_execute", _note_statement)
    event.listen(engine, "commit", _note_commit)
    event.listen(engine, "rollback", _note_rollback)
