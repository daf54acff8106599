"""A signal taken by a thread other than the main one, for tests.

A signal sent to a process is delivered to any one of its threads that
does not block it (https://man7.org/linux/man-pages/man7/signal.7.html),
while Python runs the handler in the main thread only, between bytecodes
(https://docs.python.org/3/library/signal.html#signals-and-threads). A main
thread asleep in an untimed wait does not see it until something else
wakes it. These tests send the signal to another thread on purpose."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable

import pytest

# A wait that never sees the signal is ended after this long, so the test
# fails instead of hanging.
RESCUE_AFTER_S = 5.0


class Stopped(Exception):
    """What the test's SIGUSR1 handler raises in the main thread."""


def seconds_to_see_a_signal_another_thread_took(
    wait: Callable[[], object], ready: Callable[[], object], release: Callable[[], None]
) -> float:
    """Run `wait` in the main thread; once `ready()` returns (in another
    thread), that thread sends SIGUSR1 to itself. The seconds from the
    signal until the main thread ran its handler, which raises Stopped out
    of `wait`. A wait still blocked after RESCUE_AFTER_S is ended by
    `release()` and the signal sent to the main thread itself."""
    assert threading.current_thread() is threading.main_thread()
    main = threading.get_ident()
    sent: list[float] = []
    handled: list[float] = []
    returned = threading.Event()

    def stop(_signum: int, _frame: object) -> None:
        handled.append(time.monotonic())
        raise Stopped

    def signal_this_thread() -> None:
        ready()
        time.sleep(0.05)  # well inside the wait
        sent.append(time.monotonic())
        signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)
        if not returned.wait(RESCUE_AFTER_S):
            release()
            signal.pthread_kill(main, signal.SIGUSR1)

    previous = signal.signal(signal.SIGUSR1, stop)
    other = threading.Thread(target=signal_this_thread, daemon=True)
    try:
        other.start()
        with pytest.raises(Stopped):
            wait()
        returned.set()
        # Before the handler is put back: a late rescue must find it.
        other.join()
    finally:
        signal.signal(signal.SIGUSR1, previous)
        release()
    return handled[0] - sent[0]
