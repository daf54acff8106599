"""Workloads that keep their own copies in sync: guest clusters, replicating
applications, Hyper-V Replica. Rolling back one member diverges it from its
partners, and the partners do not know.
"""

from __future__ import annotations

from typing import Literal

from bot.domain import role_words
from policies.model import Action, Effect, Facts, Request, RuleOutcome
from policies.params import ResolvedRule, RuleParams
from policies.policy import Context
from policies.rules.base import RuleSpec, fire, not_applicable, passed, riskier, roles_of, unknown

_RISKY_ACTIONS = (Action.CREATE, Action.ROLLBACK)

# role -> (why a checkpoint is wrong, what to do instead); what the role is
# said in bot.domain.ROLE_WORDS, the one place for it.
REPLICATING_ROLES: dict[str, tuple[str, str]] = {
    "sql_ag_replica": (
        "a restored replica is behind its partners and its log chain no longer matches, "
        "so the availability group must reseed it",
        "fail over, patch the secondary, fail back; rely on SQL Server backups",
    ),
    "exchange_dag_member": (
        "Microsoft does not support VM snapshots of Exchange servers at all, and a restored "
        "DAG member corrupts database replication",
        "put the server in maintenance mode and patch it; rely on DAG copies and backups",
    ),
    "exchange_server": (
        "Microsoft does not support VM snapshots of Exchange servers at all",
        "patch it in maintenance mode; rely on Exchange-aware backups",
    ),
    "dfsr_member": (
        "a restored member replays stale files and can overwrite newer data on its partners "
        "(or forces a full non-authoritative resync)",
        "patch members one at a time; restore files from backup, not the VM",
    ),
}


def guest_cluster(req: Request, facts: Facts, ctx: Context, rule: ResolvedRule) -> RuleOutcome:
    vm = req.vm_name
    if req.action not in _RISKY_ACTIONS:
        return not_applicable(rule, f"{req.action.value} is not restricted for cluster nodes")
    roles, roles_fact = roles_of(facts)
    shared, used = riskier(facts, "inv_shared_disk", "disk_shared")
    used["roles"] = roles_fact
    if roles is not None and "cluster_node" in roles:
        what = role_words("cluster_node")
    elif shared:
        what = "attached to a shared VHDX / VHD Set disk (SupportPersistentReservations)"
    elif roles is None or shared is None:
        return unknown(rule, vm, used, "whether it is a cluster node or has a shared disk")
    else:
        return passed(rule, f"{vm} is not a cluster node and has no shared disk", used)
    return fire(
        rule,
        f"{vm} is {what}: shared disks cannot be checkpointed, and rolling back one node "
        "rolls back its view of the cluster",
        "drain the node and patch it with cluster-aware updating instead",
        used,
    )


def replicating_application(
    req: Request, facts: Facts, ctx: Context, rule: ResolvedRule
) -> RuleOutcome:
    vm = req.vm_name
    if req.action not in _RISKY_ACTIONS:
        return not_applicable(rule, f"{req.action.value} is not restricted for replicating apps")
    roles, roles_fact = roles_of(facts)
    used = {"roles": roles_fact}
    if roles is None:
        return unknown(rule, vm, used, "which applications it runs")
    hits = [r for r in REPLICATING_ROLES if r in roles]
    if not hits:
        return passed(rule, f"{vm} runs no self-replicating application", used)
    why, instead = REPLICATING_ROLES[hits[0]]
    what = role_words(hits[0])
    group = facts.get("app_group")  # only named in the message, never decided on
    member_of = f" ({group.value})" if group.known and group.value else ""
    return fire(rule, f"{vm} is {what}{member_of}: {why}", instead, used)


class HyperVReplicaParams(RuleParams):
    # A wrong guess costs a full resynchronisation, not data: a human decides.
    on_unknown: Literal["deny", "needs_approval"] = "needs_approval"


def hyperv_replica(req: Request, facts: Facts, ctx: Context, rule: ResolvedRule) -> RuleOutcome:
    vm = req.vm_name
    if req.action not in _RISKY_ACTIONS:
        return not_applicable(rule, f"{req.action.value} does not disturb Hyper-V Replica")
    enabled, used = riskier(facts, "inv_hyperv_replica", "replication_enabled")
    consequence = "reverting puts replication into Resynchronization Required"
    if req.action is Action.CREATE:
        # Creating never blocks on Replica (the risk comes with a rollback), so
        # an unknown replication state is said out loud, as a warning.
        if enabled:
            return fire(
                rule,
                f"{vm} is replicated with Hyper-V Replica: {consequence} later",
                "",
                used,
                effect=Effect.WARN,
            )
        if enabled is None:
            return fire(
                rule,
                f"cannot tell whether {vm} uses Hyper-V Replica "
                f"({used['replication_enabled'].value}); if it does, {consequence}",
                "",
                used,
                effect=Effect.WARN,
            )
        return passed(rule, f"{vm} is not replicated with Hyper-V Replica", used)
    if enabled is None:
        return unknown(rule, vm, used, "whether Hyper-V Replica is enabled")
    if not enabled:
        return passed(rule, f"{vm} is not replicated with Hyper-V Replica", used)
    return fire(
        rule,
        f"{vm} is replicated with Hyper-V Replica: {consequence} (a full resync to the "
        "replica site)",
        "plan the resynchronisation with whoever owns the replica, or fail over to it instead",
        used,
    )


SPECS = (
    RuleSpec(
        "guest_cluster",
        guest_cluster,
        RuleParams,
        Effect.DENY,
        "no checkpoints of guest cluster nodes or VMs on shared VHDX / VHD Set",
    ),
    RuleSpec(
        "replicating_application",
        replicating_application,
        RuleParams,
        Effect.DENY,
        "no checkpoints of SQL AG replicas, Exchange servers, DFS-R members",
    ),
    RuleSpec(
        "hyperv_replica",
        hyperv_replica,
        HyperVReplicaParams,
        Effect.NEEDS_APPROVAL,
        "rolling back a Hyper-V Replica VM forces a resynchronisation",
    ),
)
