"""Claim periodic work once across every replica: a row per `(kind, slot)`.

A slot names the occurrence, not the moment of the tick: e.g. kind
`window_opening`, slot `weekend:2026-11-28T22:00+01:00`. Whoever inserts
the row first does the work; every other replica's insert hits the unique
constraint and skips it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from bot.store.models import Tick


class TickClaims:
    def __init__(self, engine: Engine, clock: Callable[[], datetime], worker: str) -> None:
        self.engine, self.clock, self.worker = engine, clock, worker

    def claim(self, kind: str, slot: str) -> bool:
        """True for exactly one caller per `(kind, slot)`, ever."""
        with Session(self.engine) as session:
            session.add(Tick(kind=kind, slot=slot, worker=self.worker, claimed_at=self.clock()))
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                return False
        return True
