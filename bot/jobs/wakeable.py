"""Huey's thread consumer, with idle workers that an enqueue can wake.

On a non-blocking storage (SQLite, memory) an idle Huey worker polls: after
an empty `dequeue()` it waits `delay` seconds on the consumer's stop flag,
the delay growing by `backoff` up to `max_delay`
(huey/consumer.py, `Worker.loop` and `Worker.sleep`), so a task enqueued
just after a poll waits up to `max_delay` for the next one. Here the
worker waits on an Event instead, which the process that enqueued sets
(`InProcessConsumer.wake`): the task is taken at once, and the timed poll
stays for tasks other processes enqueue. Huey's consumer is built for such
subclasses: `Consumer.worker_class`, and `_create_worker` "if you need more
sophisticated overrides" (its own comment); the consumer's options are
Huey's (https://huey.readthedocs.io/en/latest/consumer.html#options-for-the-consumer).

Imported by `InProcessConsumer`, once Huey itself is loaded (bot.jobs.queue
keeps Huey out of commands that queue nothing).
"""

from __future__ import annotations

import threading
from typing import Any

from huey.consumer import Consumer, Worker


class WakeableWorker(Worker):  # type: ignore[misc]  # Huey ships no type hints
    """A worker whose idle wait ends early when `wake` is set."""

    wake: threading.Event
    # Set by Huey's Worker.__init__ (named here for the type checker).
    stop_flag: threading.Event
    delay: float
    max_delay: float
    backoff: float

    def sleep(self) -> None:
        if self.delay > self.max_delay:
            self.delay = self.max_delay
        if self.stop_flag.is_set():
            return
        # Cleared before the next dequeue, so a wake set after that dequeue
        # found nothing is never lost: the next wait returns at once. Left
        # set once the consumer stops, for every worker still to notice.
        if self.wake.wait(self.delay) and not self.stop_flag.is_set():
            self.wake.clear()
        else:
            self.delay *= self.backoff


class WakeableConsumer(Consumer):  # type: ignore[misc]  # Huey ships no type hints
    """Huey's `Consumer` whose workers also wait on `wake`."""

    worker_class = WakeableWorker
    stop_flag: threading.Event  # Huey's ThreadEnvironment makes it an Event

    def __init__(self, huey: Any, wake: threading.Event, **options: Any) -> None:
        # Set before Consumer.__init__, which creates the workers.
        self.wake = wake
        super().__init__(huey, **options)

    def _create_worker(self) -> WakeableWorker:
        worker: WakeableWorker = super()._create_worker()
        worker.wake = self.wake
        return worker

    def stop(self, graceful: bool = False) -> None:
        # Idle workers wait on `wake`, not on the stop flag: end their wait.
        self.stop_flag.set()
        self.wake.set()
        super().stop(graceful=graceful)
