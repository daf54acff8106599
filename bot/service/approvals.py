"""Approve and reject what waits for approvers: a create, a rollback, a
merge, an extension. The requester never counts, every approver is checked
against the policy, and the policy is asked again once enough have approved.

Each call acts on one approval request, the one its `Target` means
(`bot.service.binding`): a button's own request, the one named, or the only
one waiting. It is looked up again in the transaction that writes, so a
request settled meanwhile is never approved by a click meant for it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlmodel import Session

from bot.changes import Command, IllegalTransition, State
from bot.changes.batch_load import Rejection
from bot.changes.record import ConcurrentUpdate, get_change, note, transition
from bot.changes.views import ON_BEHALF_OF, ChangeView
from bot.domain import ApprovalState
from bot.reasons import REJECT_EXAMPLE, ReasonError, check_reason
from bot.service.binding import Stale, Target, bound_request
from bot.service.deciding import Principal, as_principal
from bot.service.errors import BadRequest, Conflict, Forbidden, changed_meanwhile
from bot.service.finding import find_change
from bot.service.requests import (
    apply_extension,
    record_create,
    record_host_action,
    refused_now,
    start_host_action,
    view,
)
from bot.service.vm_target import vm_of_change
from bot.store.db import session_scope
from bot.store.tables import change_ref
from bot.store.tables.approvals import ApprovalRequest
from bot.store.tables.changes import Change
from policies import (
    Action,
    ApprovalRequirement,
    Decision,
    Verdict,
    authorize,
    check_approver,
)

if TYPE_CHECKING:
    from bot.service.deps import ServiceDeps

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApprovalOutcome:
    """Where an approval stands after a click: still waiting, carried out
    (with the job that runs it), refused on re-check, or rejected."""

    change: ChangeView
    action: str
    state: ApprovalState
    approvals: int
    required: int
    decision: Decision | None = None
    job_id: int | None = None
    # The approval request this settled or advanced.
    request_id: int | None = None
    # Approved and its job recorded, but the queue did not take it yet.
    waits_for_queue: bool = False


def _may_decide(ctx: ServiceDeps, request: ApprovalRequest, who: Principal, verb: str) -> None:
    requirement = ApprovalRequirement.from_dict(request.requirement)
    ok, why = check_approver(
        requirement, who.id, who.groups, request.requested_by, verb, request.action
    )
    if not ok:
        ref = change_ref(request.change_id)
        # A refused approval writes nothing to the change (any click would
        # then grow its record); the log keeps who tried, for an audit.
        log.info("%s: %s %s refused: %s", ref, who.id, verb, why)
        if verb == "reject" and who.id == request.requested_by:
            # The requester's own way out is a withdrawal, which needs no approver.
            why += f"; to take your own request back, withdraw it (withdraw {ref})"
        raise Forbidden(f"you cannot {verb} {ref}: {why}")
    # The approve permission may also be limited by channel and scope.
    with session_scope(ctx.engine) as s:
        change = get_change(s, request.change_id)
    vm = vm_of_change(ctx, change, verb)
    # Rejecting runs nothing, so it needs no live answer from the host.
    facts = ctx.decider.facts(vm, change=change, strict=verb == "approve")
    permitted = authorize(ctx.policy, "approve", facts, who.id, who.groups, who.channel)
    if permitted.fired:
        ref = change_ref(request.change_id)
        log.info("%s: %s %s refused: %s", ref, who.id, verb, permitted.message)
        raise Forbidden(f"you cannot {verb} {ref}: {permitted.message}")


def _requester(ctx: ServiceDeps, change: Change, request: ApprovalRequest) -> Principal:
    """Who asked, as of now: their groups resolved again, the same way as when
    they asked (`GroupsUnavailable` when Slack cannot say: nothing decided)."""
    channel = request.requested_in or change.channel
    return ctx.decider.principal(request.requested_by, request.requested_by_team, channel)


def _decide_again(ctx: ServiceDeps, change: Change, request: ApprovalRequest) -> Decision:
    vm = vm_of_change(ctx, change, "approve")
    who = _requester(ctx, change, request)
    action = Action(request.action)
    extend_to = request.params.get("extend_to")
    # A create asked for at a time (`--at`) is decided as of that time, as
    # when it was asked: its window is open then, whatever it is now.
    later = change.run_at if action is Action.CREATE else None
    return ctx.decider.decide(
        vm,
        action,
        who,
        checkpoint_type=change.checkpoint_type,
        change=change if action is not Action.CREATE else None,
        extend_to=datetime.fromisoformat(extend_to) if extend_to else None,
        now=later if later is not None and later > ctx.clock() else None,
    )


def _bound(s: Session, change_id: int, target: Target, verb: str) -> ApprovalRequest:
    return bound_request(s, get_change(s, change_id), target, verb)


def _refreshing(ctx: ServiceDeps, change_id: int, exc: Stale) -> Stale:
    # The card the click came from is out of date: bring it up to date.
    ctx.notifier.changed(change_id)
    return exc


def approve(
    ctx: ServiceDeps,
    ref: str,
    *,
    approver: str | Principal,
    target: Target | None = None,
    deliver: bool = True,
) -> ApprovalOutcome:
    """Approve the request `target` means (default: the only one waiting).
    `deliver=False` leaves the job it records for the caller to hand to the
    queue (`ctx.deliver`), after what the caller records about it: a wave's
    approval is in its thread before any member's job can end."""
    who = as_principal(approver)
    aim = target or Target()
    change_id = find_change(ctx, ref, verb="approve")
    now = ctx.clock()
    try:
        with session_scope(ctx.engine) as s:
            request = _bound(s, change_id, aim, "approve")
            change = get_change(s, change_id)
    except Stale as exc:
        raise _refreshing(ctx, change_id, exc) from None
    assert request.id is not None
    request_id = request.id
    # Bound to the request found, from here on: a legacy target also to its version.
    bound = Target(request_id=request_id, version=aim.version if aim.legacy else None)
    _may_decide(ctx, request, who, "approve")
    if any(a.get("by") == who.id for a in request.approvals):
        raise Conflict(f"you already approved the {request.action} of {change_ref(change_id)}")
    decision = None
    if len(request.approvals) + 1 >= request.required:
        # This approval completes the request, so the policy is asked again
        # first: a host that cannot be reached (HostUnavailable) leaves the
        # request exactly as it was, and the approver can simply try again.
        decision = _decide_again(ctx, change, request)
    try:
        with session_scope(ctx.engine) as s:
            change = _claimed(s, change_id)
            request = bound_request(s, change, bound, "approve")
            if aim.legacy and change.version != aim.version:
                raise changed_meanwhile(change_id, "approved")
            _counts(request, who)
            approval = {"by": who.id, "team": who.team, "at": now.isoformat()}
            request.approvals = [*request.approvals, approval]
            s.add(request)
            count, required, action = len(request.approvals), request.required, request.action
            note(
                s,
                change,
                kind="approval",
                actor=who.id,
                actor_team=who.team,
                now=now,
                message=f"{action} approved ({count} of {required})",
                details={"request": request_id, "action": action},
            )
    except Stale as exc:
        raise _refreshing(ctx, change_id, exc) from None
    except ConcurrentUpdate:
        raise changed_meanwhile(change_id, "approved", "nothing was recorded, try again") from None
    if count < required:
        result = ApprovalOutcome(
            view(ctx, change_id),
            action,
            ApprovalState.PENDING,
            count,
            required,
            request_id=request_id,
        )
    else:
        result = _carry_out(ctx, change_id, request_id, who, now, decision, deliver=deliver)
    ctx.notifier.changed(change_id)
    return result


def _claimed(s: Session, change_id: int) -> Change:
    """The change, its row locked until this transaction ends (PostgreSQL's
    `SELECT ... FOR UPDATE`; SQLite's `BEGIN IMMEDIATE` already serializes
    writers): approvals of one change are counted one at a time, each
    against what the previous ones committed."""
    change = s.get(Change, change_id, populate_existing=True, with_for_update=True)
    return change if change is not None else get_change(s, change_id)


def _counts(request: ApprovalRequest, who: Principal) -> None:
    """Refuse an approval that would not count, before anything is written:
    a second one by the same person, or one more once enough are in (the
    approval that completed the request is being carried out)."""
    ref = change_ref(request.change_id)
    if any(a.get("by") == who.id for a in request.approvals):
        raise Conflict(f"you already approved the {request.action} of {ref}")
    if len(request.approvals) >= request.required:
        raise Conflict(
            f"the {request.action} of {ref} already has the "
            f"{request.required} approval(s) it needs; yours was not recorded"
        )


def _still_pending(s: Session, change_id: int, request_id: int) -> ApprovalRequest:
    request = s.get(ApprovalRequest, request_id, populate_existing=True)
    if request is None or request.state != ApprovalState.PENDING:
        # Another approver's click carried it out a moment earlier.
        raise Conflict(f"{change_ref(change_id)}'s request was settled meanwhile; look again")
    return request


def _carry_out(
    ctx: ServiceDeps,
    change_id: int,
    request_id: int,
    who: Principal,
    now: datetime,
    decided: Decision | None,
    *,
    deliver: bool,
) -> ApprovalOutcome:
    with session_scope(ctx.engine) as s:
        change = get_change(s, change_id)
        request = _still_pending(s, change_id, request_id)
    decision = decided if decided is not None else _decide_again(ctx, change, request)
    approved, action = len(request.approvals), request.action
    still_short = decision.approval is not None and approved < decision.approval.required
    job_id = None
    try:
        with session_scope(ctx.engine) as s:
            change = get_change(s, change_id)
            request = _still_pending(s, change_id, request_id)
            request.resolved_at, request.resolved_by = now, who.id
            request.resolved_by_team = who.team
            if decision.verdict is Verdict.DENY:
                request.state = ApprovalState.REFUSED
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
                        details={**decision.to_dict(), ON_BEHALF_OF: who.id},
                    )
                else:
                    note(
                        s,
                        change,
                        kind=f"{request.action}_refused",
                        actor="policy",
                        now=now,
                        message=message,
                        details={**decision.to_dict(), ON_BEHALF_OF: who.id},
                    )
                return ApprovalOutcome(
                    ChangeView.of(change),
                    action,
                    ApprovalState.REFUSED,
                    approved,
                    request.required,
                    decision,
                    request_id=request_id,
                )
            if still_short:
                # The policy now asks for more approvers than it did.
                assert decision.approval is not None
                request.required = decision.approval.required
                request.resolved_at = request.resolved_by = request.resolved_by_team = None
                s.add(request)
                note(
                    s,
                    change,
                    kind="awaits_approval",
                    actor="policy",
                    now=now,
                    message=f"now needs {decision.approval.describe()}",
                    details={"action": request.action, ON_BEHALF_OF: who.id},
                )
                return ApprovalOutcome(
                    ChangeView.of(change),
                    action,
                    ApprovalState.PENDING,
                    approved,
                    request.required,
                    decision,
                    request_id=request_id,
                )
            # Settled in the same transaction as the step it allows, so the
            # request is never approved without its effect, nor twice.
            request.state = ApprovalState.APPROVED
            s.add(request)
            required = request.required
            if action == "create":
                transition(
                    s,
                    change,
                    Command.APPROVE,
                    actor=who.id,
                    actor_team=who.team,
                    now=now,
                    message="approved",
                    details=decision.to_dict(),
                )
                # The job commits with the approval, or neither does.
                job_id = record_create(ctx, s, change, decision.schedule_at)
            elif action == "extend":
                apply_extension(
                    s,
                    change,
                    datetime.fromisoformat(request.params["extend_to"]),
                    who.id,
                    now,
                    actor_team=who.team,
                    asked_by=request.requested_by,
                )
            elif action in ("rollback", "merge"):
                requester = Principal(
                    request.requested_by,
                    channel=request.requested_in or change.channel,
                    team=request.requested_by_team,
                )
                job = start_host_action(s, change, Action(action), requester, now)
                job_id = record_host_action(ctx, s, change, job)
    except IllegalTransition as exc:
        raise refused_now(ctx, change_id, exc.state, action) from None
    except ConcurrentUpdate:
        raise changed_meanwhile(change_id, "approved", "nothing was done, look again") from None
    waits = job_id is not None and deliver and not ctx.deliver(job_id)
    return ApprovalOutcome(
        view(ctx, change_id),
        action,
        ApprovalState.APPROVED,
        approved,
        required,
        decision,
        job_id,
        request_id=request_id,
        waits_for_queue=waits,
    )


def may_reject(
    ctx: ServiceDeps, ref: str, *, approver: str | Principal, target: Target | None = None
) -> None:
    """Check, without writing, that `approver` may reject the request
    `target` means and that it still waits (Stale, Forbidden otherwise):
    Slack's Reject asks why in a modal first, and a modal for a request
    settled meanwhile, or one the clicker may not reject, asks for nothing."""
    who = as_principal(approver)
    change_id = find_change(ctx, ref, verb="reject")
    try:
        with session_scope(ctx.engine) as s:
            request = _bound(s, change_id, target or Target(), "reject")
    except Stale as exc:
        raise _refreshing(ctx, change_id, exc) from None
    _may_decide(ctx, request, who, "reject")


def reject(
    ctx: ServiceDeps,
    ref: str,
    *,
    approver: str | Principal,
    reason: str,
    target: Target | None = None,
) -> ApprovalOutcome:
    """Reject the request `target` means (default: the only one waiting).
    `reason` is required, as the Reject… form has always required it: the
    requester and a manager reading the record need the why. It is checked
    as a create's is: it is quoted in the event's message, which terminals
    and the audit show. Each entry point checks it first, to name its own
    syntax; this check is the one no caller can skip."""
    who = as_principal(approver)
    try:
        reason = check_reason(reason, example=REJECT_EXAMPLE)
    except ReasonError as exc:
        raise BadRequest(exc.message) from None
    aim = target or Target()
    change_id = find_change(ctx, ref, verb="reject")
    now = ctx.clock()
    try:
        with session_scope(ctx.engine) as s:
            seen = _bound(s, change_id, aim, "reject")
    except Stale as exc:
        raise _refreshing(ctx, change_id, exc) from None
    assert seen.id is not None
    request_id = seen.id
    bound = Target(request_id=request_id)
    _may_decide(ctx, seen, who, "reject")
    try:
        with session_scope(ctx.engine) as s:
            change = get_change(s, change_id)
            request = bound_request(s, change, bound, "reject")
            if aim.legacy and change.version != aim.version:
                raise changed_meanwhile(change_id, "rejected")
            request.state, request.resolved_at, request.resolved_by = (
                ApprovalState.REJECTED,
                now,
                who.id,
            )
            request.resolved_by_team = who.team
            s.add(request)
            action, count, required = request.action, len(request.approvals), request.required
            # The message is what an auditor reads (audit export's
            # `message`), so it says why as a create's says its reason; the
            # why stays in the details too, which is how a reader tells the
            # rejecter's words from the bot's (EventView.not_the_bots:
            # shown escaped, never as a mention).
            message = f"{action} {Rejection(who.id, reason).words()}"
            said = {"reason": reason} if reason else {}
            if request.action == "create" and change.state == State.AWAITING_APPROVAL:
                transition(
                    s,
                    change,
                    Command.REJECT,
                    actor=who.id,
                    actor_team=who.team,
                    now=now,
                    message=message,
                    details={"request": request_id, "action": action, **said},
                )
            else:
                note(
                    s,
                    change,
                    kind=f"{request.action}_rejected",
                    actor=who.id,
                    actor_team=who.team,
                    now=now,
                    message=message,
                    details={"request": request_id, "action": action, **said},
                )
    except Stale as exc:
        raise _refreshing(ctx, change_id, exc) from None
    except ConcurrentUpdate:
        raise changed_meanwhile(change_id, "rejected") from None
    ctx.notifier.changed(change_id)
    return ApprovalOutcome(
        view(ctx, change_id), action, ApprovalState.REJECTED, count, required, request_id=request_id
    )
