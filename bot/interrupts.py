"""Signals that stop a process, taken where they do no harm.

Python runs a signal handler in the main thread, between two bytecodes of
whatever that thread was doing
(https://docs.python.org/3/library/signal.html#signals-and-threads). Two
consequences shape this module:

- A handler that takes a lock can find it held by the very thread it
  interrupted: `threading.Event.set()` takes the condition lock that
  `Event.wait()` holds around its own bookkeeping, and a lock that is not
  reentrant, taken twice by one thread, is never released. `StopRequest`'s
  handler only sets a flag, and the main thread polls it in short sleeps;
  short, because a signal sent to the process may be taken by any thread
  that does not block it (https://man7.org/linux/man-pages/man7/signal.7.html)
  and the main thread runs the handler only when it next wakes.
- A handler that raises (Ctrl-C's KeyboardInterrupt, `serve`'s SIGTERM)
  raises wherever the main thread was, including half-way into opening or
  ending a database transaction: SQLite's `BEGIN IMMEDIATE` ran, and the
  library that ran it had not yet recorded that it did. The transaction
  then stays open, holding the database's write lock, and the command's own
  next transaction waited for it (`busy_timeout`, 30 s) while the user's
  Ctrl-C seemed ignored; or the interrupt came out as SQLAlchemy's
  PendingRollbackError instead of an interrupt. `interrupts_held` keeps
  such a handler for the end of the transaction.
"""

from __future__ import annotations

import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TypeVar

# How often the main thread wakes to look.
POLL_SECONDS = 0.2

# The signals whose handlers end a command or a server's wait.
STOPPING = (signal.SIGINT, signal.SIGTERM)

Handler = Callable[[int, FrameType | None], object]
T = TypeVar("T")


class StopRequest:
    """Asked once by anyone (a signal handler, a reload's thread); waited
    for by the main thread."""

    def __init__(self) -> None:
        self.asked = False

    def ask(self) -> None:
        self.asked = True

    def on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        """For `signal.signal`: sets the flag and takes no lock."""
        self.asked = True

    def wait(self) -> None:
        """Until asked (a KeyboardInterrupt, Ctrl-C, ends it too)."""
        while not self.asked:
            time.sleep(POLL_SECONDS)


def joined(thread: threading.Thread) -> None:
    """`thread.join()` in short waits: an untimed join blocks the main
    thread on a lock that a signal taken by another thread never wakes, so
    a Ctrl-C went unseen until the thread ended (a host that never answers:
    `hyperv.call_timeout`). It returns as soon as the thread ends."""
    while thread.is_alive():
        thread.join(POLL_SECONDS)


def taken(items: queue.Queue[T]) -> T:
    """`items.get()` in short waits, for the same reason as `joined`."""
    while True:
        try:
            return items.get(timeout=POLL_SECONDS)
        except queue.Empty:
            continue


@contextmanager
def interrupts_held() -> Iterator[None]:
    """In the main thread: a stopping signal that arrives inside the block
    is handled as it ends (its handler called then, once per signal), not
    half-way through it. Elsewhere, and for a signal without a Python
    handler (the default action, or ignored), nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def hold(signum: int, _frame: FrameType | None) -> None:
        caught.append(signum)

    held: dict[int, Handler] = {}
    for stopping in STOPPING:
        # One call each way (a transaction of the main thread pays for it):
        # `signal.signal` hands back the handler it replaces.
        handler = signal.signal(stopping, hold)
        if callable(handler):
            held[stopping] = handler
        else:
            signal.signal(stopping, handler)
    try:
        yield
    finally:
        for number, handler in held.items():
            signal.signal(number, handler)
        for number in caught:
            handler = held.get(number)
            if handler is not None:
                # As it would have run: a handler that raises raises here.
                handler(number, None)
            else:
                # Taken in the instant the default action or SIG_IGN was
                # swapped out and back: given to it now.
                signal.raise_signal(number)
