"""App Homes behind their change, across processes (the `stale_home` table).

A change's Home views are re-published by the process that renders them:
the one running the Slack app (`serve`), whose refresher listens to its
thread notifier (handlers/home_refresh.py). A process without a Slack app
(`checkpoint-bot worker` behind `serve --no-worker`, a CLI command) syncs
the change's thread after its job, but has no Home to publish: it records
the change here instead, and every serving process claims what is recorded
on its tick and publishes the Homes (docs/operations.md, "App Homes across
processes").

Claimed once: a claim is a conditional UPDATE that sets a lease on rows
nobody holds, so two serving processes never take the same row; the rows
are deleted once their Homes are published. A process that dies between
the claim and the delete leaves a lease that runs out, and another takes
the rows. Bounded: a change with a row nobody has claimed yet gets no
second one (the publish reads the change as it is then), and rows that no
serving process took within a day are pruned by whoever records next.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, delete, func, insert, or_, select, update
from sqlalchemy.engine import Engine

from bot.store.db import session_scope
from bot.store.tables.stale_homes import StaleHome

log = logging.getLogger(__name__)

_TABLE = StaleHome.__table__  # type: ignore[attr-defined]

# Longer than one round of publishes can take (views.publish is paced at a
# few per second, https://api.slack.com/methods/views.publish is Tier 4), so
# a live serving process never loses its claim mid-round.
LEASE = timedelta(seconds=120)
# Rows no serving process took (none is running) are of no use after this.
KEEP = timedelta(days=1)
# At most this many rows per claim: one tick's round stays short.
CLAIM_LIMIT = 200


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class HomeClaim:
    """Rows one process holds: their ids (to delete once published) and
    the changes they name (each once)."""

    owner: str
    ids: tuple[int, ...]
    change_ids: tuple[int, ...]

    def __bool__(self) -> bool:
        return bool(self.ids)


class StaleHomes:
    def __init__(self, engine: Engine, *, now: Callable[[], datetime] = _utcnow) -> None:
        # Leases are real time (never the demo's fast clock): they measure
        # how long a round of publishes may take.
        self._engine, self._now = engine, now
        self._pruned_at: datetime | None = None

    def record(self, change_id: int) -> None:
        """The Homes `change_id` concerns are behind it; folded into a row
        for the same change that nobody has claimed yet. (Two recorders
        racing may both insert: the claim names each change once anyway.)"""
        now = self._now()
        with session_scope(self._engine) as s:
            conn = s.connection()
            waiting = conn.execute(
                select(_TABLE.c.id)
                .where(_TABLE.c.change_id == change_id, _TABLE.c.claimed_by.is_(None))
                .limit(1)
            ).first()
            if waiting is None:
                conn.execute(insert(_TABLE).values(change_id=change_id, created_at=now))
        self._prune_now_and_then(now)

    def claim(self, owner: str, *, limit: int = CLAIM_LIMIT, lease: timedelta = LEASE) -> HomeClaim:
        """Lease up to `limit` rows nobody holds, oldest first."""
        now = self._now()
        with session_scope(self._engine) as s:
            conn = s.connection()
            candidates = [
                int(r.id)
                for r in conn.execute(
                    select(_TABLE.c.id).where(self._free(now)).order_by(_TABLE.c.id).limit(limit)
                )
            ]
            if not candidates:
                return HomeClaim(owner, (), ())
            # The WHERE is checked again on each row as it is updated: under
            # READ COMMITTED, PostgreSQL re-evaluates it on a row another
            # transaction changed meanwhile
            # (https://www.postgresql.org/docs/current/transaction-iso.html#XACT-READ-COMMITTED),
            # and SQLite lets one writer in at a time
            # (https://www.sqlite.org/lockingv3.html), so a row another
            # process took in between is not taken twice.
            rows = conn.execute(
                update(_TABLE)
                .where(_TABLE.c.id.in_(candidates), self._free(now))
                .values(claimed_by=owner, lease_until=now + lease)
                .returning(_TABLE.c.id, _TABLE.c.change_id)
            ).all()
        ids = tuple(sorted(int(r.id) for r in rows))
        changes = tuple(dict.fromkeys(int(r.change_id) for r in sorted(rows, key=lambda r: r.id)))
        return HomeClaim(owner, ids, changes)

    def done(self, claim: HomeClaim) -> None:
        """The claim's Homes were published: its rows go (only while the
        claim is still this owner's; a retaken row stays for its new owner)."""
        if not claim.ids:
            return
        with session_scope(self._engine) as s:
            s.connection().execute(
                delete(_TABLE).where(_TABLE.c.id.in_(claim.ids), _TABLE.c.claimed_by == claim.owner)
            )

    def pending(self) -> int:
        """Rows not published yet (for tests and docs)."""
        with session_scope(self._engine) as s:
            return int(
                s.connection().execute(select(func.count()).select_from(_TABLE)).scalar_one()
            )

    @staticmethod
    def _free(now: datetime) -> ColumnElement[bool]:
        return or_(_TABLE.c.lease_until.is_(None), _TABLE.c.lease_until < now)

    def _prune_now_and_then(self, now: datetime) -> None:
        if self._pruned_at is not None and now - self._pruned_at < timedelta(hours=1):
            return
        self._pruned_at = now
        with session_scope(self._engine) as s:
            gone = s.connection().execute(delete(_TABLE).where(_TABLE.c.created_at < now - KEEP))
        if gone.rowcount:
            log.info("pruned %s App Home refreshes no serving process took", gone.rowcount)
