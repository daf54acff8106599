"""Slack deliveries already taken, shared by every replica through the
database: a signed request replayed (or retried by Slack) within the window
in which its signature is still accepted finds its key here and is dropped.

Slack refuses nothing itself: a signed request stays valid for five minutes
(https://api.slack.com/authentication/verifying-requests-from-slack), so
whoever captures one can send it again, to any replica, in that time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import SQLModel, col

from bot.store.tables.slack_deliveries import SlackDelivery

if TYPE_CHECKING:
    from sqlalchemy.dialects.postgresql import Insert as PgInsert
    from sqlalchemy.dialects.sqlite import Insert as SqliteInsert

log = logging.getLogger(__name__)

SLACK_DELIVERY = "slack_delivery"  # SlackDelivery's table

# Longer than the five minutes a signature is accepted, plus clock skew
# between Slack and us, so no replayable request outlives its key.
KEEP = timedelta(minutes=10)
# Expired keys are deleted on insert, at most this often per process.
PRUNE_EVERY = timedelta(minutes=1)
# How long a request waits for its key to be written before it goes on.
WAIT_SECONDS = 2.0
# The writer thread ends after this long without work (started again on demand).
_IDLE_SECONDS = 30.0


def _wall_clock() -> datetime:
    return datetime.now(UTC)


class DeliveryKeys:
    """`first(key)` is True for exactly one caller per key within `KEEP`,
    across processes (the key is the table's primary key).

    Every Slack request asks before its listener runs, so the ack waits on
    it: the keys of concurrent requests are written by one thread in one
    transaction (a group commit), not one commit per request, which under a
    burst would queue the acks behind SQLite's single writer."""

    def __init__(
        self,
        engine: Engine,
        *,
        keep: timedelta = KEEP,
        now: Callable[[], datetime] = _wall_clock,
        wait: float = WAIT_SECONDS,
    ) -> None:
        # Wall time, not the bot's (possibly scaled) clock: the window is
        # Slack's signature window.
        self.engine, self.keep, self.now, self.wait = engine, keep, now, wait
        self._pruned_at: datetime | None = None
        self._pending: list[tuple[str, Future[bool]]] = []
        self._cond = threading.Condition()
        self._writer: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"DeliveryKeys(keep={self.keep})"

    def first(self, key: str) -> bool:
        """Raises the database's error, or TimeoutError after `wait` seconds."""
        done: Future[bool] = Future()
        with self._cond:
            self._pending.append((key, done))
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write, name="delivery-keys", daemon=True
                )
                self._writer.start()
            self._cond.notify()
        return done.result(timeout=self.wait)

    def _write(self) -> None:
        while True:
            with self._cond:
                if not self._pending:
                    self._cond.wait(timeout=_IDLE_SECONDS)
                if not self._pending:
                    self._writer = None
                    return
                batch, self._pending = self._pending, []
            try:
                won = self._take([key for key, _ in batch])
            except Exception as exc:  # handed to every waiting request
                for _, done in batch:
                    done.set_exception(exc)
                continue
            for key, done in batch:
                done.set_result(key in won)
                won.discard(key)  # the same key twice in one batch: the first wins

    def _take(self, keys: list[str]) -> set[str]:
        """Insert the keys; those inserted, or retaken from a row older than
        `keep` that was not pruned yet, are new deliveries."""
        now = self.now()
        self._prune(now)
        table: Any = SQLModel.metadata.tables[SLACK_DELIVERY]
        # Imported here: a dialect's module loads only when the engine speaks it
        # (the PostgreSQL one costs a SQLite CLI command ~20 ms, bench/cli_start.py).
        values = [{"key": k, "seen_at": now} for k in dict.fromkeys(keys)]
        rows: PgInsert | SqliteInsert
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects import postgresql

            rows = postgresql.insert(table).values(values)
        else:
            from sqlalchemy.dialects import sqlite

            rows = sqlite.insert(table).values(values)
        upsert = rows.on_conflict_do_update(
            index_elements=[table.c.key],
            set_={"seen_at": rows.excluded.seen_at},
            where=table.c.seen_at < now - self.keep,
        ).returning(table.c.key)
        with self.engine.begin() as conn:
            return set(conn.execute(upsert).scalars())

    def _prune(self, now: datetime) -> None:
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now  # only the writer thread gets here
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    delete(SlackDelivery).where(col(SlackDelivery.seen_at) < now - self.keep)
                )
        except OperationalError as exc:  # a busy database: prune next time
            log.warning("could not prune old Slack delivery keys: %s", type(exc).__name__)
