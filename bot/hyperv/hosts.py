"""The process's one way from a host name to a `HyperVHost`.

`Hosts` wraps the backend's factory (`WinRMFleet.host`, or the simulator's).
The context, the decider and the executor all hold the same instance, so
whatever reaches one host reaches it for all of them. `wrap` lets a test or
a bench put something between the bot and the host (added latency, a host
that is down, a call counter) without reaching into the parts.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.hyperv.interface import HyperVHost

HostWrapper = Callable[[str, HyperVHost], HyperVHost]


class Hosts:
    def __init__(self, factory: Callable[[str], HyperVHost]) -> None:
        self._factory = factory
        self._wrapper: HostWrapper | None = None

    def __call__(self, name: str) -> HyperVHost:
        host = self._factory(name)
        wrapper = self._wrapper
        return host if wrapper is None else wrapper(name, host)

    def wrap(self, wrapper: HostWrapper | None) -> None:
        """Put `wrapper` around every host from now on (None: no wrapper)."""
        self._wrapper = wrapper
