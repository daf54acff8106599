"""Periodic work keyed by (kind, slot): any number of tickers, one winner."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from sqlalchemy.engine import Engine

from bot.jobs.ticks import TickClaims
from bot.store.db import make_engine

NOW = datetime(2026, 11, 28, 21, 0, tzinfo=UTC)


def test_one_claim_per_slot(engine: Engine) -> None:
    first = TickClaims(engine, lambda: NOW, "replica-a")
    second = TickClaims(engine, lambda: NOW, "replica-b")
    assert first.claim("window_opening", "weekend:2026-11-28T22:00+01:00")
    assert not second.claim("window_opening", "weekend:2026-11-28T22:00+01:00")
    assert second.claim("window_opening", "weekend:2026-12-05T22:00+01:00")
    assert second.claim("window_closing", "weekend:2026-11-28T22:00+01:00")


def test_racing_schedulers_send_one_notice(db_url: str) -> None:
    engines = [make_engine(db_url) for _ in range(6)]
    barrier = threading.Barrier(len(engines))
    notices: list[str] = []
    lock = threading.Lock()

    def tick(index: int) -> None:
        claims = TickClaims(engines[index], lambda: NOW, f"replica-{index}")
        barrier.wait(timeout=10)
        if claims.claim("ttl_reminder", "CHG-0042:24h"):
            with lock:
                notices.append(f"replica-{index}")

    threads = [threading.Thread(target=tick, args=(i,)) for i in range(len(engines))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    for e in engines:
        e.dispose()
    assert len(notices) == 1
