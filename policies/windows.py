"""Change windows in time: when one opens, whether it is open now.

Cron matches are computed on the window's local wall clock (so "0 22 * * 6"
means 22:00 in Berlin in summer and winter alike) and then made absolute with
zoneinfo; `duration` is elapsed time from that instant. A start that falls in
a spring-forward gap is read with the offset before the change (zoneinfo's
fold=0), i.e. it moves forward by the gap; in the repeated autumn hour the
first occurrence counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter  # type: ignore[import-untyped]

from policies.schema import Scope

# Two wall-clock matches can map to one instant around DST; a few steps suffice.
_MAX_STEPS = 8


@dataclass(frozen=True)
class Window:
    name: str
    cron: str
    duration: timedelta
    tz: ZoneInfo
    scope: Scope

    def _local(self, now: datetime) -> datetime:
        # Whole seconds: cron matches fall on :00, and croniter's prev/next are
        # strict, so sub-second noise would let a start slip past `now`.
        return now.astimezone(self.tz).replace(tzinfo=None, microsecond=0)

    def _absolute(self, wall: datetime) -> datetime:
        return wall.replace(tzinfo=self.tz).astimezone(UTC)

    def last_start(self, now: datetime) -> datetime:
        """The latest opening at or before `now` (UTC)."""
        it = croniter(self.cron, self._local(now) + timedelta(seconds=1))
        for _ in range(_MAX_STEPS):
            start = self._absolute(it.get_prev(datetime))
            if start <= now:
                return start
        raise ValueError(f"window {self.name!r}: no opening found before {now.isoformat()}")

    def next_start(self, now: datetime) -> datetime:
        """The first opening after `now` (UTC)."""
        it = croniter(self.cron, self._local(now))
        for _ in range(_MAX_STEPS):
            start = self._absolute(it.get_next(datetime))
            if start > now:
                return start
        raise ValueError(f"window {self.name!r}: no opening found after {now.isoformat()}")

    def open_until(self, now: datetime) -> datetime | None:
        """When the window open at `now` closes, or None if it is closed.
        The latest opening has the latest close, so checking it suffices."""
        end = self.last_start(now) + self.duration
        return end if now < end else None

    def local_text(self, instant: datetime) -> str:
        local = instant.astimezone(self.tz)
        return f"{local:%a %Y-%m-%d %H:%M} {self.tz.key}"
