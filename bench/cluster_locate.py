"""Finding a clustered VM's node over real WinRM (pypsrp, NTLM) on the emulator.

A cluster of N emulated nodes, one VM on each. The bot's `Locator` finds a VM
three ways: where its last sighting says (one `Get-VM -Id`), after it moved
with the sighting stale (the sighted node, then the other N-1 at most
`--fanout` at once), and with the fan-out forced to 1 (one node after the
other), for comparison. Prints the median and p90 of each, in milliseconds.

    .venv/bin/python bench/cluster_locate.py [--nodes 8] [--rounds 20] [--fanout 32]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.devtools.emulator import EmulatedFleet, EmulatorLog
from bot.devtools.hostmodel import HostModel, HostSpec, InMemoryHostStateStore, VMSpec, VolumeSpec
from bot.devtools.hostmodel.modelfile import ClusterSpec
from bot.hyperv.winrm.host import WinRMFleet
from bot.inventory import Inventory
from bot.service.locate import Locator
from bot.store.db import make_engine
from bot.store.migrate import upgrade

USER, PASSWORD, ENV = "hvadmin", "Passw0rd!", "BENCH_PASSWORD"
CSV = "C:\\ClusterStorage\\Volume1"


def vm_id(i: int) -> str:
    return f"dddddddd-0000-4000-8000-{i:012d}"


def model(n: int) -> HostModel:
    nodes = [f"HV{i:02d}" for i in range(1, n + 1)]
    return HostModel(
        clusters=[
            ClusterSpec(
                name="bench",
                nodes=nodes,
                shared_volumes=[VolumeSpec(path=CSV, capacity_gb=10000)],
            )
        ],
        hosts=[
            HostSpec(
                name=node,
                volumes=[VolumeSpec(path="D:", capacity_gb=1000)],
                vms=[VMSpec(name=f"VM{i:02d}", vm_id=vm_id(i), volume=CSV)],
            )
            for i, node in enumerate(nodes, start=1)
        ],
    )


def inventory(fleet: EmulatedFleet, n: int) -> Inventory:
    nodes = [f"HV{i:02d}" for i in range(1, n + 1)]
    return Inventory.model_validate(
        {
            "hosts": [
                {
                    "name": node,
                    "address": "127.0.0.1",
                    "port": fleet.port_of(node),
                    "transport": "http",
                    "auth": "ntlm",
                    "credential": {"username": USER, "password_env": ENV},
                }
                for node in nodes
            ],
            "clusters": [{"name": "bench", "nodes": nodes}],
            "vms": [
                {"name": f"VM{i:02d}", "vm_id": vm_id(i), "host": node}
                for i, node in enumerate(nodes, start=1)
            ],
        }
    )


def timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return (time.perf_counter() - started) * 1000


def summary(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return f"{name:<44} median {statistics.median(values):7.1f} ms   p90 {p90:7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--fanout", type=int, default=32)
    args = parser.parse_args()
    n = args.nodes
    fleet = EmulatedFleet.start(
        InMemoryHostStateStore(), model=model(n), users={USER: PASSWORD}, auth=("ntlm",),
        log=EmulatorLog(),
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/bench.db")
        upgrade(engine)
        inv = inventory(fleet, n)
        hosts = WinRMFleet(inv, {ENV: PASSWORD})
        try:

            def clock() -> datetime:
                return datetime.now(UTC)

            wide = Locator(inv, hosts.host, engine, clock, fanout=args.fanout)
            narrow = Locator(inv, hosts.host, engine, clock, fanout=1)
            vm = inv.vm("VM01")
            for node in inv.hosts:  # open every pool once: the bench times calls, not logons
                hosts.host(node.name).list_vms()
            wide.locate(vm)
            home, last = "HV01", f"HV{n:02d}"
            at_home, moved, moved_serial = [], [], []
            for _ in range(args.rounds):
                at_home.append(timed(lambda: wide.locate(vm)))
                fleet.host(home).live_migrate(vm.vm_id, last)
                moved.append(timed(lambda: wide.locate(vm)))
                fleet.host(last).live_migrate(vm.vm_id, home)
                wide.locate(vm)
                fleet.host(home).live_migrate(vm.vm_id, last)
                moved_serial.append(timed(lambda: narrow.locate(vm)))
                fleet.host(last).live_migrate(vm.vm_id, home)
                wide.locate(vm)
        finally:
            hosts.close()
            engine.dispose()
            fleet.stop()
    print(f"{n} nodes, {args.rounds} rounds, NTLM over loopback")
    print(summary("on the sighted node (1 Get-VM)", at_home))
    print(summary(f"moved, then {n - 1} nodes at fan-out {args.fanout}", moved))
    print(summary(f"moved, then {n - 1} nodes one by one (fan-out 1)", moved_serial))


if __name__ == "__main__":
    main()
