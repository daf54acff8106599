"""The one way to ask many hosts: at most `fanout` at once, each host's
answer or its error, in the order asked. A host that fails never hides the
others' answers, and its error is kept (its facts are unknown, not empty).

Only reads go through here (listings, discovery, finding a clustered VM).
The askers are daemon threads, not a `ThreadPoolExecutor`'s: Python joins
an executor's threads when the interpreter exits, so a host that never
answers would hold a Ctrl-C'd command until that call's deadline
(`hyperv.call_timeout`, ten minutes by default); a read abandoned at exit
changes nothing on the host."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

from bot.hyperv.errors import HyperVError
from bot.hyperv.interface import HyperVHost
from bot.interrupts import joined

T = TypeVar("T")


def ask_hosts(
    host_for: Callable[[str], HyperVHost],
    names: Sequence[str],
    operation: Callable[[HyperVHost], T],
    *,
    fanout: int,
) -> list[tuple[str, T | HyperVError]]:
    def one(name: str) -> tuple[str, T | HyperVError]:
        try:
            return name, operation(host_for(name))
        except HyperVError as exc:
            return name, exc

    if len(names) <= 1:
        return [one(name) for name in names]
    answers: dict[int, tuple[str, T | HyperVError]] = {}
    failures: list[BaseException] = []
    todo: queue.SimpleQueue[int] = queue.SimpleQueue()
    for index in range(len(names)):
        todo.put(index)

    def asker() -> None:
        while not failures:
            try:
                index = todo.get_nowait()
            except queue.Empty:
                return
            try:
                answers[index] = one(names[index])
            except BaseException as exc:  # a bug, not a host's answer: the caller's to see
                failures.append(exc)
                return

    askers = [
        threading.Thread(target=asker, name=f"host-fanout-{n}", daemon=True)
        for n in range(max(1, min(fanout, len(names))))
    ]
    for thread in askers:
        thread.start()
    for thread in askers:
        joined(thread)  # a Ctrl-C is seen while a host takes its time
    if failures:
        raise failures[0]
    return [answers[index] for index in range(len(names))]
