"""Telling a database outage from a bug, and knowing what it interrupted.

`is_transient` names the errors that mean "the database could not be
reached or dropped the connection" (SQLAlchemy's `OperationalError` and
`InterfaceError`, or any DBAPI error that invalidated its connection): the
same work may succeed in a minute. A constraint violation or a bad
statement is not transient.

`committed_writes` counts, per thread, the transactions that wrote
something and were sent a COMMIT (counted when the COMMIT is sent, so a
commit whose answer was lost still counts). A caller that saw no new count
since it started, when the database failed, can truthfully say that
nothing was changed; otherwise it must not.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

_WROTE = "checkpoint_bot_wrote"
_WRITES = ("insert", "update", "delete")
_counts = threading.local()


def is_transient(exc: BaseException) -> bool:
    """Did the database fail to answer (as opposed to refusing the work)?"""
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
