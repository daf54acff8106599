"""One emulated WinRM endpoint per simulated host of an inventory.

    fleet = EmulatedFleet.start(inventory, store_or_fleet, hosts=None, base_port=0, ...)
    fleet.port_of("HV01"); fleet.url_of("HV01"); fleet.stop()

`store_or_fleet` is a `HostStateStore` (hosts the store does not know yet
are seeded from the inventory, as bot.simfleet does) or a ready
`SimulatedFleet`. `base_port=0` gives every server an ephemeral port;
otherwise host i (in the order of `hosts`, default the inventory's) listens
on base_port + i.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime

from bot.hyperv.emulator.faults import Faults
from bot.hyperv.emulator.log import EmulatorLog
from bot.hyperv.emulator.server import EmulatorServer
from bot.hyperv.sim_store import HostStateStore
from bot.hyperv.simulator import SimulatedFleet
from bot.inventory import Inventory
from bot.simfleet import seed_missing


def _now() -> datetime:
    return datetime.now(UTC)


class EmulatedFleet:
    def __init__(self, servers: Mapping[str, EmulatorServer], log: EmulatorLog) -> None:
        self.servers = dict(servers)
        self.log = log

    def __repr__(self) -> str:
        return f"EmulatedFleet({ {n: s.port for n, s in self.servers.items()} })"

    @classmethod
    def start(
        cls,
        inventory: Inventory,
        store_or_fleet: HostStateStore | SimulatedFleet,
        hosts: Iterable[str] | None = None,
        base_port: int = 0,
        *,
        users: Mapping[str, str] | None = None,
        auth: Iterable[str] = ("basic", "ntlm"),
        latency_ms: int = 0,
        faults: Faults | None = None,
        log: EmulatorLog | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> EmulatedFleet:
        if isinstance(store_or_fleet, SimulatedFleet):
            sim = store_or_fleet
        else:
            seed_missing(store_or_fleet, inventory)
            sim = SimulatedFleet(store_or_fleet, clock)
        names = (
            [inventory.host(h).name for h in hosts] if hosts else [h.name for h in inventory.hosts]
        )
        shared_log = log if log is not None else EmulatorLog()
        servers: dict[str, EmulatorServer] = {}
        try:
            for index, name in enumerate(names):
                server = EmulatorServer(
                    sim.host(name),
                    port=base_port + index if base_port else 0,
                    users=users,
                    auth=auth,
                    latency_ms=latency_ms,
                    faults=faults,
                    log=shared_log,
                )
                servers[name] = server.start()
        except BaseException:
            for server in servers.values():
                server.stop()
            raise
        return cls(servers, shared_log)

    def server(self, name: str) -> EmulatorServer:
        for key, server in self.servers.items():
            if key.casefold() == name.casefold():
                return server
        raise KeyError(name)

    def port_of(self, name: str) -> int:
        return self.server(name).port

    def url_of(self, name: str) -> str:
        return self.server(name).url

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()

    def __enter__(self) -> EmulatedFleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
