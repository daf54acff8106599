"""The one way to ask many hosts: at most `fanout` at once, each host's
answer or its error, in the order asked. A host that fails never hides the
others' answers, and its error is kept (its facts are unknown, not empty)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from bot.hyperv.errors import HyperVError
from bot.hyperv.interface import HyperVHost

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
        # One host needs no pool (and a pool is refused once the interpreter
        # has begun to exit).
        return [one(name) for name in names]
    workers = max(1, min(fanout, len(names)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="host-fanout") as pool:
        return list(pool.map(one, names))
