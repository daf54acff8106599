"""`evaluate()`: who may, then every built-in rule; the strictest fired effect decides.

Pure: data in, Decision out. No I/O, no clock (the time is `context.now`).
Each rule runs through the same frame: resolve its settings for this VM
(overrides by scope; an undecidable scope fails closed), skip it if disabled,
run it, then apply a live exemption or note an expired one.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any

from policies.access import approvers_for, authorize
from policies.model import (
    ACTION_PERMISSION,
    Decision,
    Effect,
    ExemptionNote,
    Facts,
    OutcomeKind,
    Request,
    RuleOutcome,
    Verdict,
    combine,
)
from policies.policy import Context, Policy, ScopeUnknown
from policies.registry import BUILTIN_RULES
from policies.rules.base import RuleSpec, unknown


def evaluate(request: Request, facts: Facts, context: Context) -> Decision:
    """Decide on `request` about the VM described by `facts`."""
    channel = request.channel if request.channel is not None else context.channel
    outcomes: list[RuleOutcome] = [
        authorize(
            context.policy,
            ACTION_PERMISSION[request.action],
            facts,
            request.requester,
            context.groups,
            channel,
        )
    ]
    outcomes += [_run(spec, request, facts, context) for spec in BUILTIN_RULES]
    verdict = combine(outcomes)
    adjustments: dict[str, Any] = {}
    for o in outcomes:
        if o.outcome in (OutcomeKind.FIRED, OutcomeKind.PASSED):
            adjustments.update(o.adjustments)
    schedule_at = _schedule_at(outcomes) if verdict is not Verdict.DENY else None
    approval = None
    if verdict is Verdict.NEEDS_APPROVAL:
        required = max((o.approval.required for o in outcomes if o.approval and o.fired), default=1)
        approval = approvers_for(context.policy, facts, request.requester, required)
    return Decision(verdict, tuple(outcomes), adjustments, approval, schedule_at)


def _schedule_at(outcomes: list[RuleOutcome]) -> datetime | None:
    starts = [
        o.schedule_at
        for o in outcomes
        if o.fired and o.effect is Effect.SCHEDULE and o.schedule_at is not None
    ]
    return max(starts, default=None)


def _run(spec: RuleSpec, request: Request, facts: Facts, ctx: Context) -> RuleOutcome:
    settings = ctx.policy.resolve(spec.id, facts)
    if isinstance(settings, ScopeUnknown):
        outcome = unknown(
            settings.base, request.vm_name, settings.facts, f"which {spec.id} settings apply"
        )
    elif not settings.enabled:
        where = f" for {'; '.join(settings.scopes)}" if settings.scopes else ""
        return RuleOutcome(
            spec.id, OutcomeKind.DISABLED, None, f"{spec.id} is disabled by the policy{where}"
        )
    else:
        outcome = spec.check(request, facts, ctx, settings)
    return _exempted(ctx.policy, outcome, request, ctx.now)


def _exempted(policy: Policy, outcome: RuleOutcome, request: Request, now: datetime) -> RuleOutcome:
    exemptions = policy.exemptions_for(outcome.rule)
    if not exemptions:
        return outcome
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
