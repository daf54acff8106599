"""What every rule shares: its resolved settings and outcome builders.

A rule is a pure function `(request, facts, ctx, rule) -> RuleOutcome`. It
returns PASSED with a short "why it's fine", FIRED with the effect and a
remediation, or NOT_APPLICABLE for actions it has nothing to say about.
When a fact it needs is unknown it fires `params.on_unknown` and names the
fact and why it is unknown; it never passes on a guess.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from policies.model import (
    ApprovalRequirement,
    Effect,
    Fact,
    Facts,
    OutcomeKind,
    Request,
    RuleOutcome,
)
from policies.params import ResolvedRule, RuleParams
from policies.policy import Context

if TYPE_CHECKING:
    from datetime import datetime


RuleCheck = Callable[[Request, Facts, Context, ResolvedRule], RuleOutcome]


@dataclass(frozen=True)
class RuleSpec:
    id: str
    check: RuleCheck
    params: type[RuleParams]
    default_effect: Effect
    summary: str
    # Effects the config may choose; SCHEDULE only means something for windows.
    effects: frozenset[Effect] = frozenset({Effect.DENY, Effect.NEEDS_APPROVAL, Effect.WARN})


def passed(
    rule: ResolvedRule,
    message: str,
    facts: Mapping[str, Fact],
    adjustments: Mapping[str, Any] | None = None,
) -> RuleOutcome:
    # The mappings are the rule's own, made for this answer: kept, not copied.
    return RuleOutcome(rule.id, OutcomeKind.PASSED, None, message, "", facts, adjustments)


# NOT_APPLICABLE answers depend on the rule and the action alone: made once.
# Bounded (rule ids x actions is a few dozen) in case a message ever varies.
_NOT_APPLICABLE: dict[tuple[str, str], RuleOutcome] = {}
_NOT_APPLICABLE_KEPT = 512


def not_applicable(rule: ResolvedRule, message: str) -> RuleOutcome:
    key = (rule.id, message)
    found = _NOT_APPLICABLE.get(key)
    if found is None:
        found = RuleOutcome(rule.id, OutcomeKind.NOT_APPLICABLE, None, message)
        if len(_NOT_APPLICABLE) < _NOT_APPLICABLE_KEPT:
            _NOT_APPLICABLE[key] = found
    return found


def fire(
    rule: ResolvedRule,
    message: str,
    remediation: str,
    facts: Mapping[str, Fact],
    *,
    effect: Effect | None = None,
    adjustments: Mapping[str, Any] | None = None,
    approval: ApprovalRequirement | None = None,
    schedule_at: datetime | None = None,
    for_want_of_facts: bool = False,
) -> RuleOutcome:
    return RuleOutcome(
        rule.id,
        OutcomeKind.FIRED,
        effect or rule.effect,
        message,
        remediation,
        facts,
        adjustments,
        approval,
        schedule_at,
        None,
        for_want_of_facts,
    )


UNKNOWN_REMEDIATION = (
    "make the fact known (start the VM, fix the host's reachability or the inventory), "
    "then ask again"
)


def unknown_fact(name: str, fact: Fact) -> str:
    """`name is unknown (why; from source)`: how a rule names a fact it lacks."""
    return f"{name} is unknown ({fact.value or 'no reason given'}; from {fact.source})"


def unknown_then(rule: ResolvedRule) -> str:
    """What failing closed does to the request, in the rule's message."""
    if rule.on_unknown is Effect.DENY:
        return "refused until it is known"
    return "a human must approve instead"


def unknown_remediation(vm: str, facts: Mapping[str, Fact]) -> str:
    """What makes the missing facts known. Roles come from the inventory
    alone: while they are unset (`roles_unknown`), nothing on the host or
    the network helps, and saying so sends the reader to the wrong place."""
    missing = {name for name, f in facts.items() if not f.known}
    if missing == {"roles"}:
        return (
            f"set {vm}'s roles: in the inventory (roles: [other] when none applies) and "
            "delete its roles_unknown: true, then ask again"
        )
    return UNKNOWN_REMEDIATION


def unknown(rule: ResolvedRule, vm: str, facts: Mapping[str, Fact], question: str) -> RuleOutcome:
    """Fail closed: `question` is what the rule could not settle."""
    missing = "; ".join(unknown_fact(name, f) for name, f in facts.items() if not f.known)
    return fire(
        rule,
        f"{vm}: cannot tell {question}: {missing}; {unknown_then(rule)}",
        unknown_remediation(vm, facts),
        facts,
        effect=rule.on_unknown,
        for_want_of_facts=True,
    )


def riskier(facts: Facts, *names: str) -> tuple[bool | None, dict[str, Fact]]:
    """The riskier reading of several sources for one yes/no risk: any known
    "yes" is yes; "no" needs every source known; otherwise unknown (None)."""
    used = {n: facts.get(n) for n in names}
    answer: bool | None = False
    for f in used.values():
        if not f.known:
            answer = None
        elif f.value:
            return True, used
    return answer, used


def roles_of(facts: Facts) -> tuple[set[str] | None, Fact]:
    roles = facts.get("roles")
    return (set(roles.value) if roles.known else None), roles
