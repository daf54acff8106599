"""Approve and reject what waits for approvers: a create, a rollback, an
extension. The requester never counts, every approver is checked against
the policy, and the policy is asked again once enough have approved."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlmodel import Session, col, select

from bot.changes import Command, State
from bot.changes.record import ConcurrentUpdate, get_change, note, transition
from bot.service.deciding import Principal, as_principal
from bot.service.errors import Conflict, Forbidden
from bot.service.requests import (
    apply_extension,
    begin_host_action,
    find_change,
    resolve_vm,
    start_create,
    view,
)
from bot.service.views import ChangeView
from bot.store.db import session_scope
from bot.store.models import ApprovalRequest, Change, change_ref
from policies import (
    Action,
    ApprovalRequirement,
    Decision,
    Verdict,
    authorize,
    check_approver,
)

if TYPE_CHECKING:
    from bot.context import AppContext


@dataclass(frozen=True)
class ApprovalOutcome:
    """Where an approval stands after a click: still waiting, carried out
    (with the job that runs it), refused on re-check, or rejected."""

    change: ChangeView
    action: str
    state: str  # pending | approved | refused | rejected
    approvals: int
    required: int
    decision: Decision | None = None
    job_id: int | None = None


def _pending(s: Session, change_id: int) -> ApprovalRequest:
    found = s.exec(
        select(ApprovalRequest)
        .where(ApprovalRequest.change_id == change_id, ApprovalRequest.state == "pending")
        .order_by(col(ApprovalRequest.id))
    ).first()
    if found is None:
        raise Conflict(f"{change_ref(change_id)} has nothing waiting for approval")
    return found


def _may_decide(ctx: AppContext, request: ApprovalRequest, who: Principal, verb: str) -> None:
    requirement = ApprovalRequirement.from_dict(request.requirement)
    ok, why = check_approver(requirement, who.id, who.groups, request.requested_by)
    if not ok:
        raise Forbidden(f"you cannot {verb} {change_ref(request.change_id)}: {why}")
    # The approve permission may also be limited by channel and scope.
    with session_scope(ctx.engine) as s:
        change = get_change(s, request.change_id)
    vm = resolve_vm(ctx, change.vm_name)
    # Rejecting runs nothing, so it needs no live answer from the host.
    facts = ctx.decider.facts(vm, change=change, strict=verb == "approve")
    permitted = authorize(ctx.policy, "approve", facts, who.id, who.groups, who.channel)
    if permitted.fired:
        raise Forbidden(f"you cannot {verb} {change_ref(request.change_id)}: {permitted.message}")


def _decide_again(ctx: AppContext, change: Change, request: ApprovalRequest) -> Decision:
    vm = resolve_vm(ctx, change.vm_name)
    who = Principal(request.requested_by)
    action = Action(request.action)
    extend_to = request.params.get("extend_to")
    return ctx.decider.decide(
        vm,
        action,
        who,
        checkpoint_type=change.checkpoint_type,
        change=change if action is not Action.CREATE else None,
        extend_to=datetime.fromisoformat(extend_to) if extend_to else None,
    )


def approve(ctx: AppContext, ref: str, *, approver: str | Principal) -> ApprovalOutcome:
    who = as_principal(approver)
    change_id = find_change(ctx, ref)
    now = ctx.clock()
    with session_scope(ctx.engine) as s:
        request = _pending(s, change_id)
        change = get_change(s, change_id)
    _may_decide(ctx, request, who, "approve")
    if any(a.get("by") == who.id for a in request.approvals):
        raise Conflict(f"you already approved {change_ref(change_id)}")
    decision = None
    if len(request.approvals) + 1 >= request.required:
        # This approval completes the request, so the policy is asked again
        # first: a host that cannot be reached (HostUnavailable) leaves the
        # request exactly as it was, and the approver can simply try again.
        decision = _decide_again(ctx, change, request)
    try:
        with session_scope(ctx.engine) as s:
            change = get_change(s, change_id)
            request = _pending(s, change_id)
            request.approvals = [*request.approvals, {"by": who.id, "at": now.isoformat()}]
            s.add(request)
            count, required, action = len(request.approvals), request.required, request.action
            note(
                s,
                change,
                kind="approval",
                actor=who.id,
                now=now,
                message=f"{action} approved by {who.id} ({count} of {required})",
            )
    except ConcurrentUpdate:
        raise Conflict(
            f"{change_ref(change_id)} changed while you approved; nothing was recorded, try again"
        ) from None
    if count < required:
        result = ApprovalOutcome(view(ctx, change_id), action, "pending", count, required)
    else:
        result = _carry_out(ctx, change_id, who, now, decision)
    ctx.notifier.changed(change_id)
    return result


def _carry_out(
    ctx: AppContext, change_id: int, who: Principal, now: datetime, decided: Decision | None
) -> ApprovalOutcome:
    with session_scope(ctx.engine) as s:
        change = get_change(s, change_id)
        request = _pending(s, change_id)
    decision = decided if decided is not None else _decide_again(ctx, change, request)
    approved, action = len(request.approvals), request.action
    still_short = decision.approval is not None and approved < decision.approval.required
    with session_scope(ctx.engine) as s:
        change = get_change(s, change_id)
        request = _pending(s, change_id)
        request.resolved_at, request.resolved_by = now, who.id
        if decision.verdict is Verdict.DENY:
            request.state = "refused"
            s.add(request)
            message = "re-checked on approval: " + "; ".join(decision.reasons)
            if request.action == "create":
                transition(
                    s,
                    change,
                    Command.DENY,
                    actor="policy",
                    now=now,
                    message=message,
                    details=decision.to_dict(),
                )
            else:
                note(
                    s,
                    change,
                    kind=f"{request.action}_refused",
                    actor="policy",
                    now=now,
                    message=message,
                    details=decision.to_dict(),
                )
            return ApprovalOutcome(
                ChangeView.of(change), action, "refused", approved, request.required, decision
            )
        if still_short:
            # The policy now asks for more approvers than it did.
            assert decision.approval is not None
            request.required = decision.approval.required
            s.add(request)
            note(
                s,
                change,
                kind="awaits_approval",
                actor="policy",
                now=now,
                message=f"now needs {decision.approval.describe()}",
            )
            return ApprovalOutcome(
                ChangeView.of(change), action, "pending", approved, request.required, decision
            )
        request.state = "approved"
        s.add(request)
        required = request.required
        if action == "create":
            transition(
                s,
                change,
                Command.APPROVE,
                actor=who.id,
                now=now,
                message="approved",
                details=decision.to_dict(),
            )
        elif action == "extend":
            apply_extension(
                s, change, datetime.fromisoformat(request.params["extend_to"]), who.id, now
            )
    job_id = None
    if action == "create":
        job_id = start_create(ctx, change_id, decision.schedule_at)
    elif action in ("rollback", "merge"):
        job_id = begin_host_action(ctx, change_id, Action(action), request.requested_by)
    return ApprovalOutcome(
        view(ctx, change_id), action, "approved", approved, required, decision, job_id
    )


def reject(
    ctx: AppContext, ref: str, *, approver: str | Principal, reason: str = ""
) -> ApprovalOutcome:
    who = as_principal(approver)
    change_id = find_change(ctx, ref)
    now = ctx.clock()
    with session_scope(ctx.engine) as s:
        seen = _pending(s, change_id)
    _may_decide(ctx, seen, who, "reject")
    try:
        with session_scope(ctx.engine) as s:
            request = _pending(s, change_id)
            if request.id != seen.id:
                raise Conflict(f"{change_ref(change_id)} changed while you rejected; look again")
            change = get_change(s, change_id)
            request.state, request.resolved_at, request.resolved_by = "rejected", now, who.id
            s.add(request)
            action, count, required = request.action, len(request.approvals), request.required
            message = f"{action} rejected by {who.id}" + (f": {reason}" if reason else "")
            if request.action == "create" and change.state == State.AWAITING_APPROVAL:
                transition(s, change, Command.REJECT, actor=who.id, now=now, message=message)
            else:
                note(
                    s,
                    change,
                    kind=f"{request.action}_rejected",
                    actor=who.id,
                    now=now,
                    message=message,
                )
    except ConcurrentUpdate:
        raise Conflict(f"{change_ref(change_id)} changed while you rejected; look again") from None
    ctx.notifier.changed(change_id)
    return ApprovalOutcome(view(ctx, change_id), action, "rejected", count, required)
