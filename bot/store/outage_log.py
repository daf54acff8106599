"""Telling that something the bot needs stopped answering (the database,
the job queue), without flooding the log: `OutageLog` says it once, then
at most once a minute, then once when it answers again; `unreachable`
tells such a failure from a bug. The job workers, the periodic tasks and
the Slack notifier's background work share these words.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta

from bot.durations import format_duration
from bot.store.db import driver_reason
from bot.store.outage import is_transient

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
