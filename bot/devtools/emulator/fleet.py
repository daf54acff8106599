"""One emulated WinRM endpoint per modelled host.

    fleet = EmulatedFleet.start(store, model=host_model, hosts=None, base_port=0, ...)
    fleet.port_of("HV01"); fleet.url_of("HV01"); fleet.host("HV01"); fleet.stop()

The hosts' state lives in `store` (a `HostStateStore`); with `model` (a
host-model file, bot.devtools.hostmodel.modelfile) the hosts the store does
not hold yet are seeded from it first. `hosts` defaults to the model's
hosts in file order, else every host in the store. `base_port=0` gives
every server an ephemeral port; otherwise host i (in that order) listens on
base_port + i.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from bot.devtools.emulator.faults import Faults
from bot.devtools.emulator.log import EmulatorLog
from bot.devtools.emulator.server import EmulatorServer, TlsIdentity
from bot.devtools.hostmodel.host import ModelHost
from bot.devtools.hostmodel.modelfile import HostModel, seed_missing
from bot.devtools.hostmodel.store import HostStateStore


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
        store: HostStateStore,
        hosts: Iterable[str] | None = None,
        base_port: int = 0,
        *,
        model: HostModel | None = None,
        users: Mapping[str, str] | None = None,
        auth: Iterable[str] = ("basic", "ntlm"),
        latency_ms: int = 0,
        faults: Faults | None = None,
        log: EmulatorLog | None = None,
        clock: Callable[[], datetime] = _now,
        keytab: Path | None = None,
        tls: TlsIdentity | None = None,
        allow_unencrypted: bool = True,
    ) -> EmulatedFleet:
        if model is not None:
            seed_missing(store, model)
        known = store.hosts()
        by_fold = {name.casefold(): name for name in known}
        if hosts:
            names = []
            for wanted in hosts:
                if wanted.casefold() not in by_fold:
                    listed = ", ".join(known) or "none"
                    raise ValueError(f"no modelled host {wanted!r} (the model has: {listed})")
                names.append(by_fold[wanted.casefold()])
        elif model is not None:
            names = model.names()
        else:
            names = known
        shared_log = log if log is not None else EmulatorLog()
        servers: dict[str, EmulatorServer] = {}
        try:
            for index, name in enumerate(names):
                host = ModelHost(name, store, clock)
                # This process serves the host from now on: operations an
                # earlier one left in the store died with it (a restart).
                host.restarted()
                server = EmulatorServer(
                    host,
                    port=base_port + index if base_port else 0,
                    users=users,
                    auth=auth,
                    latency_ms=latency_ms,
                    faults=faults,
                    log=shared_log,
                    keytab=keytab,
                    tls=tls,
                    allow_unencrypted=allow_unencrypted,
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

    def host(self, name: str) -> ModelHost:
        """The modelled host behind an endpoint (what an admin at its console
        would change)."""
        return self.server(name).host

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
