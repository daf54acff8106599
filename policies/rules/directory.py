"""Active Directory: domain controllers and USN rollback.

Restoring a DC of a domain with more than one DC rolls its update sequence
numbers back while its partners remember newer ones: replication diverges,
lingering objects appear, the DC ends up quarantined (event 2095). Microsoft
supports only production checkpoints of AD DS guests and never the restore of
an RODC from a snapshot.
"""

from __future__ import annotations

from typing import Literal

from bot.domain import CheckpointKind, role_words
from policies.model import Action, Effect, Fact, Facts, Request, RuleOutcome
from policies.params import ResolvedRule, RuleParams
from policies.policy import Context
from policies.rules.base import RuleSpec, fire, not_applicable, passed, unknown

DC_ROLES = frozenset({"domain_controller", "read_only_domain_controller"})
_DC_PRODUCT_TYPE = 2


class DomainControllerParams(RuleParams):
    # Reached only when DC-ness itself cannot be established (the guest's KVP
    # is silent and the inventory says "not a DC"): a human confirms. A known
    # DC whose domain is unknown takes the riskier multi-DC reading instead.
    on_unknown: Literal["deny", "needs_approval"] = "needs_approval"


def _is_dc(facts: Facts) -> tuple[bool | None, bool, dict[str, Fact]]:
    """(is a DC?, declared in the inventory?, facts used); riskier reading wins."""
    roles, kvp = facts.get("roles"), facts.get("kvp_product_type")
    used = {"roles": roles, "kvp_product_type": kvp}
    declared = roles.known and bool(DC_ROLES & set(roles.value))
    seen = kvp.known and kvp.value == _DC_PRODUCT_TYPE
    if declared or seen:
        return True, declared, used
    if roles.known and kvp.known:
        return False, False, used
    return None, False, used


def domain_controller(req: Request, facts: Facts, ctx: Context, rule: ResolvedRule) -> RuleOutcome:
    vm = req.vm_name
    if req.action not in (Action.CREATE, Action.ROLLBACK):
        return not_applicable(rule, f"{req.action.value} does not change a DC's replication state")
    is_dc, declared, used = _is_dc(facts)
    if is_dc is None:
        return unknown(rule, vm, used, "whether it is a domain controller")
    if not is_dc:
        return passed(rule, f"{vm} is not a domain controller (inventory and guest agree)", used)
    roles = facts.get("roles")
    if (
        roles.known
        and "read_only_domain_controller" in roles.value
        and req.action is Action.ROLLBACK
    ):
        return fire(
            rule,
            f"{vm} is {role_words('read_only_domain_controller')}: an RODC must never be "
            "restored from a snapshot (USN rollback; Microsoft does not support it)",
            "rebuild the RODC from its partners instead of restoring it",
            used,
        )
    domain, dcs = facts.get("domain"), facts.get("domain_dcs")
    used |= {"domain": domain, "domain_dcs": dcs}
    # The domain's DCs the inventory lists, and this one (by name, any case).
    named = {str(n).casefold(): str(n) for n in dcs.value} if dcs.known else {}
    named.setdefault(vm.casefold(), vm)
    if dcs.known and len(named) > 1:
        # Partners the inventory lists are partners, whatever else is unsure.
        shown = ", ".join(sorted(named.values(), key=str.casefold))
        why = f"{domain.value} has {len(named)} domain controllers ({shown})"
    elif not declared and roles.known:
        # The guest says DC, the inventory does not: its DC list cannot be trusted.
        why = (
            "the guest reports ProductType 2 (a DC) but the inventory does not list it as one, "
            "so it may have partners the inventory does not list either"
        )
    elif not declared:
        why = (
            "its roles in the inventory are not confirmed yet (roles_unknown: true), so its "
            "domain may have DCs the inventory does not list"
        )
    elif not (domain.known and dcs.known):
        why = f"its domain is unknown ({domain.value or dcs.value}), so it may have partners"
    else:
        why = ""
    if why:
        return fire(
            rule,
            f"{vm} is {role_words('domain_controller')} and {why}: restoring a checkpoint of "
            "one DC causes USN rollback (replication diverges, lingering objects, the DC is "
            "quarantined)",
            "patch DCs one at a time and rely on AD replication; take a system-state backup "
            "instead of a checkpoint",
            used,
        )
    single = f"{vm} is the only domain controller of {domain.value}: no partner to diverge from"
    if req.action is Action.CREATE:
        return fire(
            rule,
            f"{single}; allowed only as a production checkpoint (production-only, so Hyper-V "
            "cannot fall back to standard); never restore it past the tombstone lifetime",
            "",
            used,
            effect=Effect.WARN,
            adjustments={"checkpoint_type": CheckpointKind.PRODUCTION_ONLY.value},
        )
    return fire(
        rule,
        f"{single}; restoring it loses every directory change since the checkpoint "
        "(and must not go past the tombstone lifetime)",
        "",
        used,
        effect=Effect.WARN,
    )


SPECS = (
    RuleSpec(
        "domain_controller",
        domain_controller,
        DomainControllerParams,
        Effect.DENY,
        "no checkpoints of DCs in multi-DC domains (USN rollback); single DC: production only",
    ),
)
