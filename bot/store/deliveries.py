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
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col

from bot.store.models import SlackDelivery

log = logging.getLogger(__name__)

# Longer than the five minutes a signature is accepted, plus clock skew
# between Slack and us, so no replayable request outlives its key.
KEEP = timedelta(minutes=10)
# Expired keys are deleted on insert, at most this often per process.
PRUNE_EVERY = timedelta(minutes=1)


def _wall_clock() -> datetime:
    return datetime.now(UTC)


class DeliveryKeys:
    """`first(key)` is True for exactly one caller per key within `KEEP`,
    across processes (the key is the table's primary key)."""

    def __init__(
        self,
        engine: Engine,
        *,
        keep: timedelta = KEEP,
        now: Callable[[], datetime] = _wall_clock,
    ) -> None:
        # Wall time, not the bot's (possibly scaled) clock: the window is
        # Slack's signature window.
        self.engine, self.keep, self.now = engine, keep, now
        self._pruned_at: datetime | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"DeliveryKeys(keep={self.keep})"

    def first(self, key: str) -> bool:
        now = self.now()
        self._prune(now)
        with Session(self.engine) as session:
            session.add(SlackDelivery(key=key, seen_at=now))
            try:
                session.commit()
                return True
            except IntegrityError:
                session.rollback()
            # Taken before: a replay, unless that row is older than the
            # window (not pruned yet); then it is a new delivery.
            old = session.get(SlackDelivery, key)
            if old is None or old.seen_at >= now - self.keep:
                return old is None and self._retake(session, key, now)
            old.seen_at = now
            session.add(old)
            session.commit()
            return True

    def _retake(self, session: Session, key: str, now: datetime) -> bool:
        """The row vanished between the insert and the read (pruned)."""
        session.add(SlackDelivery(key=key, seen_at=now))
        try:
            session.commit()
            return True
        except IntegrityError:
            session.rollback()
            return False

    def _prune(self, now: datetime) -> None:
        with self._lock:
            if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
                return
            self._pruned_at = now
        try:
            with Session(self.engine) as session:
                session.execute(
                    delete(SlackDelivery).where(col(SlackDelivery.seen_at) < now - self.keep)
                )
                session.commit()
        except OperationalError as exc:  # a busy database: prune next time
            log.warning("could not prune old Slack delivery keys: %s", type(exc).__name__)
