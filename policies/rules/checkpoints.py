"""What Hyper-V itself allows: the checkpoint type, the CheckpointType
setting, disk kinds that cannot be checkpointed, and the per-VM count."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bot.domain import CheckpointKind, roles_words
from policies.model import Action, Effect, Facts, Request, RuleOutcome
from policies.params import ResolvedRule, RuleParams
from policies.policy import Context
from policies.rules.base import RuleSpec, fire, not_applicable, passed, riskier, roles_of, unknown
from policies.schema import RoleName

HYPERV_MAX_CHECKPOINTS = 50
TRANSACTIONAL_ROLES = (
    "domain_controller",
    "read_only_domain_controller",
    "sql_server",
    "sql_ag_replica",
    "exchange_server",
    "exchange_dag_member",
)


def _create_only(req: Request, rule: ResolvedRule) -> RuleOutcome | None:
    if req.action is Action.CREATE:
        return None
    # Four rules ask this for every rollback: the answer is found by rule
    # and action, without writing its message each time.
    key = (rule.id, req.action)
    found = _NOT_CREATE.get(key)
    if found is None:
        found = not_applicable(
            rule, f"only creating a checkpoint is checked, not {req.action.value}"
        )
        _NOT_CREATE[key] = found  # bounded: rule ids x actions
    return found


_NOT_CREATE: dict[tuple[str, Action], RuleOutcome] = {}


class CheckpointTypeParams(RuleParams):
    # Workloads whose data is only consistent through VSS (production checkpoints).
    roles: list[RoleName] = Field(default_factory=lambda: list(TRANSACTIONAL_ROLES))


def checkpoint_type(req: Request, facts: Facts, ctx: Context, rule: ResolvedRule) -> RuleOutcome:
    vm = req.vm_name
    if (skip := _create_only(req, rule)) is not None:
        return skip
    assert isinstance(rule.params, CheckpointTypeParams)
    roles, roles_fact = roles_of(facts)
    kvp = facts.get("kvp_product_type")
    used = {"roles": roles_fact}
    if roles is None:
        return unknown(rule, vm, used, "which workloads it runs")
    required = sorted(set(rule.params.roles) & roles)
    # The guest's ProductType is a second opinion, read only when it could
    # add a DC the inventory does not declare; then it is a fact this answer
    # rests on. Unknown KVP is the domain_controller rule's case.
    if kvp.known and "domain_controller" in set(rule.params.roles) - roles:
        used["kvp_product_type"] = kvp
        if kvp.value == 2:
            required = sorted({*required, "domain_controller"})  # the guest says it is a DC
    if not required:
        return passed(rule, f"{vm} runs no transactional workload: any checkpoint type works", used)
    workloads = roles_words(required)
    if req.checkpoint_type == CheckpointKind.STANDARD:
        return fire(
            rule,
            f"{vm} is {workloads}: {_why_not_standard(required)}; only production "
            "checkpoints are supported",
            "ask for a production checkpoint (it will be taken as production-only)",
            used,
        )
    if req.checkpoint_type == CheckpointKind.PRODUCTION_ONLY:
        return passed(rule, f"{vm} is {workloads}: production-only, as required", used)
    return passed(
        rule,
        f"{vm} is {workloads}: taken as production-only, so Hyper-V fails instead of "
        "falling back to a standard checkpoint if VSS fails",
        used,
        adjustments={"checkpoint_type": CheckpointKind.PRODUCTION_ONLY.value},
    )


_DIRECTORY_ROLES = frozenset({"domain_controller", "read_only_domain_controller"})
# Why a standard checkpoint is wrong, by what the VM is: a DC's harm is to
# Active Directory's replication (USN rollback), a database's to its
# transactions. https://learn.microsoft.com/windows-server/identity/ad-ds/
# get-started/virtual-dc/virtualized-domain-controller-architecture
_DIRECTORY_WHY = (
    "a standard checkpoint saves the running DC's memory, not a VSS-consistent copy of "
    "Active Directory: restoring it puts back update sequence numbers its replication "
    "partners have already seen (USN rollback: AD replication diverges)"
)
_TRANSACTIONS_WHY = (
    "a standard checkpoint saves memory, not a VSS-consistent image, so in-flight "
    "transactions are lost on restore"
)


def _why_not_standard(roles: list[str]) -> str:
    """The reason that fits what the VM is; both when it is a DC and a database."""
    directory = bool(_DIRECTORY_ROLES & set(roles))
    transactional = bool(set(roles) - _DIRECTORY_ROLES)
    if directory and transactional:
        return f"{_DIRECTORY_WHY}; and {_TRANSACTIONS_WHY}"
    return _DIRECTORY_WHY if directory else _TRANSACTIONS_WHY


class CheckpointsDisabledParams(RuleParams):
    # A wrong guess only makes Hyper-V refuse the checkpoint with an error, so
    # an unconfirmed setting goes to a human rather than being refused.
    on_unknown: Literal["deny", "needs_approval"] = "needs_approval"


def checkpoints_disabled(
    req: Request, facts: Facts, ctx: Context, rule: ResolvedRule
) -> RuleOutcome:
    vm = req.vm_name
    if (skip := _create_only(req, rule)) is not None:
        return skip
    on_host, declared = facts.get("vm_checkpoint_type"), facts.get("inv_checkpoint_type")
    used = {"vm_checkpoint_type": on_host, "inv_checkpoint_type": declared}
    for fact, where in ((on_host, "on the host"), (declared, "in the inventory")):
        if fact.known and fact.value == "Disabled":
            return fire(
                rule,
                f"checkpoints are disabled for {vm} (CheckpointType is Disabled {where}): "
                "Hyper-V refuses to take one",
                "ask the VM's owner why; if it is safe, Set-VM -CheckpointType ProductionOnly "
                "and update the inventory, then ask again",
                used,
            )
    if not on_host.known:
        # Not silently trusting the inventory: the host is what Hyper-V obeys.
        return unknown(rule, vm, used, "whether checkpoints are enabled (the host's setting)")
    # The host's setting is what Hyper-V obeys; an unknown inventory entry
    # does not weaken it (a declared Disabled was refused above).
    return passed(
        rule,
        f"checkpoints are enabled for {vm} (CheckpointType {on_host.value} on the host)",
        {"vm_checkpoint_type": on_host},
    )


def unsupported_disks(req: Request, facts: Facts, ctx: Context, rule: ResolvedRule) -> RuleOutcome:
    vm = req.vm_name
    if (skip := _create_only(req, rule)) is not None:
        return skip
    passthrough, used = riskier(facts, "inv_passthrough", "disk_passthrough")
    fibre, used_fc = riskier(facts, "inv_fibre_channel", "disk_fibre_channel")
    used |= used_fc
    kinds = [
        k
        for k, hit in (("a pass-through disk", passthrough), ("virtual Fibre Channel", fibre))
        if hit
    ]
    if kinds:
        return fire(
            rule,
            f"{vm} uses {' and '.join(kinds)}: Hyper-V cannot checkpoint pass-through or "
            "virtual Fibre Channel storage",
            "protect the data on the SAN side (array snapshot) or back the VM up instead",
            used,
        )
    if passthrough is None or fibre is None:
        return unknown(rule, vm, used, "whether it has pass-through or Fibre Channel disks")
    return passed(rule, f"{vm} has only virtual hard disks", used)


class CheckpointCountParams(RuleParams):
    # Hyper-V's hard limit is 50; long chains slow every disk read long before.
    max: int = Field(default=3, ge=1, le=HYPERV_MAX_CHECKPOINTS)


def checkpoint_count(req: Request, facts: Facts, ctx: Context, rule: ResolvedRule) -> RuleOutcome:
    vm = req.vm_name
    if (skip := _create_only(req, rule)) is not None:
        return skip
    assert isinstance(rule.params, CheckpointCountParams)
    limit = min(rule.params.max, HYPERV_MAX_CHECKPOINTS)
    count = facts.get("checkpoint_count")
    used = {"checkpoint_count": count}
    if not count.known:
        return unknown(rule, vm, used, "how many checkpoints it has")
    have = int(count.value)
    if have + 1 > limit:
        return fire(
            rule,
            f"{vm} already has {have} checkpoint{'s' if have != 1 else ''}; another would "
            f"exceed the limit of {limit} per VM",
            # Shared by the CLI and Slack: each surface's own command, named as such.
            f"keep (merge) or roll back an older one first (`/checkpoint list {vm}` in Slack, "
            f"`checkpoint-bot checkpoint list {vm}` on the CLI)",
            used,
        )
    return passed(rule, f"{vm} has {have} of at most {limit} checkpoints", used)


SPECS = (
    RuleSpec(
        "checkpoint_type",
        checkpoint_type,
        CheckpointTypeParams,
        Effect.DENY,
        "AD, SQL and Exchange get production-only checkpoints, never standard",
    ),
    RuleSpec(
        "checkpoints_disabled",
        checkpoints_disabled,
        CheckpointsDisabledParams,
        Effect.DENY,
        "VMs whose CheckpointType is Disabled",
    ),
    RuleSpec(
        "unsupported_disks",
        unsupported_disks,
        RuleParams,
        Effect.DENY,
        "pass-through and virtual Fibre Channel disks cannot be checkpointed",
    ),
    RuleSpec(
        "checkpoint_count",
        checkpoint_count,
        CheckpointCountParams,
        Effect.DENY,
        "at most `max` checkpoints per VM",
    ),
)
