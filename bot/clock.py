"""Clocks. Everything that needs the time is handed one of these."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


def utc_text(at: datetime) -> str:
    """`at` as the record writes a time: "2026-12-04 17:00 UTC" (a naive
    datetime is UTC, as the store keeps them). Slack shows it in each
    reader's own zone (templates/slack_times.py)."""
    instant = at if at.tzinfo else at.replace(tzinfo=UTC)
    return f"{instant.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def speed_of(clock: Clock) -> float:
    """How many clock seconds pass per real second (1 for real clocks)."""
    speed = getattr(clock, "speed", 1.0)
    return float(speed) if isinstance(speed, int | float) and speed > 0 else 1.0


def real_seconds(clock: Clock, delta: timedelta) -> float:
    """`delta` of `clock` time in real seconds: what a timer or a queue's
    delay needs when the clock runs faster than the wall (the demo's --speed)."""
    return delta.total_seconds() / speed_of(clock)


class ScaledClock:
    """Real time running `speed` times faster from `start` (the demo's
    `--speed`, and tests that need merges to finish in a blink)."""

    def __init__(self, speed: float, start: datetime | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._start = start or system_clock()
        self._t0 = time.monotonic()

    def __call__(self) -> datetime:
        elapsed = time.monotonic() - self._t0
        return self._start + timedelta(seconds=elapsed * self.speed)

    def __repr__(self) -> str:
        return f"ScaledClock(speed={self.speed})"


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            return self._now

    def __repr__(self) -> str:
        return f"ManualClock({self._now.isoformat()})"
