"""Change windows and approvals: when, and with whose agreement."""

from __future__ import annotations

import functools

from pydantic import Field

from bot.clock import utc_text as _utc_text
from policies.model import (
    Action,
    ApprovalRequirement,
    Effect,
    Fact,
    Facts,
    Request,
    RuleOutcome,
)
from policies.params import ResolvedRule, RuleParams
from policies.policy import Context
from policies.rules.base import RuleSpec, fire, not_applicable, passed, unknown
from policies.windows import Window, WindowNeverOpens

# A window's next opening is the same instant for every VM it covers: its
# text is made once (a pure function of the instant).
utc_text = functools.lru_cache(maxsize=256)(_utc_text)


class ChangeWindowParams(RuleParams):
    # Creating a checkpoint is protective, but it is also a change on a
    # production host (I/O, a differencing disk): windows govern it too.
    actions: list[Action] = Field(default_factory=lambda: [Action.CREATE, Action.ROLLBACK])


def change_window(req: Request, facts: Facts, ctx: Context, rule: ResolvedRule) -> RuleOutcome:
    p = rule.params
    assert isinstance(p, ChangeWindowParams)
    vm = req.vm_name
    if req.action not in p.actions:
        return not_applicable(rule, f"{req.action.value} is not bound to change windows")
    applying: list[Window] = []
    used: dict[str, Fact] = {}
    undecided = False
    for window in ctx.policy.windows:
        matches, consulted = window.matcher.matches(facts)
        used |= consulted
        undecided |= matches is None
        if matches:
            applying.append(window)
    if undecided:
        return unknown(rule, vm, used, "which change windows apply")
    if not applying:
        return passed(rule, f"no change window applies to {vm}", used)
    now = ctx.now
    for window in applying:
        until = window.open_until(now)
        if until is not None:
            return passed(
                rule,
                f"inside change window '{window.name}' until {utc_text(until)}",
                used,
            )
    names = ", ".join(f"'{w.name}'" for w in applying)
    openings = []
    for w in applying:
        try:
            openings.append((w, w.next_start(now)))
        except WindowNeverOpens:
            continue  # the loader refuses such a window; built elsewhere, it never opens
    if not openings:
        return fire(
            rule,
            f"{vm} is outside its change windows ({names}) and none of them opens again",
            "ask an admin to fix the windows in the policy, or for an exemption",
            used,
            effect=Effect.DENY,
        )
    window, start = min(openings, key=lambda pair: pair[1])
    opens = f"the next one, '{window.name}', opens {utc_text(start)}"
    if rule.effect is Effect.SCHEDULE and req.action is not Action.CREATE:
        # Only a create has a "scheduled" state to wait in; a rollback or a
        # merge outside its window is refused with the next opening, so
        # nothing is queued now and then failed ("window is closed") later.
        return fire(
            rule,
            f"{vm} is outside its change windows ({names}); {req.action.value} is not "
            f"scheduled, only creates are: {opens}",
            f"ask again after {utc_text(start)}, or ask an admin for an exemption",
            used,
            effect=Effect.DENY,
            schedule_at=start,
        )
    if rule.effect is Effect.SCHEDULE:
        return fire(
            rule,
            # The fact only: what the decision does with it (a create waits
            # for the opening) is its verdict's to say, and an `--at` refusal
            # quotes this line beside "nothing was recorded".
            f"{vm} is outside its change windows ({names}); {opens}",
            "nothing to do: it runs when the window opens (cancel it if plans change)",
            used,
            schedule_at=start,
        )
    later = f"ask again after {utc_text(start)}"
    return fire(
        rule,
        f"{vm} is outside its change windows ({names}); {opens}",
        # Outside its window it needs an approver, not the window.
        f"an approver may let it run now, or {later}"
        if rule.effect is Effect.NEEDS_APPROVAL
        else f"{later}, or ask an admin for an exemption",
        used,
        schedule_at=start,
    )


class ApprovalsParams(RuleParams):
    count: int = Field(default=0, ge=0, le=10)
    users: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    # Which actions need approval. Creating is the protective step an admin
    # needs in seconds before a risky change, so the shipped policy leaves it out.
    actions: list[Action] = Field(default_factory=lambda: [Action.ROLLBACK])
    # Message each listed approver directly too, not only in the thread.
    dm: bool = False


def approvals(req: Request, facts: Facts, ctx: Context, rule: ResolvedRule) -> RuleOutcome:
    p = rule.params
    assert isinstance(p, ApprovalsParams)
    where = f" ({'; '.join(rule.scopes)})" if rule.scopes else ""
    if req.action not in p.actions or p.count == 0:
        return passed(rule, f"{req.action.value} of {req.vm_name} needs no approval{where}", {})
    # Who exactly may approve (with admins and fallbacks) is settled by the engine.
    requirement = ApprovalRequirement(
        p.count, tuple(p.users), tuple(p.groups), excluded=(req.requester,), dm=p.dm
    )
    return fire(
        rule,
        f"{req.action.value} of {req.vm_name} needs {p.count} approval"
        f"{'s' if p.count != 1 else ''}{where}",
        "wait for an approver (the requester never counts)",
        {},
        approval=requirement,
    )


SPECS = (
    RuleSpec(
        "change_window",
        change_window,
        ChangeWindowParams,
        Effect.DENY,
        "outside the VM's change windows: refuse or schedule for the next opening",
        effects=frozenset({Effect.DENY, Effect.SCHEDULE, Effect.NEEDS_APPROVAL, Effect.WARN}),
    ),
    RuleSpec(
        "approvals",
        approvals,
        ApprovalsParams,
        Effect.NEEDS_APPROVAL,
        "N approvals from listed users or groups, never the requester",
        effects=frozenset({Effect.NEEDS_APPROVAL, Effect.DENY, Effect.WARN}),
    ),
)
