"""Claim periodic work once across every replica: a row per `(kind, slot)`.

A slot names the occurrence, not the moment of the tick: e.g. kind
`window_opening`, slot `weekend:2026-11-28T22:00+01:00`. Whoever inserts
the row first does the work; every other replica's insert hits the unique
constraint and skips it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from bot.store.db import RecordSession
from bot.store.tables.jobs import Tick


class TickClaims:
    """`claim` is asked every tick for as long as a notice is due (a
    reminder window lasts hours), so a slot this process has seen settled,
    won or lost, is answered from memory: a claimed slot never reopens."""

    def __init__(
        self,
        engine: Engine,
        clock: Callable[[], datetime],
        worker: str,
        *,
        remember: int = 10_000,
    ) -> None:
        self.engine, self.clock, self.worker = engine, clock, worker
        self._settled: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._remember = remember
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TickClaims(worker={self.worker!r})"

    def claimed(self, kind: str, slot: str) -> bool:
        """Has anyone claimed `(kind, slot)`? A read: it claims nothing."""
        with self._lock:
            if (kind, slot) in self._settled:
                return True
        with RecordSession(self.engine) as session:
            found = session.exec(
                select(Tick.id).where(Tick.kind == kind, Tick.slot == slot)
            ).first()
        return found is not None

    def claimed_at(self, kind: str, slot: str) -> datetime | None:
        """When `(kind, slot)` was claimed; None if it never was. A read."""
        with RecordSession(self.engine) as session:
            return session.exec(
                select(Tick.claimed_at).where(Tick.kind == kind, Tick.slot == slot)
            ).first()

    def claim(self, kind: str, slot: str) -> bool:
        """True for exactly one caller per `(kind, slot)`, ever."""
        key = (kind, slot)
        with self._lock:
            if key in self._settled:
                return False
        with RecordSession(self.engine) as session:
            session.add(Tick(kind=kind, slot=slot, worker=self.worker, claimed_at=self.clock()))
            try:
                session.commit()
                won = True
            except IntegrityError:
                session.rollback()
                won = False
        with self._lock:
            self._settled[key] = None
            while len(self._settled) > self._remember:
                self._settled.popitem(last=False)
        return won
