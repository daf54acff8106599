"""`evaluate()`: who may, then every built-in rule; the strictest fired effect decides.

Pure: data in, Decision out. No I/O, no clock (the time is `context.now`).
Each rule runs through the same frame: resolve its settings for this VM
(overrides by scope; an undecidable scope fails closed), skip it if disabled,
run it, then apply a live exemption or note an expired one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any

from policies.access import approvers_for, authorize, unapprovable_outcome
from policies.model import (
    ACTION_PERMISSION,
    EMPTY,
    Decision,
    Effect,
    ExemptionNote,
    Facts,
    OutcomeKind,
    Request,
    RuleOutcome,
    Verdict,
)
from policies.params import ResolvedRule
from policies.policy import Context, Policy, ScopeUnknown
from policies.registry import BUILTIN_RULES
from policies.rules.base import RuleSpec, unknown
from policies.schema import ExemptionConfig


@dataclass(frozen=True)
class _Step:
    """One rule as this policy runs it, worked out when the policy is first
    used: the settings when no override can apply (None: resolve per VM),
    and the exemptions naming it."""

    spec: RuleSpec
    fixed: ResolvedRule | None
    exemptions: tuple[ExemptionConfig, ...]


def _plan(policy: Policy) -> tuple[_Step | None, ...]:
    """The permissions check (None), then every built-in rule in order."""
    plan: tuple[_Step | None, ...] | None = policy.memo.get(_PLAN)
    if plan is None:
        plan = (
            None,
            *(
                _Step(
                    spec,
                    None if policy.rules[spec.id].overrides else policy.rules[spec.id].base,
                    policy.exemptions_for(spec.id),
                )
                for spec in BUILTIN_RULES
            ),
        )
        # Racing threads store equal plans: it is a pure function of the policy.
        policy.memo[_PLAN] = plan
    return plan


_PLAN = "engine.plan"
_FIRED, _PASSED = OutcomeKind.FIRED, OutcomeKind.PASSED


def evaluate(request: Request, facts: Facts, context: Context) -> Decision:
    """Decide on `request` about the VM described by `facts`."""
    policy = context.policy
    outcomes: list[RuleOutcome] = []
    # The strictest effect among fired rules decides (deny over
    # needs_approval over allow; warnings and schedules keep the verdict),
    # tallied with the adjustments and the schedule as the rules answer.
    verdict = Verdict.ALLOW
    adjustments: dict[str, Any] | None = None  # made when a rule adjusts something
    starts: list[datetime] = []
    required = 0
    for step in _plan(policy):
        if step is None:  # who may: first, as the table shows it
            channel = request.channel if request.channel is not None else context.channel
            outcome = authorize(
                policy,
                ACTION_PERMISSION[request.action],
                facts,
                request.requester,
                context.groups,
                channel,
            )
        else:
            settings = step.fixed or policy.resolve(step.spec.id, facts)
            if isinstance(settings, ScopeUnknown):
                outcome = unknown(
                    settings.base,
                    request.vm_name,
                    settings.facts,
                    f"which {step.spec.id} settings apply",
                )
            elif not settings.enabled:
                outcomes.append(_disabled(step.spec.id, settings.scopes))
                continue
            else:
                outcome = step.spec.check(request, facts, context, settings)
            if step.exemptions:
                outcome = _exempted(step.exemptions, outcome, request, context.now)
        outcomes.append(outcome)
        kind = outcome.outcome
        if kind is _FIRED:
            effect = outcome.effect
            if effect is Effect.DENY:
                verdict = Verdict.DENY
            elif effect is Effect.NEEDS_APPROVAL:
                if verdict is Verdict.ALLOW:
                    verdict = Verdict.NEEDS_APPROVAL
            elif effect is Effect.SCHEDULE and outcome.schedule_at is not None:
                starts.append(outcome.schedule_at)
            if outcome.approval is not None and outcome.approval.required > required:
                required = outcome.approval.required
        elif kind is not _PASSED:
            continue
        if outcome.adjustments:
            if adjustments is None:
                adjustments = {}
            adjustments.update(outcome.adjustments)
    schedule_at = max(starts, default=None) if verdict is not Verdict.DENY else None
    approval = None
    if verdict is Verdict.NEEDS_APPROVAL:
        approval = approvers_for(policy, facts, request.requester, max(required, 1))
        # Named approvers whom permissions.approve refuses: their approval
        # would be refused at approval time, so the requester is told now
        # (and that it can never be approved, when nobody else may).
        refused = unapprovable_outcome(policy, approval)
        if refused is not None:
            outcomes.append(refused)
    return Decision(verdict, tuple(outcomes), adjustments or EMPTY, approval, schedule_at)


def _disabled(rule: str, scopes: tuple[str, ...]) -> RuleOutcome:
    where = f" for {'; '.join(scopes)}" if scopes else ""
    return RuleOutcome(rule, OutcomeKind.DISABLED, None, f"{rule} is disabled by the policy{where}")


def _exempted(
    exemptions: tuple[ExemptionConfig, ...], outcome: RuleOutcome, request: Request, now: datetime
) -> RuleOutcome:
    found = [e for e in exemptions if fnmatchcase(request.vm_name.casefold(), e.vm.casefold())]
    if not found:
        return outcome
    today = now.date()
    live = [e for e in found if today < e.expires]
    if live:
        e = max(live, key=lambda x: x.expires)
        note = ExemptionNote(request.vm_name, e.reason, e.approved_by, e.expires, expired=False)
        if not outcome.fired or outcome.effect is Effect.WARN:
            return replace(outcome, exemption=note)
        return replace(
            outcome,
            outcome=OutcomeKind.EXEMPT,
            message=(
                f"exempt until {e.expires.isoformat()} ({e.reason}; approved by "
                f"{e.approved_by}); without the exemption: {outcome.message}"
            ),
            adjustments={},
            approval=None,
            schedule_at=None,
            exemption=note,
        )
    e = max(found, key=lambda x: x.expires)
    note = ExemptionNote(request.vm_name, e.reason, e.approved_by, e.expires, expired=True)
    return replace(
        outcome,
        message=(
            f"{outcome.message} (exemption for {request.vm_name} expired on "
            f"{e.expires.isoformat()}, so the rule applies)"
        ),
        exemption=note,
    )
