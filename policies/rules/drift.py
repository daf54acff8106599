"""Where discovery on the host disagrees with the inventory.

The other rules already take the riskier reading of the two; this one makes
the disagreement visible, so someone fixes the inventory instead of the bot
quietly guessing forever.
"""

from __future__ import annotations

from policies.model import Effect, Facts, Request, RuleOutcome
from policies.params import ResolvedRule, RuleParams
from policies.policy import Context
from policies.rules.base import RuleSpec, fire, not_applicable, passed


class DriftParams(RuleParams):
    pass


def inventory_drift(req: Request, facts: Facts, ctx: Context, rule: ResolvedRule) -> RuleOutcome:
    found = facts.get("contradictions")
    used = {"contradictions": found}
    if not found.known:
        return not_applicable(rule, f"nothing to compare: {found.value}")
    if not found.value:
        return passed(rule, f"what {req.vm_name}'s host reports agrees with the inventory", used)
    return fire(
        rule,
        f"{req.vm_name}: the host disagrees with the inventory: {'; '.join(found.value)} "
        "(the guardrails use the riskier reading)",
        "correct the VM's entry in the inventory (or the VM) so both agree",
        used,
    )


SPECS = (
    RuleSpec(
        "inventory_drift",
        inventory_drift,
        DriftParams,
        Effect.WARN,
        "discovery on the host contradicts the inventory",
    ),
)
