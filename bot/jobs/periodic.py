"""Periodic work in every bot and worker process: window notices, TTL
reminders, reconciliation, the orphan sweep.

Every process ticks; none is special. A task decides for itself which
occurrence ("slot") a tick belongs to and claims it with `TickClaims`, so
each notice goes out once however many processes tick. A task that fails
is logged and tried again on the next tick; one task never stops another.
A task that fails because the database or the job queue does not answer
is told by `OutageLog` (bot/store/outage_log.py): one line when it stops
answering, one a minute while it still does not, one when it answers again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from bot.config import ConfigError
from bot.store.outage_log import DATABASE, JOB_QUEUE, OutageLog, unreachable

log = logging.getLogger(__name__)

__all__ = [
    "DATABASE",
    "JOB_QUEUE",
    "OutageLog",
    "PeriodicScheduler",
    "PeriodicTask",
    "unreachable",
]


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
        # Task name -> the configuration error last logged for it.
        self._refused: dict[str, str] = {}

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
                self._refused.pop(task.name, None)
            except ConfigError as exc:
                # Seen: a running worker whose database was rolled back a
                # schema (`db downgrade`) logged a 50-line traceback every
                # tick. What to do is the message; said once until it changes.
                if self._refused.get(task.name) != str(exc):
                    self._refused[task.name] = str(exc)
                    log.error("periodic task %s cannot run: %s", task.name, exc)
                continue
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

    def stop(self, timeout: float = 10.0) -> bool:
        """Take no new round; whether the round under way (if any) ended
        within `timeout` seconds. One still running (a host that does not
        answer) is left to its thread, a daemon."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _run(self) -> None:
        # The first round at once: a restarted process reconciles before
        # anything else waits on it.
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self.interval)
