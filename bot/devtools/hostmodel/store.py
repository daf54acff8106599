"""Where the modelled hosts' state lives between calls.

    HostStateStore (Protocol)
    ├── InMemoryHostStateStore   tests and a throwaway demo; one process
    └── SqlHostStateStore        table `devtools_host_state`; any number of processes

`edit(host)` is the only way to change a host: it loads the state for
update, yields it, saves it when the block ends cleanly and discards it when
the block raises, so a failed host operation leaves no half-done change.
Writers to one host are serialized (threads, and with SQL, processes).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

from sqlalchemy.engine import Engine
from sqlmodel import select

from bot.devtools.hostmodel.state import HostState
from bot.devtools.hostmodel.table import HostStateRow, create_tables
from bot.store.db import session_scope


class UnknownHost(KeyError):
    """The store holds no state for this host name."""

    def __init__(self, host: str) -> None:
        super().__init__(host)
        self.host = host


class HostStateStore(Protocol):
    def read(self, host: str) -> HostState:
        """A detached copy; raises UnknownHost."""
        ...

    def edit(self, host: str) -> AbstractContextManager[HostState]:
        """Exclusive, transactional access to one host; raises UnknownHost."""
        ...

    def seed(self, state: HostState) -> None:
        """Create or replace a host's state."""
        ...

    def hosts(self) -> list[str]:
        """Host names, sorted."""
        ...


class InMemoryHostStateStore:
    """Keeps each host as its JSON-shaped dict, so every read and edit works
    on a deep copy and nothing unserializable can sneak into the state."""

    def __init__(self) -> None:
        self._docs: dict[str, dict[str, Any]] = {}
        self._guard = threading.Lock()
        self._host_locks: dict[str, threading.Lock] = {}

    def _lock_for(self, host: str) -> threading.Lock:
        with self._guard:
            return self._host_locks.setdefault(host, threading.Lock())

    def _load(self, host: str) -> HostState:
        with self._guard:
            doc = self._docs.get(host)
            if doc is None:
                raise UnknownHost(host)
            return HostState.from_dict(doc)

    def read(self, host: str) -> HostState:
        return self._load(host)

    @contextmanager
    def edit(self, host: str) -> Iterator[HostState]:
        with self._lock_for(host):
            state = self._load(host)
            yield state
            doc = state.to_dict()
            with self._guard:
                self._docs[host] = doc

    def seed(self, state: HostState) -> None:
        doc = state.to_dict()
        with self._lock_for(state.host), self._guard:
            self._docs[state.host] = doc

    def hosts(self) -> list[str]:
        with self._guard:
            return sorted(self._docs)


class SqlHostStateStore:
    """One `devtools_host_state` row per host (created here on first use:
    the bot's migrations know nothing of the dev tools). `edit` locks the row for the whole
    transaction: `SELECT ... FOR UPDATE` on PostgreSQL; on SQLite the
    engine's `BEGIN IMMEDIATE` (bot.store.db) already holds the database's
    write lock from the first statement, and SQLAlchemy drops FOR UPDATE."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        create_tables(engine)

    def read(self, host: str) -> HostState:
        with session_scope(self._engine) as session:
            row = session.get(HostStateRow, host)
            if row is None:
                raise UnknownHost(host)
            return HostState.from_dict(row.state)

    @contextmanager
    def edit(self, host: str) -> Iterator[HostState]:
        with session_scope(self._engine) as session:
            statement = select(HostStateRow).where(HostStateRow.host == host).with_for_update()
            row = session.exec(statement).one_or_none()
            if row is None:
                raise UnknownHost(host)
            state = HostState.from_dict(row.state)
            yield state
            # A new dict object, so the JSON column is seen as changed.
            row.state = state.to_dict()
            row.version += 1
            session.add(row)

    def seed(self, state: HostState) -> None:
        with session_scope(self._engine) as session:
            statement = (
                select(HostStateRow).where(HostStateRow.host == state.host).with_for_update()
            )
            row = session.exec(statement).one_or_none()
            if row is None:
                session.add(HostStateRow(host=state.host, state=state.to_dict()))
            else:
                row.state = state.to_dict()
                row.version += 1
                session.add(row)

    def hosts(self) -> list[str]:
        with session_scope(self._engine) as session:
            return sorted(session.exec(select(HostStateRow.host)).all())
