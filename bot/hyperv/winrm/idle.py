"""Closing idle runspace pools: one thread for all of a fleet's hosts.

    reaper = IdleReaper(closers=32)
    reaper.schedule(session, after=300.0)   # (again) after each call
    reaper.cancel(session)                  # a call begins, or the session closes
    reaper.stop()                           # the fleet closes

A pool is closed `timeouts.idle` seconds after its last call, so an idle
bot holds no shells on its hosts (docs/winrm-client.md). Until 2026-12-05
each pool had a `threading.Timer` of its own: every call started a thread,
and after a sweep of N hosts N threads slept out the idle timeout (300 s
by default; 300 threads after a sweep of 300 hosts, measured). Now one
thread waits for the earliest pool due, and only while one is due; the
pools due together are closed on at most `closers` threads at once, so a
host that does not answer its WSMan Delete holds one closer for its stop
grace, not the others.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

log = logging.getLogger(__name__)


class Idle(Protocol):
    """What the reaper closes: a session that decides for itself, under its
    own lock, whether it is still idle (a call may have begun since)."""

    name: str

    def close_if_idle(self) -> None: ...


class IdleReaper:
    """Closes sessions that were not used for their idle timeout."""

    def __init__(self, *, closers: int = 8) -> None:
        if closers < 1:
            raise ValueError(f"closers must be at least 1, got {closers}")
        self._closers = closers
        self._cond = threading.Condition()
        self._due: dict[Idle, float] = {}  # session -> time.monotonic() it is due
        self._thread: threading.Thread | None = None
        # When the thread's wait ends: a schedule due later than that
        # need not wake it (with one idle timeout for all, none does).
        self._wakes_at = math.inf
        self._stopped = False

    def __repr__(self) -> str:
        return f"IdleReaper({len(self._due)} due, closers={self._closers})"

    def schedule(self, session: Idle, after: float) -> None:
        """Close `session` `after` seconds from now, unless it is scheduled
        again or cancelled before then."""
        with self._cond:
            if self._stopped:
                return
            at = time.monotonic() + after
            self._due[session] = at
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._wait_and_close, name="winrm-idle", daemon=True
                )
                self._thread.start()
            elif at < self._wakes_at:
                self._cond.notify()

    def cancel(self, session: Idle) -> None:
        with self._cond:
            self._due.pop(session, None)

    def stop(self) -> None:
        """Forget every session (the fleet closes them itself) and let the
        thread end."""
        with self._cond:
            self._stopped = True
            self._due.clear()
            self._cond.notify()

    @property
    def waiting(self) -> bool:
        """Whether the reaper's thread is alive (for tests)."""
        with self._cond:
            return self._thread is not None

    def _wait_and_close(self) -> None:
        while True:
            with self._cond:
                due = self._next_due()
                if due is None:
                    # Nothing left to wait for: the thread ends, and the next
                    # schedule() starts another (both under the condition's lock).
                    self._thread = None
                    return
            self._close(due)

    def _next_due(self) -> list[Idle] | None:
        """Wait (the lock held, released while waiting) until some sessions
        are due; None once none is scheduled or the reaper is stopped."""
        while not self._stopped and self._due:
            now = time.monotonic()
            due = [session for session, at in self._due.items() if at <= now]
            if due:
                for session in due:
                    del self._due[session]
                return due
            self._wakes_at = min(self._due.values())
            self._cond.wait(self._wakes_at - now)
            self._wakes_at = math.inf
        return None

    def _close(self, due: list[Idle]) -> None:
        if len(due) == 1:
            _close_one(due[0])
            return
        workers = min(self._closers, len(due))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="winrm-idle-close") as pool:
            list(pool.map(_close_one, due))


def _close_one(session: Idle) -> None:
    try:
        session.close_if_idle()
    except Exception as exc:  # one host's failure must not keep the others open
        log.info("closing the idle pool on %s failed: %s", session.name, type(exc).__name__)
