"""The mission's three guardrails, each a pure function of the facts.

A rule returns a RuleOutcome; `fired=False` with a message explains why it
passed (the dry-run explanation `policy explain` shows).
"""

from __future__ import annotations

from collections.abc import Callable

from policies.model import Action, Effect, Fact, Facts, Request, RuleOutcome

Rule = Callable[[Request, Facts], RuleOutcome]

REPLICATING_ROLES = {
    "sql_ag_replica": "a SQL Server Always On availability group replica",
    "exchange_dag_member": "an Exchange DAG member (Exchange does not support VM snapshots)",
    "dfsr_member": "a DFS Replication member",
}
DC_ROLES = ("domain_controller", "read_only_domain_controller")


def _unknown(rule: str, vm: str, facts: dict[str, Fact]) -> RuleOutcome:
    missing = ", ".join(f"{k} ({f.value or 'unknown'})" for k, f in facts.items() if not f.known)
    return RuleOutcome(
        rule=rule,
        fired=True,
        effect=Effect.DENY,
        message=f"cannot tell whether this rule applies to {vm}: unknown {missing}",
        remediation="fix the inventory entry or the host's reachability, then ask again",
        facts=facts,
    )


def multi_dc_domain(req: Request, facts: Facts) -> RuleOutcome:
    rule = "domain_controller"
    roles, domain, dcs = facts.get("roles"), facts.get("domain"), facts.get("domain_dcs")
    used = {"roles": roles}
    if not roles.known:
        return _unknown(rule, req.vm_name, used)
    is_dc = any(r in roles.value for r in DC_ROLES)
    if not is_dc:
        return RuleOutcome(
            rule, False, None, f"{req.vm_name} is not a domain controller", facts=used
        )
    if req.action not in (Action.CREATE, Action.ROLLBACK):
        return RuleOutcome(rule, False, None, f"{req.action.value} is safe for a DC", facts=used)
    used |= {"domain": domain, "domain_dcs": dcs}
    if not domain.known or not dcs.known:
        return _unknown(rule, req.vm_name, used)
    if "read_only_domain_controller" in roles.value and req.action is Action.ROLLBACK:
        return RuleOutcome(
            rule,
            True,
            Effect.DENY,
            f"{req.vm_name} is a read-only domain controller: an RODC must never be restored "
            "from a snapshot",
            "rebuild the RODC or restore it from a system-state backup",
            used,
        )
    names: list[str] = list(dcs.value)
    if len(names) > 1:
        return RuleOutcome(
            rule,
            True,
            Effect.DENY,
            f"{req.vm_name} is a domain controller in {domain.value}, which has {len(names)} "
            f"domain controllers ({', '.join(names)}): restoring a checkpoint of one causes "
            "USN rollback (replication diverges, lingering objects)",
            "patch DCs one at a time and rely on AD replication; take a system-state backup "
            "instead of a checkpoint",
            used,
        )
    return RuleOutcome(
        rule,
        False,
        None,
        f"{req.vm_name} is the only domain controller of {domain.value}: no USN rollback risk",
        facts=used,
    )


def guest_cluster(req: Request, facts: Facts) -> RuleOutcome:
    rule = "guest_cluster"
    roles, shared = facts.get("roles"), facts.get("shared_disks")
    used = {"roles": roles, "shared_disks": shared}
    if req.action not in (Action.CREATE, Action.ROLLBACK):
        return RuleOutcome(
            rule, False, None, f"{req.action.value} is safe for a cluster node", facts=used
        )
    if not roles.known or not shared.known:
        return _unknown(rule, req.vm_name, used)
    if "cluster_node" in roles.value or shared.value:
        why = (
            "a guest failover cluster node" if "cluster_node" in roles.value else "on a shared disk"
        )
        return RuleOutcome(
            rule,
            True,
            Effect.DENY,
            f"{req.vm_name} is {why}: rolling back one node rolls back the cluster's view "
            "of its shared storage",
            "drain the node and patch it with cluster-aware updating instead",
            used,
        )
    return RuleOutcome(
        rule, False, None, f"{req.vm_name} is not clustered and has no shared disk", facts=used
    )


def replicating_app(req: Request, facts: Facts) -> RuleOutcome:
    rule = "replicating_application"
    roles = facts.get("roles")
    used = {"roles": roles}
    if req.action not in (Action.CREATE, Action.ROLLBACK):
        return RuleOutcome(rule, False, None, f"{req.action.value} is safe here", facts=used)
    if not roles.known:
        return _unknown(rule, req.vm_name, used)
    hits = [REPLICATING_ROLES[r] for r in roles.value if r in REPLICATING_ROLES]
    if hits:
        return RuleOutcome(
            rule,
            True,
            Effect.DENY,
            f"{req.vm_name} is {hits[0]}: the application replicates its own data, and "
            "rolling back one member diverges it from its partners",
            "use the application's own backup and failover (fail over, patch, fail back)",
            used,
        )
    return RuleOutcome(
        rule, False, None, f"{req.vm_name} runs no self-replicating application", facts=used
    )


BUILTIN_RULES: tuple[Rule, ...] = (multi_dc_domain, guest_cluster, replicating_app)
