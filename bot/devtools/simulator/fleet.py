"""The simulator backend: the real WinRM client on modelled hosts, in process.

    SimulatedFleet(store, clock).host(name) -> WinRMHost   (a HyperVHost)

Demo mode and the fast tests use it. It has no mapping of its own to the
bot's types: each host is a `WinRMHost` whose session runs the pipelines on
the emulator's command table over the host model (bot.devtools.simulator.session),
so the bot reads a simulated host exactly as it reads a real one, through
`winrm.mapping` and `winrm.errors`. The hosts' state is in `store`, seeded from
a host-model file (bot.devtools.hostmodel.modelfile), never from the inventory.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

from bot.devtools.emulator.log import EmulatorLog
from bot.devtools.hostmodel.host import ModelHost
from bot.devtools.hostmodel.store import HostStateStore
from bot.devtools.simulator.session import InProcessSession
from bot.hyperv.errors import HostUnreachable
from bot.hyperv.winrm.connect import HostCredential
from bot.hyperv.winrm.host import WinRMHost
from bot.inventory.models import Host, Transport

Clock = Callable[[], datetime]


def host_unknown(host: str) -> HostUnreachable:
    # What the WinRM client reports for a name it cannot reach; a host the
    # model does not hold is one no connection could be made to.
    return HostUnreachable(
        f"Connecting to remote server {host} failed with the following error message : "
        "WinRM cannot complete the operation. Verify that the specified computer name is "
        "valid, that the computer is accessible over the network, and that a firewall "
        "exception for the WinRM service is enabled and allows access from this computer.",
        host=host,
        category="OpenError",
        error_id="WinRMOperationTimeout,PSSessionStateBroken",
    )


class SimulatedFleet:
    """Every modelled host in a store, sharing one clock; one client per host."""

    def __init__(
        self, store: HostStateStore, clock: Clock, *, log: EmulatorLog | None = None
    ) -> None:
        self._store = store
        self._clock = clock
        self._log = log
        self._hosts: dict[str, WinRMHost] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SimulatedFleet({self._store.hosts()})"

    def host(self, name: str) -> WinRMHost:
        with self._lock:
            cached = self._hosts.get(name)
            if cached is not None:
                return cached
        if name not in self._store.hosts():
            raise host_unknown(name)
        model = ModelHost(name, self._store, self._clock)
        client = WinRMHost(
            # Where the client would connect: nowhere, the session is in process.
            Host(name=name, address="127.0.0.1", transport=Transport.HTTP, port=5985),
            HostCredential(),
            session=InProcessSession(model, log=self._log),
        )
        with self._lock:
            return self._hosts.setdefault(name, client)

    def hosts(self) -> list[WinRMHost]:
        return [self.host(name) for name in self._store.hosts()]

    def close(self, *, wait: bool = True) -> None:
        with self._lock:
            hosts, self._hosts = list(self._hosts.values()), {}
        for host in hosts:
            host.close(wait=wait)
