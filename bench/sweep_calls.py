"""Sweep calls: Slack API calls for a sweep that finds many stale checkpoints.

    .venv/bin/python bench/sweep_calls.py [--stale 200] [--channels 3] [--orphans 12]
                                          [--hosts 12] [--vms 6] [--fanout 4]
                                          [--latency-ms 20] [--quick]

A simulated fleet (`--hosts` x `--vms`, in SQLite under a temporary
directory) gets `--stale` checkpoints whose changes expired, spread over
`--channels` Slack channels, and `--orphans` checkpoints no change owns.
The bot's real context posts to a recording Slack Web API on 127.0.0.1
(tests/slack_support.py's FakeSlackApi), and one periodic sweep tick runs:
the script prints every Slack method called and how often, the calls per
channel, and the baseline of one message per checkpoint. Each host call
sleeps `--latency-ms` and is counted, with the most in flight at once, to
show the fan-out bound (`hyperv.fanout`). Unless `--quick`, a table follows
with other sizes: the calls follow the channels, not the checkpoints.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ helpers

from bot.clock import ManualClock
from bot.config import HyperVConfig, SweepConfig
from bot.context import AppContext, build_context
from bot.hyperv import HyperVHost
from bot.service.sweep import SweepTask
from tests.helpers import T0, settings_for
from tests.slack_support import BOT_TOKEN, FakeSlackApi
from tests.sweep_support import seed_stale, take_orphan

SUMMARY = re.compile(r"Checkpoint sweep: (\d+) stale, (\d+) orphans")


def write_inventory(path: Path, hosts: int, vms: int) -> None:
    namespace = uuid.UUID("0f5c2a8e-6b1d-4e3a-9c7f-2d8e4b6a1c35")
    doc = {
        "hosts": [
            {
                "name": f"HV{h:02d}",
                "address": f"hv{h:02d}.bench.example",
                "credential": {"username_env": "U", "password_env": "P"},
                "volumes": [{"path": "D:\\", "capacity_gb": 8000, "used_gb": 1000}],
            }
            for h in range(1, hosts + 1)
        ],
        "vms": [
            {
                "name": f"VM{h:02d}-{v:02d}",
                "vm_id": str(uuid.uuid5(namespace, f"{h}/{v}")),
                "host": f"HV{h:02d}",
                "tags": {"env": "prod"},
            }
            for h in range(1, hosts + 1)
            for v in range(1, vms + 1)
        ],
    }
    path.write_text(json.dumps(doc, indent=1), encoding="utf-8")  # JSON is YAML


@dataclass
class HostCalls:
    """Counts every host call and the most in flight at once."""

    latency: float
    calls: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    most: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wrap(self, host: HyperVHost) -> Any:
        counter = self

        class Counted:
            def __getattr__(self, name: str) -> Any:
                real = getattr(host, name)
                if not callable(real):
                    return real

                def call(*args: Any, **kwargs: Any) -> Any:
                    with counter.lock:
                        counter.calls[name] += 1
                        counter.in_flight += 1
                        counter.most = max(counter.most, counter.in_flight)
                    try:
                        time.sleep(counter.latency)
                        return real(*args, **kwargs)
                    finally:
                        with counter.lock:
                            counter.in_flight -= 1

                return call

        return Counted()


@dataclass(frozen=True)
class Result:
    stale: int
    orphans: int
    channels: int
    slack_calls: Counter[str]
    reported: int
    host_calls: HostCalls
    seconds: float

    @property
    def total(self) -> int:
        return sum(self.slack_calls.values())


def run(args: argparse.Namespace, stale: int, channels: int) -> Result:
    with tempfile.TemporaryDirectory() as tmp, FakeSlackApi() as api:
        workdir = Path(tmp)
        inventory = workdir / "inventory.yaml"
        write_inventory(inventory, args.hosts, args.vms)
        names = [f"C0CHAN{n}" for n in range(channels)]
        settings = replace(
            settings_for(workdir),
            inventory_path=inventory,
            hyperv=HyperVConfig(fanout=args.fanout),
            sweep=SweepConfig(channel=names[0]),
        )
        env = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_API_URL": api.api_url}
        clock = ManualClock(T0)
        ctx: AppContext = build_context(settings, env=env, clock=clock, huey_kind="memory")
        try:
            vms = list(ctx.inventory.vms)
            seed_stale(ctx, stale, names, vms)
            for vm in vms[: args.orphans]:
                take_orphan(ctx, vm, age=settings.sweep.orphan_after * 3)
            counted = HostCalls(args.latency_ms / 1000)
            ctx.host_for.wrap(lambda _name, host: counted.wrap(host))
            before = len(api.calls)
            started = time.perf_counter()
            SweepTask(ctx).tick(clock())
            seconds = time.perf_counter() - started
            posts = api.calls[before:]
            calls = Counter(c.method for c in posts)
            # What the digests themselves say they carry (their fallback text).
            reported = 0
            for post in posts:
                found = SUMMARY.search(str(post.body.get("text", "")))
                reported += int(found.group(1)) + int(found.group(2)) if found else 0
            expected = stale + min(args.orphans, len(vms))
            if reported != expected:
                raise SystemExit(f"the digests carry {reported} checkpoints, expected {expected}")
        finally:
            ctx.close()
    return Result(stale, args.orphans, channels, calls, reported, counted, seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stale", type=int, default=200)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--orphans", type=int, default=12)
    parser.add_argument("--hosts", type=int, default=12)
    parser.add_argument("--vms", type=int, default=6)
    parser.add_argument("--fanout", type=int, default=4)
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="skip the table of other sizes")
    args = parser.parse_args(argv)

    main_run = run(args, args.stale, args.channels)
    hosts = main_run.host_calls
    print(
        f"sweep of {args.hosts} hosts x {args.vms} VMs (fan-out {args.fanout}, "
        f"{args.latency_ms} ms per host call): {main_run.reported} checkpoints to report, "
        f"{args.stale} stale in {args.channels} channels + {args.orphans} orphans"
    )
    methods = ", ".join(f"{m} {n}" for m, n in sorted(main_run.slack_calls.items()))
    print(f"  Slack API calls: {methods} (total {main_run.total})")
    print(f"  channels: {args.channels}   calls / channels = {main_run.total / args.channels:.2f}")
    print(
        f"  baseline, one message per checkpoint: {main_run.reported} calls "
        f"({main_run.reported / max(main_run.total, 1):.1f}x the digest's)"
    )
    host_methods = ", ".join(f"{m} {n}" for m, n in sorted(hosts.calls.items()))
    print(
        f"  host calls: {host_methods} (one per host), at most {hosts.most} at once "
        f"(hyperv.fanout {args.fanout})"
    )
    print(f"  one sweep tick: {main_run.seconds:.2f} s")
    if main_run.total != args.channels:
        print("  FAILED: expected one Slack call per channel")
        return 1
    if args.quick:
        return 0
    print()
    print("  stale  channels  Slack calls  one per checkpoint  host calls  most at once")
    for stale, channels in ((20, 3), (200, 1), (200, 10), (400, 3)):
        r = run(args, stale, channels)
        print(
            f"  {stale:5d}  {channels:8d}  {r.total:11d}  {r.reported:18d}  "
            f"{sum(r.host_calls.calls.values()):10d}  {r.host_calls.most:12d}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
