"""The cyclic garbage collector, put off while a CLI command does its work.

A command that opens the database or asks a host imports SQLAlchemy,
SQLModel, pydantic and pypsrp, loads the config, inventory and policy, and
renders its answer: a few hundred thousand objects, nearly all of which
live until the process exits. The collector runs after every 700 new
objects and, every so often, walks all the older ones again; in a short
command it finds almost nothing to free (reference counting frees the rest)
and cost 20-35 ms of a `checkpoint list`, `change show`, `outbox` or
`inventory show` here (README, "CLI start", against the code before it).

So the console script turns the collector off as it starts, until `limit`
seconds later, when a timer freezes what the process made (frozen objects
are left out of every later collection,
https://docs.python.org/3/library/gc.html#gc.freeze) and turns it on
again. A short command exits first (bot.cli.main `run` freezes before the
exit); a long one (`serve`, `worker`, a create that waits for its job) runs
with the collector after its first seconds, as any process does.
"""

from __future__ import annotations

import gc
import threading

# Long enough for a short command on a busy machine; short enough that a
# long-running one (`serve`, `worker`) soon runs with the collector.
START_LIMIT_SECONDS = 5.0


class DeferredCollection:
    """The collector off from `start()` for `limit` seconds, once."""

    def __init__(self, limit: float = START_LIMIT_SECONDS) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._started = False
        self._off = False

    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
            if not gc.isenabled():
                return  # off already: whoever turned it off turns it on
            gc.disable()
            self._off = True
        timer = threading.Timer(self.limit, self.resume)
        timer.daemon = True  # never keeps the interpreter alive
        timer.start()

    def resume(self) -> None:
        """Freeze what the process made so far and turn the collector on
        again. Safe to call more than once, from any thread."""
        with self._lock:
            if not self._off:
                return
            self._off = False
            gc.freeze()
            gc.enable()

    @property
    def off(self) -> bool:
        """Whether this object has the collector off now."""
        return self._off
