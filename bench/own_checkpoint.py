"""Restore and remove of a VM's own checkpoint: one round trip against two.

    .venv/bin/python bench/own_checkpoint.py [--rounds 15] [--latency-ms 0 50]

`WinRMHost.restore_checkpoint` and `remove_checkpoint` on two emulated
Hyper-V hosts with the same VMs (bot.devtools.emulator: real WinRM over
loopback, NTLM, AllowUnencrypted off, `--latency-ms` added to every HTTP
request), one client each, alternated call by call so both see the same
machine:

- one call: a host whose JEA role lists Where-Object (deploy/jea since
  2026-12-05). The check that the checkpoint is the VM's own and the act
  are one PowerShell call (docs/winrm-client.md).
- owner first: a host whose role does not (the emulator's
  `hide=Where-Object`), which the bot meets the way it met every host
  before: `Get-VMSnapshot -Id` for the owner, then the act by Id. Its
  client is warmed with one refused call first, as a bot is after its
  first restore or remove on such a host.

Only the host call is timed (the pool is open on both); the checkpoint to
remove is made on the model directly, and the model's clock is moved past
the merge between calls. Prints medians in ms and the requests each call
made.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.clock import ManualClock  # noqa: E402
from bot.devtools.emulator import DEFAULT_USERS, EmulatedFleet, Faults  # noqa: E402
from bot.devtools.emulator.pointing import EMULATOR_PASSWORD_ENV, emulated_inventory  # noqa: E402
from bot.devtools.hostmodel import (  # noqa: E402
    InMemoryHostStateStore,
    ModelHost,
    demo_hosts_path,
    load_host_model,
)
from bot.hyperv.winrm.connect import Credentials  # noqa: E402
from bot.hyperv.winrm.host import WinRMHost  # noqa: E402
from bot.inventory import Inventory, demo_inventory_path, load_inventory  # noqa: E402

# The emulator's own loopback login (its hosts serve it when given no users).
((USER, PASSWORD),) = DEFAULT_USERS.items()
HOST, VM_NAME = "HV03", "STG-WEB01"
PAST_THE_MERGE = timedelta(minutes=10)


class Side:
    """One emulated host and the bot's client for it."""

    def __init__(self, latency_ms: int, clock: ManualClock, faults: Faults | None) -> None:
        store = InMemoryHostStateStore()
        self.fleet = EmulatedFleet.start(
            store,
            [HOST],
            model=load_host_model(demo_hosts_path()),
            auth=("ntlm",),
            latency_ms=latency_ms,
            faults=faults,
            clock=clock,
            allow_unencrypted=False,
        )
        self.model = ModelHost(HOST, store, clock)
        pointed = emulated_inventory(
            load_inventory(demo_inventory_path()),
            {HOST: self.fleet.port_of(HOST)},
            USER,
            EMULATOR_PASSWORD_ENV,
        )
        inventory = Inventory.model_validate(yaml.safe_load(pointed))
        spec = inventory.host(HOST)
        self.vm_id = inventory.vm(VM_NAME).vm_id
        credential = Credentials({EMULATOR_PASSWORD_ENV: PASSWORD}).for_host(spec)
        self.client = WinRMHost(spec, credential)

    def timed(self, call: str, clock: ManualClock) -> tuple[float, int]:
        """One restore or remove of a checkpoint made for it, as every
        rollback or merge is of a checkpoint of its own (so no pipeline is
        ever sent twice): (seconds, PowerShell calls to the host)."""
        made = self.model.checkpoint_vm(self.vm_id, f"bench: {call}").id
        clock.advance(PAST_THE_MERGE)
        before = self.client.stats.calls
        started = time.perf_counter()
        if call == "restore":
            self.client.restore_checkpoint(self.vm_id, made)
        else:
            self.client.remove_checkpoint(self.vm_id, made)
        took = time.perf_counter() - started
        if call == "restore":  # keep the VM to one checkpoint
            self.model.remove_snapshot(made)
        clock.advance(PAST_THE_MERGE)
        return took, self.client.stats.calls - before

    def close(self) -> None:
        self.client.close()
        self.fleet.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--latency-ms", type=int, nargs="+", default=[0, 50])
    args = parser.parse_args(argv)
    print(f"{HOST} ({VM_NAME}), NTLM, {args.rounds} rounds alternated, medians")
    print(f"{'latency':>7} {'call':<8} {'one call':>9} {'owner first':>12} {'saved':>8}  calls")
    for latency in args.latency_ms:
        clock = ManualClock(datetime(2026, 12, 5, 8, tzinfo=UTC))
        one = Side(latency, clock, None)
        two = Side(latency, clock, Faults(hidden=frozenset({"Where-Object"})))
        try:
            two.timed("restore", clock)  # learns the role lacks Where-Object
            for call in ("restore", "remove"):
                times: dict[str, list[float]] = {"one": [], "two": []}
                calls: dict[str, set[int]] = {"one": set(), "two": set()}
                for _ in range(args.rounds):
                    for name, side in (("one", one), ("two", two)):
                        took, made = side.timed(call, clock)
                        times[name].append(took)
                        calls[name].add(made)
                a, b = (statistics.median(times[n]) * 1000 for n in ("one", "two"))
                print(
                    f"{latency:>5}ms {call:<8} {a:>7.1f}ms {b:>10.1f}ms {b - a:>+6.1f}ms  "
                    f"{'/'.join(map(str, sorted(calls['one'])))} vs "
                    f"{'/'.join(map(str, sorted(calls['two'])))}"
                )
        finally:
            one.close()
            two.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
