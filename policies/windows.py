"""Change windows in time: when one opens, whether it is open now.

Openings are `cron` matches or `rrule` (RFC 5545) occurrences computed on
the window's local wall clock (so "0 22 * * 6" means 22:00 in Berlin in
summer and winter alike) and then made absolute with zoneinfo; `duration`
is elapsed time from that instant, so a window is always exactly as long
as it says (22:00 + 6h closes at 03:00 on the night the clocks go back). A
start that falls in a spring-forward gap is read with the offset before the
change (zoneinfo's fold=0), i.e. it moves forward by the gap; in the
repeated autumn hour the first occurrence counts.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from policies.recurrence import parse_rrule
from policies.schema import Scope
from policies.scopes import ScopeMatcher, compile_scope

# Two wall-clock matches can map to one instant around DST; a few steps suffice
# looking back.
_MAX_STEPS = 8
# Looking forward from inside the repeated autumn hour, every wall-clock match
# left in it maps to an instant already past (the first occurrence counts):
# a cron matching each minute has up to 60 of them per hour of fold. A day of
# minutes is past any fold there is.
_MAX_NEXT_STEPS = 24 * 60 + _MAX_STEPS
# A name with these is an fnmatch pattern, not one VM's name.
_GLOB = frozenset("*?[")


def _either(values: list[str], last: str = "or") -> str:
    return values[0] if len(values) == 1 else f"{', '.join(values[:-1])} {last} {values[-1]}"


def describe_scope(scope: Scope) -> str:
    """`scope` as a reader says it: "APP01 and WEB01", "VMs tagged env=prod",
    "VMs named WEB* on host group prod-cluster", "every VM". Scope.describe
    stays the config's own terms (the policy explainer, the rules' messages)."""
    if scope.is_everything:
        return "every VM"
    names = list(scope.names)
    plain = not any(_GLOB & set(n) for n in names)
    if names and plain and not (scope.tags or scope.host_groups or scope.domains or scope.roles):
        # A list of VMs is each of them, so "and" (not the criterion's "or").
        return _either(names, "and")
    parts: list[str] = []
    if names:
        parts.append(f"named {_either(names)}")
    if scope.tags:
        parts.append("tagged " + " and ".join(f"{k}={v}" for k, v in scope.tags.items()))
    for label, values in (
        ("on host group", scope.host_groups),
        ("in domain", scope.domains),
        ("with role", scope.roles),
    ):
        if values:
            parts.append(f"{label} {_either(list(values))}")
    # Every criterion must hold: one phrase per criterion, read together.
    return "VMs " + " ".join(parts)


class WindowNeverOpens(ValueError):
    """A window with no opening after an instant: its cron or RRULE names
    no date there (Feb 30). The loader refuses such a window
    (`policies.config`), so a decision meets this only for a window built
    without it."""


@dataclass(frozen=True)
class Window:
    name: str
    cron: str | None
    duration: timedelta
    tz: ZoneInfo
    scope: Scope
    rrule: str | None = None
    # Where its notices go (else the bot's changes channel), and how early.
    channel: str | None = None
    opening_notice: timedelta = timedelta(minutes=30)
    closing_notice: timedelta = timedelta(minutes=30)
    # Post every notice, even one about nothing (`notices.always`).
    notices_always: bool = False
    matcher: ScopeMatcher = field(init=False, repr=False, compare=False)
    _cron: Any = field(init=False, repr=False, compare=False, default=None)
    # The last span between two openings asked about: (opening at or before,
    # next opening after). Any instant inside it has the same answers, and
    # decisions come in bunches close in time, so most ask no cron at all.
    _span: dict[str, tuple[datetime | None, datetime]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.rrule is None):
            raise ValueError(f"window {self.name!r}: give exactly one of cron and rrule")
        object.__setattr__(self, "matcher", compile_scope(self.scope))
        if self.cron is not None:
            # Parsed once, here: croniter expands the expression when it is
            # made (its `_expand`), which took most of a decision's time.
            # Each use copies this and sets its own start (`_cron_at`).
            from croniter import croniter  # type: ignore[import-untyped]  # only for cron windows

            object.__setattr__(self, "_cron", croniter(self.cron, datetime(2000, 1, 1)))

    def _cron_at(self, start: datetime) -> Any:
        """An iterator of this window's cron from `start`: a copy of the
        parsed expression, so concurrent decisions share nothing mutable."""
        it = copy.copy(self._cron)
        it.set_current(start, force=True)
        return it

    @property
    def schedule_text(self) -> str:
        return f"cron {self.cron}" if self.cron else f"RRULE {self.rrule}"

    @property
    def applies_to(self) -> str:
        """The VMs the window governs, in plain words ("APP01", "VMs tagged
        env=prod"), for people reading its notices and listings."""
        return describe_scope(self.scope)

    def _wall_prev(self, local: datetime) -> Iterator[datetime]:
        """Wall-clock openings at or before `local`, newest first."""
        if self.cron is not None:
            it = self._cron_at(local + timedelta(seconds=1))
            while True:
                yield it.get_prev(datetime)
        rule = parse_rrule(str(self.rrule))
        at = local
        while (found := rule.before(at, inc=True)) is not None:
            yield found
            at = found - timedelta(seconds=1)

    def _wall_next(self, local: datetime) -> Iterator[datetime]:
        """Wall-clock openings after `local`, oldest first."""
        if self.cron is not None:
            it = self._cron_at(local)
            while True:
                yield it.get_next(datetime)
        # One pass of the rule (each `after` would count again from DTSTART).
        yield from parse_rrule(str(self.rrule)).xafter(local, inc=False)

    def _local(self, now: datetime) -> datetime:
        # Whole seconds: cron matches fall on :00, and croniter's prev/next are
        # strict, so sub-second noise would let a start slip past `now`.
        return now.astimezone(self.tz).replace(tzinfo=None, microsecond=0)

    def _absolute(self, wall: datetime) -> datetime:
        return wall.replace(tzinfo=self.tz).astimezone(UTC)

    def _between(self, now: datetime) -> tuple[datetime | None, datetime]:
        """(the latest opening at or before `now`, the first one after it).
        No opening lies between the two, so the pair answers every instant
        from the first (or from ever, when None) up to the second."""
        span = self._span.get("last")
        if span is not None:
            before, after = span
            if (before is None or before <= now) and now < after:
                return span
        span = (self._last_start(now), self._next_start(now))
        self._span["last"] = span  # one atomic store; racing threads store equal spans
        return span

    def last_start(self, now: datetime) -> datetime | None:
        """The latest opening at or before `now` (UTC); None if it never opened."""
        try:
            return self._between(now)[0]
        except WindowNeverOpens:  # no next opening: the last one is still known
            return self._last_start(now)

    def next_start(self, now: datetime) -> datetime:
        """The first opening after `now` (UTC)."""
        return self._between(now)[1]

    def first_opening(self, now: datetime) -> datetime | None:
        """The first opening after `now` (UTC), or None if there is none."""
        try:
            return self._next_start(now)
        except WindowNeverOpens:
            return None

    def _last_start(self, now: datetime) -> datetime | None:
        """None also when no earlier opening can be found: the window is
        then closed, which is what a window that never opened is."""
        try:
            for _, wall in zip(range(_MAX_STEPS), self._wall_prev(self._local(now)), strict=False):
                start = self._absolute(wall)
                if start <= now:
                    return start
        except (ValueError, OverflowError):  # croniter: "failed to find prev date"
            pass
        return None

    def _next_start(self, now: datetime) -> datetime:
        walls = self._wall_next(self._local(now))
        try:
            for _, wall in zip(range(_MAX_NEXT_STEPS), walls, strict=False):
                start = self._absolute(wall)
                if start > now:
                    return start
        except (ValueError, OverflowError):  # croniter: "failed to find next date"
            pass
        raise WindowNeverOpens(
            f"window {self.name!r} never opens after {now.astimezone(UTC):%Y-%m-%d %H:%M} UTC: "
            f"its {self.schedule_text} names no later date; fix it in the policy"
        )

    def open_until(self, now: datetime) -> datetime | None:
        """When the window open at `now` closes, or None if it is closed.
        The latest opening has the latest close, so checking it suffices."""
        start = self.last_start(now)
        if start is None:
            return None
        end = start + self.duration
        return end if now < end else None

    def local_text(self, instant: datetime) -> str:
        local = instant.astimezone(self.tz)
        return f"{local:%a %Y-%m-%d %H:%M} {self.tz.key}"
