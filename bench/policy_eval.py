"""Policy engine throughput: 10,000 generated VMs, create and rollback each.

    .venv/bin/python bench/policy_eval.py [--vms N] [--seconds LIMIT] [--seed S]

Facts are generated directly (mixed roles, tags, domains, disks, counts, a
few hosts unreachable), the shipped policy plus a change window and an
approvals scope are loaded once, and every evaluation is timed. Stops early
at --seconds so a slow machine cannot hang CI.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from policies import Action, Context, Facts, Request, Verdict, evaluate, parse_policy
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--vms", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=120.0, help="stop after this long")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    started = time.perf_counter()
    policy = parse_policy(OVERLAY, source="bench overlay")
    fleet = generate(args.vms, rng)
    prepared = time.perf_counter() - started
    print(f"generated {len(fleet):,} VMs and loaded the policy in {prepared:.2f}s")

    verdicts: dict[Action, Counter[Verdict]] = {
        a: Counter() for a in (Action.CREATE, Action.ROLLBACK)
    }
    fired: Counter[str] = Counter()
    done = 0
    deadline = time.perf_counter() + args.seconds
    t0 = time.perf_counter()
    for name, facts in fleet:
        for action in (Action.CREATE, Action.ROLLBACK):
            groups = frozenset({"S0APPROVERS"}) if rng.random() < 0.1 else frozenset()
            ctx = Context(now=NOW, policy=policy, groups=groups)
            decision = evaluate(Request(action, name, name, "U0BENCH"), facts, ctx)
            verdicts[action][decision.verdict] += 1
            fired.update(o.rule for o in decision.fired if o.blocking)
            done += 1
        if time.perf_counter() > deadline:
            print(f"stopped at the {args.seconds:g}s limit")
            break
    elapsed = time.perf_counter() - t0
    print(f"{done:,} decisions in {elapsed:.2f}s: {done / elapsed:,.0f} decisions/s "
          f"({1e6 * elapsed / done:.0f} µs each)")  # fmt: skip
    for action, counts in verdicts.items():
        total = sum(counts.values()) or 1
        shares = ", ".join(
            f"{v.value} {counts[v]:,} ({100 * counts[v] / total:.1f}%)" for v in Verdict
        )
        print(f"  {action.value:<8} {shares}")
    print("  blocking rules: " + ", ".join(f"{rule} {n:,}" for rule, n in fired.most_common()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
