"""Fleet sweep: list every checkpoint on 100 emulated hosts over real WinRM.

    .venv/bin/python bench/fleet_sweep.py [--hosts 100] [--vms 10] [--latency-ms 50]
                                          [--auth basic|ntlm] [--quick] [--rounds 1]
                                          [--fanout N]
    .venv/bin/python bench/fleet_sweep.py --hosts 1000 --vms 2 --memory [--fanout N]

Each host is an emulated WinRM endpoint on 127.0.0.1 (bot.devtools.emulator)
serving a modelled Hyper-V host with `--vms` VMs, a few checkpoints each,
and `--latency-ms` added to every HTTP request. The same sweep
(`bot.service.queries.checkpoints_on` over a `WinRMFleet`: the code
`sweep run`, `sweep adopt` and `checkpoint list` run, fresh pools every time) runs
sequentially (fan-out 1), with the fan-out a config gets by default
(`hyperv.fanout`, 64; `--fanout` to try another), with fan-out 32 (the
default until 2026-12-05) beside it, and with one worker per host, and the
script prints the ratios. It then times a first and a second operation
on one host (pool reuse). Loopback only; every call has a deadline.

The emulated hosts run in `--server-procs` child processes so their CPU
work does not share the client's GIL; the client's own CPU time is printed
per sweep, and so is the servers' (read from /proc; Linux). On a machine
with few cores the sweep is CPU-bound (the servers' CLIXML and simulator
work is local here, remote on real hosts), so the fan-out ratios are lower
bounds of what a real fleet shows: all the hosts of one server process
share its GIL, so a sweep takes at least that process's CPU seconds. The
load average (other work on the machine) is printed before and after.

Target: the default fan-out at most 0.05x the sequential sweep. The
client's CPU seconds per host are printed for each sweep.

`--memory` (for the 1,000-host run) sweeps with the default fan-out (or
`--fanout`) only and prints this process's resident memory before the sweep, after
it, and its peak (`ru_maxrss`): the sweep holds at most `fanout` hosts'
answers in flight, so memory grows with the checkpoints found, not with
connections.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from multiprocessing.connection import Connection
from typing import Any

from bot.clock import system_clock
from bot.config import HyperVConfig
from bot.devtools.emulator import EmulatedFleet
from bot.devtools.hostmodel import HostModel, InMemoryHostStateStore, ModelHost, seed_missing
from bot.hyperv.winrm.host import WinRMFleet
from bot.inventory import Inventory
from bot.service.queries import checkpoints_on

USER, PASSWORD = "hvadmin", "Passw0rd!"
ENV = {"BENCH_PASSWORD": PASSWORD}
CHECKPOINTS_PER_VM = 2
CALL_TIMEOUT = 30.0
STARTUP_TIMEOUT = 120.0
SERVER_LIFETIME = 900.0
# What a config that does not set `hyperv.fanout` gets: what production runs.
DEFAULT_FANOUT = HyperVConfig().fanout
EARLIER_DEFAULT = 32  # until 2026-12-05


def build_inventory(hosts: int, vms: int, auth: str) -> dict[str, Any]:
    namespace = uuid.UUID("6b1f0c7d-2b1d-4d7c-9a55-3e8b1f0c7d21")
    host_docs = [
        {
            "name": f"HV{h:03d}",
            "address": "127.0.0.1",
            "transport": "http",
            "port": 5985,  # replaced by the emulator's port once it listens
            "auth": auth,
            "allow_basic": auth == "basic",
            "credential": {"username": USER, "password_env": "BENCH_PASSWORD"},
            "volumes": [{"path": "D:\\", "capacity_gb": 4000, "used_gb": 1000}],
        }
        for h in range(hosts)
    ]
    vm_docs = [
        {
            "name": f"VM{h:03d}-{v:02d}",
            "vm_id": str(uuid.uuid5(namespace, f"{h}/{v}")),
            "host": f"HV{h:03d}",
        }
        for h in range(hosts)
        for v in range(vms)
    ]
    return {"hosts": host_docs, "vms": vm_docs}


def build_hosts(doc: dict[str, Any]) -> HostModel:
    """The host model of the same estate: every VM where the inventory says."""
    volumes = [{"path": "D:\\", "capacity_gb": 4000, "used_gb": 1000}]
    return HostModel.model_validate(
        {
            "hosts": [
                {
                    "name": host["name"],
                    "volumes": volumes,
                    "vms": [
                        {"name": vm["name"], "vm_id": vm["vm_id"]}
                        for vm in doc["vms"]
                        if vm["host"] == host["name"]
                    ],
                }
                for host in doc["hosts"]
            ]
        }
    )


def seed_checkpoints(store: InMemoryHostStateStore, model: HostModel, hosts: set[str]) -> int:
    count = 0
    for spec in model.hosts:
        if spec.name not in hosts:
            continue
        host = ModelHost(spec.name, store, system_clock)
        for vm in spec.vms:
            for i in range(CHECKPOINTS_PER_VM):
                host.checkpoint_vm(vm.vm_id, f"bench {i}")
                count += 1
    return count


@contextmanager
def winrm_fleet(inventory: Inventory, fanout: int) -> Iterator[WinRMFleet]:
    fleet = WinRMFleet(inventory, ENV, fanout=fanout, call_timeout=CALL_TIMEOUT)
    try:
        yield fleet
    finally:
        fleet.close()


ServerCPU = Callable[[], float]


def sweep(
    inventory: Inventory, fanout: int, expected: int, server_cpu: ServerCPU
) -> tuple[float, float, float]:
    """(wall seconds, this process's CPU seconds, the server processes' CPU
    seconds) of one cold sweep."""
    with winrm_fleet(inventory, fanout) as fleet:
        served = server_cpu()
        started, cpu = time.perf_counter(), time.process_time()
        names = [h.name for h in inventory.hosts]
        checkpoints, problems = checkpoints_on(fleet.host, names, fanout=fanout)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        served = server_cpu() - served
    if problems or len(checkpoints) != expected:
        first = problems[0] if problems else None
        raise SystemExit(
            f"sweep with fan-out {fanout}: {len(checkpoints)}/{expected} checkpoints, {first}"
        )
    return elapsed, cpu, served


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def process_cpu(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far (Linux /proc)."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime: proc(5)
    return total / os.sysconf("SC_CLK_TCK")


def rss_mb() -> float:
    """This process's resident set now (Linux /proc), in MB."""
    with open("/proc/self/statm", encoding="ascii") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3  # KiB on Linux


def pool_reuse(inventory: Inventory) -> tuple[float, float]:
    with winrm_fleet(inventory, 1) as fleet:
        host = fleet.host(inventory.hosts[0].name)
        started = time.perf_counter()
        host.list_checkpoints()
        first = time.perf_counter() - started
        started = time.perf_counter()
        host.list_checkpoints()
        second = time.perf_counter() - started
    return first, second


def serve_fleet(doc: dict[str, Any], hosts: list[str], latency_ms: int, conn: Connection) -> None:
    """A child process: some modelled hosts behind their emulated endpoints.
    Processes of their own, so the servers' CPU work (CLIXML, XML, the host
    model) shares neither the bench client's GIL nor one another's."""
    model = build_hosts(doc)
    store = InMemoryHostStateStore()
    seed_missing(store, model)
    count = seed_checkpoints(store, model, set(hosts))
    emulated = EmulatedFleet.start(
        store, hosts, users={USER: PASSWORD}, auth=("basic", "ntlm"), latency_ms=latency_ms
    )
    try:
        conn.send((count, {name: emulated.port_of(name) for name in hosts}))
        conn.poll(SERVER_LIFETIME)  # until the parent says stop (or gives up)
    finally:
        emulated.stop()
        conn.close()


@contextmanager
def fleet_processes(
    doc: dict[str, Any], latency_ms: int, processes: int
) -> Iterator[tuple[int, dict[str, int], ServerCPU]]:
    context = multiprocessing.get_context("spawn")
    names = [h["name"] for h in doc["hosts"]]
    started: list[tuple[Any, Connection]] = []
    try:
        for index in range(processes):
            parent, child = context.Pipe()
            share = names[index::processes]
            process = context.Process(
                target=serve_fleet, args=(doc, share, latency_ms, child), daemon=True
            )
            process.start()
            started.append((process, parent))
        count, ports = 0, {}
        for _, parent in started:
            if not parent.poll(STARTUP_TIMEOUT):
                raise SystemExit("the emulated fleet did not start in time")
            some, their_ports = parent.recv()
            count += some
            ports.update(their_ports)
        pids = [process.pid for process, _ in started if process.pid is not None]
        yield count, ports, lambda: process_cpu(pids)
    finally:
        for process, parent in started:
            with suppress(OSError):
                parent.send("stop")
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)


def _fanout_label(fanout: int) -> str:
    if fanout == DEFAULT_FANOUT:
        return f"fan-out {fanout} (the default)"
    if fanout == EARLIER_DEFAULT:
        return f"fan-out {fanout} (until 2026-12-05)"
    return f"fan-out {fanout}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--vms", type=int, default=10)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--auth", choices=("basic", "ntlm"), default="basic")
    parser.add_argument(
        "--server-procs",
        type=int,
        default=max(1, min(4, (os.cpu_count() or 2) - 1)),
        help="processes the emulated hosts run in (default: CPUs - 1, at most 4)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="skip the sequential sweep (the slow one)"
    )
    parser.add_argument("--rounds", type=int, default=1, help="sweeps of each kind; medians")
    parser.add_argument(
        "--fanout",
        type=int,
        default=DEFAULT_FANOUT,
        help=f"the fan-out held to the target (default: hyperv.fanout's, {DEFAULT_FANOUT})",
    )
    parser.add_argument(
        "--memory", action="store_true", help="that fan-out only, with this process's memory"
    )
    args = parser.parse_args(argv)
    if args.memory:
        return memory_run(args)

    doc = build_inventory(args.hosts, args.vms, args.auth)
    print(f"load average before: {load_average()}")
    with fleet_processes(doc, args.latency_ms, args.server_procs) as (expected, ports, served):
        print(
            f"{args.hosts} hosts x {args.vms} VMs, {expected} checkpoints, "
            f"{args.latency_ms} ms per request, auth {args.auth}, "
            f"servers in {args.server_procs} child processes"
        )
        doc["hosts"] = [{**h, "port": ports[h["name"]]} for h in doc["hosts"]]
        inventory = Inventory.model_validate(doc)
        runs: dict[str, list[tuple[float, float, float]]] = {}
        unlimited_label = f"fan-out {args.hosts} (one per host)"
        tried = _fanout_label(args.fanout)
        kinds = [(tried, args.fanout)]
        if args.fanout != EARLIER_DEFAULT:
            kinds.append((_fanout_label(EARLIER_DEFAULT), EARLIER_DEFAULT))
        kinds.append((unlimited_label, args.hosts))
        if not args.quick:
            kinds.insert(0, ("sequential", 1))
        for _ in range(args.rounds):  # interleaved, so each kind sees the same machine
            for label, fanout in kinds:
                runs.setdefault(label, []).append(sweep(inventory, fanout, expected, served))
        timings = {
            label: tuple(statistics.median(run[i] for run in got) for i in range(3))
            for label, got in runs.items()
        }
        first, second = pool_reuse(inventory)

    fanned = timings[tried][0]
    for label, (seconds, cpu, server) in timings.items():
        print(
            f"  {label:<32} {seconds:6.2f} s   ({args.hosts / seconds:6.1f} hosts/s, "
            f"client CPU {cpu:5.2f} s = {1000 * cpu / args.hosts:5.1f} ms per host; "
            f"servers' CPU {1000 * server / args.hosts:5.1f} ms per host)"
        )
    if "sequential" in timings:
        for label, _fanout in kinds[1:]:  # kinds[0] is the sequential sweep
            ratio = timings[label][0] / timings["sequential"][0]
            verdict = ""
            if label == tried and args.latency_ms == 50:  # the target's latency
                target = "OK" if ratio <= 0.05 else "ABOVE TARGET"
                verdict = f"; target <= 0.05x: {target}"
            print(
                f"  {label.split(' (')[0] + ' / sequential':<32} {ratio:6.3f}x "
                f"({1 / ratio:.1f}x faster{verdict})"
            )
    one_per_host = f"fan-out {args.fanout} / one per host"
    print(f"  {one_per_host:<32} {fanned / timings[unlimited_label][0]:6.2f}x")
    print(
        f"  pool reuse: first call {first * 1000:.0f} ms (opens the pool), second "
        f"{second * 1000:.0f} ms: second/first = {second / first:.2f}"
    )
    print(f"load average after: {load_average()}")
    return 0


def memory_run(args: argparse.Namespace) -> int:
    doc = build_inventory(args.hosts, args.vms, args.auth)
    print(f"load average before: {load_average()}")
    with fleet_processes(doc, args.latency_ms, args.server_procs) as (expected, ports, served):
        print(
            f"{args.hosts} hosts x {args.vms} VMs, {expected} checkpoints, "
            f"{args.latency_ms} ms per request, auth {args.auth}, "
            f"servers in {args.server_procs} child processes; fan-out {args.fanout}"
        )
        doc["hosts"] = [{**h, "port": ports[h["name"]]} for h in doc["hosts"]]
        inventory = Inventory.model_validate(doc)
        before = rss_mb()
        results = [sweep(inventory, args.fanout, expected, served) for _ in range(args.rounds)]
        after, peak = rss_mb(), peak_rss_mb()
    seconds = statistics.median(w for w, _, _ in results)
    cpu = statistics.median(c for _, c, _ in results)
    server = statistics.median(s for _, _, s in results)
    print(
        f"  {_fanout_label(args.fanout):<32} {seconds:6.2f} s   "
        f"({args.hosts / seconds:6.1f} hosts/s, "
        f"client CPU {cpu:5.2f} s = {1000 * cpu / args.hosts:5.1f} ms per host; "
        f"servers' CPU {1000 * server / args.hosts:5.1f} ms per host)"
    )
    print(
        f"  client memory: {before:.0f} MB before the sweeps, {after:.0f} MB after, "
        f"peak {peak:.0f} MB ({(peak - before) * 1000 / args.hosts:.0f} kB per host "
        "above the start)"
    )
    print(f"load average after: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
