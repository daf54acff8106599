"""Policy engine throughput: 10,000 generated VMs, create and rollback each.

    .venv/bin/python bench/policy_eval.py [--vms N] [--seconds LIMIT] [--seed S]
                                          [--baseline REV] [--rounds R]

Facts are generated directly (mixed roles, tags, domains, disks, counts, a
few hosts unreachable), the shipped policy plus a change window and an
approvals scope are loaded once, and every evaluation is timed. Stops early
at --seconds so a slow machine cannot hang CI.

The baseline is the engine of git revision `--baseline` (default 915ffd2,
the engine before issue #18's plan per policy and slotted outcomes),
extracted
with `git archive` into a temporary directory and run by this same script
in a child interpreter whose `sys.path` starts there: same mix, same seed,
same machine, same run. Baseline and current alternate for `--rounds`
rounds, each in a fresh child process on one core (the engine is single
threaded), and the medians are compared. Rates are decisions per second of
the child's own CPU time (`time.process_time`), which a machine shared with
other work disturbs less than the wall clock; wall-clock rates are printed
beside them, and the share of the CPU time the garbage collector took.
Target: at least 20,000 decisions/s.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from policies import (
    Action,
    Context,
    Decision,
    Facts,
    Request,
    Verdict,
    evaluate,
    parse_policy,
)
from policies.model import Fact

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
GB = 1024**3
ROLE_MIX: list[tuple[list[str], int]] = [
    (["web"], 30),
    (["app"], 30),
    (["file_server"], 8),
    (["domain_controller"], 4),
    (["sql_server"], 6),
    (["sql_server", "sql_ag_replica"], 4),
    (["exchange_server", "exchange_dag_member"], 2),
    (["file_server", "dfsr_member"], 3),
    (["cluster_node"], 3),
    (["other"], 10),
]
DOMAINS = ["corp.example", "lab.example", "dmz.example", None]
OVERLAY = """
admins: {groups: [S0ADMINS]}
rules:
  approvals:
    overrides:
      - scope: {tags: {env: prod}}
        params: {count: 1, groups: [S0APPROVERS]}
windows:
  - name: weeknights
    cron: "0 20 * * 1-5"
    duration: 10h
    timezone: Europe/Berlin
    scope: {tags: {env: prod}, names: ["WEB-*"]}
"""


def generate(n: int, rng: random.Random) -> list[tuple[str, Facts]]:
    roles_pool = [r for r, w in ROLE_MIX for _ in range(w)]
    dcs: dict[str, list[str]] = {d: [] for d in DOMAINS if d}
    specs: list[tuple[str, list[str], str | None]] = []
    for i in range(n):
        roles = rng.choice(roles_pool)
        domain = rng.choice(DOMAINS)
        prefix = "WEB" if "web" in roles else "VM"
        name = f"{prefix}-{i:05d}"
        if domain and "domain_controller" in roles:
            dcs[domain].append(name)
        specs.append((name, roles, domain))
    return [(name, _facts(name, roles, domain, dcs, rng)) for name, roles, domain in specs]


def _facts(
    name: str, roles: list[str], domain: str | None, dcs: dict[str, list[str]], rng: random.Random
) -> Facts:
    inv, host = "inventory bench", f"host HV{rng.randint(1, 40):02d}"

    def f(value: Any, source: str = inv) -> Fact:
        return Fact(value, source, NOW)

    values = {
        "vm_name": f(name),
        "roles": f(roles),
        "tags": f({"env": rng.choice(["prod", "prod", "staging", "lab"])}),
        "host": f(host),
        "host_group": f(rng.choice(["prod-cluster", "standalone"])),
        "app_group": f(None),
        "inv_shared_disk": f("cluster_node" in roles),
        "inv_passthrough": f(rng.random() < 0.02),
        "inv_fibre_channel": f(rng.random() < 0.01),
        "inv_hyperv_replica": f(rng.random() < 0.05),
        "inv_checkpoint_type": f("Disabled" if rng.random() < 0.02 else "Production"),
        "domain": f(domain) if domain else Fact.unknown(inv, "the inventory gives no domain"),
        "domain_dcs": f(dcs[domain]) if domain else Fact.unknown(inv, "no domain"),
        "change_created_at": f(NOW - timedelta(hours=rng.randint(1, 200)), "change CHG-1"),
    }
    if rng.random() < 0.03:
        why = "host not asked: connection refused"
        for key in ("kvp_product_type", "disk_shared", "disk_passthrough", "disk_fibre_channel",
                    "replication_enabled", "checkpoint_count", "volume_free_bytes",
                    "volume_capacity_bytes", "vm_checkpoint_type", "vm_state"):  # fmt: skip
            values[key] = Fact.unknown(host, why)
        return Facts(values)
    capacity = rng.choice([1000, 2000, 3000]) * GB
    values |= {
        "kvp_product_type": Fact(2 if "domain_controller" in roles else 3, host, NOW),
        "disk_shared": Fact("cluster_node" in roles, host, NOW),
        "disk_passthrough": Fact(values["inv_passthrough"].value, host, NOW),
        "disk_fibre_channel": Fact(values["inv_fibre_channel"].value, host, NOW),
        "replication_enabled": Fact(values["inv_hyperv_replica"].value, host, NOW),
        "checkpoint_count": Fact(rng.choice([0, 0, 0, 1, 1, 2, 3]), host, NOW),
        "volume_free_bytes": Fact(int(capacity * rng.uniform(0.1, 0.7)), host, NOW),
        "volume_capacity_bytes": Fact(capacity, host, NOW),
        "vm_checkpoint_type": Fact(values["inv_checkpoint_type"].value, host, NOW),
        "vm_state": Fact("Running", host, NOW),
    }
    return Facts(values)


def run(vms: int, seconds: float, seed: int) -> dict[str, Any]:
    """One measured pass in this process; what it prints is the report."""
    rng = random.Random(seed)
    started = time.perf_counter()
    policy = parse_policy(OVERLAY, source="bench overlay")
    fleet = generate(vms, rng)
    prepared = time.perf_counter() - started

    verdicts: dict[Action, Counter[Verdict]] = {
        a: Counter() for a in (Action.CREATE, Action.ROLLBACK)
    }
    fired: Counter[str] = Counter()
    digest = hashlib.sha256()
    done = 0
    deadline = time.perf_counter() + seconds
    stopped = False
    # The asker's groups, drawn before the timed pass so the digest pass
    # below can replay the very same requests.
    draws = [rng.random() < 0.1 for _ in range(2 * len(fleet))]
    # The garbage collector's share of the timed pass.
    in_gc = [0.0, 0.0]

    def on_gc(phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            in_gc[1] = time.process_time()
        else:
            in_gc[0] += time.process_time() - in_gc[1]

    def decide(i: int, name: str, facts: Facts, action: Action) -> Decision:
        groups = frozenset({"S0APPROVERS"}) if draws[i] else frozenset()
        ctx = Context(now=NOW, policy=policy, groups=groups)
        return evaluate(Request(action, name, name, "U0BENCH"), facts, ctx)

    # The timed pass does what a serving process does with a decision: reads
    # it and lets it go. (Before, every decision was kept for the digest, so
    # the collector walked 20,000 of them beside the fleet: 39% of the CPU.)
    gc.callbacks.append(on_gc)
    t0, cpu0 = time.perf_counter(), time.process_time()
    for name, facts in fleet:
        for action in (Action.CREATE, Action.ROLLBACK):
            decision = decide(done, name, facts, action)
            verdicts[action][decision.verdict] += 1
            fired.update(o.rule for o in decision.fired if o.blocking)
            done += 1
        if time.perf_counter() > deadline:
            stopped = True
            break
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    gc.callbacks.remove(on_gc)
    # Untimed: the same requests again, each decision digested as it is made
    # (every rule's outcome, message and facts, in order) and dropped, so the
    # digest shows both engines decide exactly alike (their words aside: `_decided`).
    i = 0
    for name, facts in fleet:
        if i >= done:
            break
        for action in (Action.CREATE, Action.ROLLBACK):
            decision = decide(i, name, facts, action)
            digest.update(json.dumps(_decided(decision), sort_keys=True, default=str).encode())
            i += 1
    return {
        "digest": digest.hexdigest(),
        "prepared": prepared,
        "done": done,
        "wall": elapsed,
        "cpu": cpu,
        "gc": in_gc[0],
        "stopped": stopped,
        "verdicts": {a.value: {v.value: c[v] for v in Verdict} for a, c in verdicts.items()},
        "fired": fired.most_common(),
    }


def child(tree: Path, vms: int, seconds: float, seed: int) -> dict[str, Any]:
    """This script run by another interpreter with `tree` first on its path."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    argv = [sys.executable, __file__, "--child", "--vms", str(vms), "--seconds", str(seconds)]
    done = subprocess.run(
        [*argv, "--seed", str(seed)],
        env=env,
        capture_output=True,
        text=True,
        timeout=seconds + 300,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"the run in {tree} failed: {done.stderr[-800:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def extract(rev: str, into: Path) -> Path:
    root = Path(__file__).resolve().parents[1]
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", "--format=tar", rev],
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True, timeout=120)
    return into


def report(label: str, runs: list[dict[str, Any]]) -> float:
    rate = statistics.median(r["done"] / r["cpu"] for r in runs)
    wall = statistics.median(r["done"] / r["wall"] for r in runs)
    first = runs[0]
    in_gc = statistics.median(r.get("gc", 0.0) / r["cpu"] for r in runs)
    print(
        f"  {label:<30} {rate:9,.0f} decisions/CPU-s ({1e6 / rate:5.0f} µs each, "
        f"{in_gc:4.0%} in gc)   wall {wall:9,.0f}/s   load {first['prepared']:.2f}s"
    )
    return rate


# What a rule's outcome says to people rather than decides: its words.
_WORDS = ("message", "remediation")


def _decided(decision: Decision) -> dict[str, Any]:
    """A decision without its words: the verdict, each rule's outcome,
    effect and facts, the approval and the schedule. Wording is the
    product's to change (2026-12-06: roles named in words, a domain
    controller's own reason) without the engines deciding differently."""
    shown = decision.to_dict()
    shown["rules"] = [{k: v for k, v in rule.items() if k not in _WORDS} for rule in shown["rules"]]
    return shown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--vms", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=120.0, help="stop after this long")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--baseline", default="915ffd2", help="git revision of the baseline")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        print(json.dumps(run(args.vms, args.seconds, args.seed)))
        return 0

    current = Path(__file__).resolve().parents[1]
    old: list[dict[str, Any]] = []
    new: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        tree = extract(args.baseline, Path(tmp))
        for _ in range(args.rounds):  # alternating: both see the same machine
            old.append(child(tree, args.vms, args.seconds, args.seed))
            new.append(child(current, args.vms, args.seconds, args.seed))
    last = new[-1]
    if old[-1]["digest"] != last["digest"]:
        raise SystemExit("the baseline and the current engine decided differently")
    print(
        f"{last['done']:,} decisions per run ({args.vms:,} VMs x create and rollback), "
        f"{args.rounds} rounds, medians; load average {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} CPUs"
    )
    if last["stopped"]:
        print(f"  (stopped at the {args.seconds:g}s limit)")
    before = report(f"baseline ({args.baseline})", old)
    after = report("current", new)
    verdict = "OK" if after >= 20_000 else "BELOW TARGET"
    print(
        f"  current / baseline             {after / before:5.2f}x   (target >= 20,000/s: {verdict})"
    )
    for action, counts in last["verdicts"].items():
        total = sum(counts.values()) or 1
        shares = ", ".join(f"{v} {n:,} ({100 * n / total:.1f}%)" for v, n in counts.items())
        print(f"  {action:<8} {shares}")
    print("  blocking rules: " + ", ".join(f"{rule} {n:,}" for rule, n in last["fired"]))
    print(
        f"  both engines gave the same decisions, outcome by outcome (sha256 {last['digest'][:16]})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
