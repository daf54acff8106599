"""Periodic work in every bot and worker process: window notices, TTL
reminders, reconciliation, the orphan sweep.

Every process ticks; none is special. A task decides for itself which
occurrence ("slot") a tick belongs to and claims it with `TickClaims`, so
each notice goes out once however many processes tick. A task that fails
is logged and tried again on the next tick; one task never stops another.
A task that fails because the database or the job queue does not answer
is told by `OutageLog`: one line when it stops answering, one a minute
while it still does not, one when it answers again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from bot.durations import format_duration
from bot.store.db import driver_reason
from bot.store.outage import is_transient

log = logging.getLogger(__name__)

DATABASE = "the database"
JOB_QUEUE = "the job queue"
# Redis' own exception classes (redis-py's, not the builtins of the same
# names): by name, so that a process with a SQLite queue never imports redis.
_REDIS_UNREACHABLE = frozenset({"ConnectionError", "TimeoutError"})


def unreachable(exc: BaseException) -> str | None:
    """What did not answer, when `exc` says the database or the job queue
    could not be reached (a refused or dropped connection, a timeout);
    None for anything else, a bug included."""
    if is_transient(exc):
        return DATABASE
    for cls in type(exc).__mro__:
        if cls.__module__.startswith("redis.") and cls.__name__ in _REDIS_UNREACHABLE:
            return JOB_QUEUE
    return None


@dataclass
class _Down:
    since: float
    said: float
    failures: int


class OutageLog:
    """Tells that something `who` needs stopped answering: one line at the
    first failure, then at most one line every `every` seconds while it
    still fails, and one line when it answers again. A line holds the
    driver's first line (`driver_reason`: never a statement, never a
    password); its traceback only when `logger` is at DEBUG (`-v`), since
    a connection failure's fifty lines say nothing the first one does not.
    Thread-safe: Huey's workers share one."""

    def __init__(
        self,
        logger: logging.Logger,
        who: str,
        *,
        every: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.who = who
        self.every = every
        self._clock = clock
        self._down: dict[str, _Down] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OutageLog({self.who!r}, down={sorted(self._down)})"

    @property
    def down(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._down)

    def failed(self, what: str, exc: BaseException, *, then: str = "") -> None:
        """`what` did not answer; `then` ends the first line (what happens next)."""
        now = self._clock()
        with self._lock:
            down = self._down.get(what)
            if down is None:
                self._down[what] = down = _Down(since=now, said=now, failures=1)
                first = True
            else:
                down.failures += 1
                if now - down.said < self.every:
                    return
                down.said, first = now, False
            failures, lasted = down.failures, now - down.since
        shown = exc if self.logger.isEnabledFor(logging.DEBUG) else None
        if first:
            self.logger.warning(
                "%s: %s does not answer (%s)%s",
                self.who,
                what,
                driver_reason(exc),
                f"; {then}" if then else "",
                exc_info=shown,
            )
        else:
            self.logger.warning(
                "%s: %s still does not answer after %s, %d failures (%s)",
                self.who,
                what,
                _lasted(lasted),
                failures,
                driver_reason(exc),
                exc_info=shown,
            )

    def answered(self, what: Iterable[str] | None = None) -> None:
        """`what` (everything that was down, by default) answered again."""
        now = self._clock()
        with self._lock:
            names = list(self._down) if what is None else [w for w in what if w in self._down]
            back = [(name, self._down.pop(name)) for name in names]
        for name, down in back:
            self.logger.info(
                "%s: %s answers again (it did not for %s, %d failures)",
                self.who,
                name,
                _lasted(now - down.since),
                down.failures,
            )


def _lasted(seconds: float) -> str:
    return format_duration(timedelta(seconds=seconds))


class PeriodicTask(Protocol):
    @property
    def name(self) -> str: ...

    def tick(self, now: datetime) -> None:
        """Do whatever is due at `now`; safe to call often and from many
        processes at once."""
        ...


class PeriodicScheduler:
    """Calls every task's `tick(clock())` every `interval` real seconds in
    one background thread."""

    def __init__(
        self,
        tasks: Sequence[PeriodicTask],
        clock: Callable[[], datetime],
        *,
        interval: float = 5.0,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval}")
        self.tasks = list(tasks)
        self.clock = clock
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.outages = OutageLog(log, "periodic tasks")

    def __repr__(self) -> str:
        names = ", ".join(t.name for t in self.tasks)
        return f"PeriodicScheduler([{names}], interval={self.interval})"

    def run_once(self, now: datetime | None = None) -> None:
        """One round of every task (also what tests call with a manual clock)."""
        when = now or self.clock()
        down: set[str] = set()
        for task in self.tasks:
            if self._stop.is_set():
                return
            try:
                task.tick(when)
            except Exception as exc:
                what = unreachable(exc)
                if what is None:
                    # Not an outage: a bug, whose traceback must show.
                    log.exception("periodic task %s failed; it runs again next tick", task.name)
                    continue
                down.add(what)
                self.outages.failed(
                    what, exc, then=f"{task.name} failed first, every task runs again each tick"
                )
        # A whole round without that failure: every task reached it again.
        self.outages.answered(self.outages.down - down)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("cannot start scheduler in state started, expected stopped")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="periodic", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        # The first round at once: a restarted process reconciles before
        # anything else waits on it.
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self.interval)
