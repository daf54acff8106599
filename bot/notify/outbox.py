"""The Slack outbox: the durable list of changes whose thread is behind
their record, and the drainer that brings them up to date.

Every write to a change appends a `slack_outbox` row in the same
transaction (`bot.changes.record`), so a process that dies after the
commit (SIGTERM mid-burst, a crash, a deploy) loses no post: whichever
process drains next (every bot replica and worker drains, after each
commit and on a timer) posts it.

Posted once: a drainer claims all pending rows of one change with a lease
(a conditional UPDATE, so two drainers never hold the same change), and
the thread sync it runs claims each post itself (`Change.thread_ts`,
`ChangeEvent.slack_ts`) before posting. In order per change: one sync
posts the root and then the replies in the record's order. A sync that
could not finish (another process holds a post's claim, Slack refused)
leaves the rows pending with a growing backoff; the lease of a drainer
that died runs out and another takes the rows.

What this cannot promise: a process killed between Slack's answer to a
post and the write of its `ts` leaves a claim that goes stale after two
minutes and is posted again. `chat.postMessage` has no idempotency key
(https://api.slack.com/methods/chat.postMessage), so that window, the
length of one database write, stays.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, delete, exists, func, or_, select, update
from sqlalchemy.engine import Engine

from bot.store.db import session_scope
from bot.store.outage import is_transient
from bot.store.tables import change_ref
from bot.store.tables.slack import SlackOutbox

log = logging.getLogger(__name__)

_BOX = SlackOutbox.__table__  # type: ignore[attr-defined]

# Longer than one change's sync can take (a few paced posts, Slack's own
# retries of a 429), so a live drainer never loses its lease mid-sync.
LEASE = timedelta(seconds=120)
# Backoff after a sync that could not finish: doubling from 2 s up to 5 min.
_FIRST_RETRY, _LAST_RETRY = timedelta(seconds=2), timedelta(minutes=5)
# After this many failed tries (about an hour and a half of backoff) the
# entry is given up, with an error in the log; the change keeps its record.
MAX_ATTEMPTS = 25
# Done entries are kept this long for inspection, then pruned.
KEEP_DONE = timedelta(days=1)

# Brings a change's thread up to date; True when every post it implies is
# posted, False when some post is claimed by another process or held back
# for now (a wave's root waits until its members are recorded).
Sync = Callable[[int], bool]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def retry_after(attempts: int) -> timedelta:
    """The backoff after `attempts` failed tries (pure)."""
    if attempts < 1:
        return timedelta(0)
    backoff: timedelta = _FIRST_RETRY * 2 ** min(attempts - 1, 16)
    return min(_LAST_RETRY, backoff)


class OutboxDrainer:
    def __init__(
        self,
        engine: Engine,
        sync: Sync,
        owner: str,
        *,
        now: Callable[[], datetime] = _utcnow,
        lease: timedelta = LEASE,
    ) -> None:
        # Leases and backoffs are real time (never the demo's fast clock):
        # they measure how long a post to Slack may take.
        self._engine, self._sync, self.owner = engine, sync, owner
        self._now, self.lease = now, lease
        self._stop = threading.Event()

    def __repr__(self) -> str:
        return f"OutboxDrainer(owner={self.owner!r})"

    def stop(self) -> None:
        """Finish the post in flight, start no other."""
        self._stop.set()

    # -- finding and claiming ------------------------------------------------

    def due(self, limit: int = 500) -> list[int]:
        """Changes with pending entries nobody holds, oldest entry first."""
        now = self._now()
        with session_scope(self._engine) as s:
            rows = s.connection().execute(
                select(_BOX.c.change_id, func.min(_BOX.c.id).label("first"))
                .where(_BOX.c.done_at.is_(None), self._free(now), self._due(now))
                .group_by(_BOX.c.change_id)
                .order_by("first")
                .limit(limit)
            )
            return [int(r.change_id) for r in rows]

    def pending(self) -> int:
        """Entries not done yet (for tests, health and docs)."""
        with session_scope(self._engine) as s:
            return int(
                s.connection()
                .execute(select(func.count()).select_from(_BOX).where(_BOX.c.done_at.is_(None)))
                .scalar_one()
            )

    def has_pending(self, change_id: int) -> bool:
        """Whether the change has entries not done (held, backing off or due)."""
        with session_scope(self._engine) as s:
            found = s.connection().execute(
                select(_BOX.c.id)
                .where(_BOX.c.change_id == change_id, _BOX.c.done_at.is_(None))
                .limit(1)
            )
            return found.first() is not None

    @staticmethod
    def _free(now: datetime) -> ColumnElement[bool]:
        return or_(_BOX.c.lease_until.is_(None), _BOX.c.lease_until < now)

    @staticmethod
    def _due(now: datetime) -> ColumnElement[bool]:
        return or_(_BOX.c.not_before.is_(None), _BOX.c.not_before <= now)

    def claim(self, change_id: int) -> int | None:
        """Lease every pending entry of the change; the highest id taken,
        or None if there is none or another drainer holds the change."""
        now = self._now()
        other = _BOX.alias("held")
        held = exists().where(
            other.c.change_id == change_id,
            other.c.done_at.is_(None),
            other.c.lease_until >= now,
        )
        with session_scope(self._engine) as s:
            rows = (
                s.connection()
                .execute(
                    update(_BOX)
                    .where(
                        _BOX.c.change_id == change_id,
                        _BOX.c.done_at.is_(None),
                        self._free(now),
                        ~held,
                    )
                    .values(claimed_by=self.owner, lease_until=now + self.lease)
                    .returning(_BOX.c.id)
                )
                .all()
            )
        return max((int(r.id) for r in rows), default=None)

    # -- draining ------------------------------------------------------------

    def drain_change(self, change_id: int) -> bool:
        """Sync one change if it has entries nobody holds; True if it is
        (now) up to date as far as this drainer knows."""
        if self._stop.is_set():
            return False
        upto = self.claim(change_id)
        if upto is None:
            return False
        try:
            complete = self._sync(change_id)
        except Exception as exc:
            if is_transient(exc):
                # The database stopped answering: every change would fail the
                # same way. The drain ends here and its caller tells it once
                # (bot/store/outage_log.py); the claim's lease lets it go.
                raise
            self._release(change_id, upto, type(exc).__name__)
            log.warning(
                "the Slack thread of %s is behind its record (%s); retried later",
                change_ref(change_id),
                type(exc).__name__,
                exc_info=True,
            )
            return False
        if not complete:
            self._release(change_id, upto, "a post is claimed by another process or held back")
            return False
        self._done(change_id, upto)
        return True

    def drain(self, limit: int = 500) -> int:
        """Sync every change that is due, oldest first; how many were synced."""
        synced = 0
        for change_id in self.due(limit):
            if self._stop.is_set():
                break
            synced += self.drain_change(change_id)
        return synced

    def prune(self, keep: timedelta = KEEP_DONE) -> int:
        cutoff = self._now() - keep
        with session_scope(self._engine) as s:
            gone = s.connection().execute(
                delete(_BOX).where(_BOX.c.done_at.is_not(None), _BOX.c.done_at < cutoff)
            )
            return int(gone.rowcount)

    def _done(self, change_id: int, upto: int) -> None:
        with session_scope(self._engine) as s:
            s.connection().execute(
                update(_BOX)
                .where(
                    _BOX.c.change_id == change_id,
                    _BOX.c.id <= upto,
                    _BOX.c.claimed_by == self.owner,
                    _BOX.c.done_at.is_(None),
                )
                .values(done_at=self._now(), lease_until=None, error=None)
            )

    def _release(self, change_id: int, upto: int, why: str) -> None:
        now = self._now()
        with session_scope(self._engine) as s:
            conn = s.connection()
            attempts = (
                conn.execute(
                    select(func.max(_BOX.c.attempts)).where(
                        _BOX.c.change_id == change_id,
                        _BOX.c.id <= upto,
                        _BOX.c.claimed_by == self.owner,
                        _BOX.c.done_at.is_(None),
                    )
                ).scalar()
                or 0
            ) + 1
            given_up = attempts >= MAX_ATTEMPTS
            conn.execute(
                update(_BOX)
                .where(
                    _BOX.c.change_id == change_id,
                    _BOX.c.id <= upto,
                    _BOX.c.claimed_by == self.owner,
                    _BOX.c.done_at.is_(None),
                )
                .values(
                    lease_until=None,
                    attempts=attempts,
                    not_before=now + retry_after(attempts),
                    error=why[:500],
                    done_at=now if given_up else None,
                )
            )
        if given_up:
            log.error(
                "gave up bringing the Slack thread of %s up to date after %s tries: %s",
                change_ref(change_id),
                attempts,
                why,
            )
