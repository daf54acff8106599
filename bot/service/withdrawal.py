"""Withdraw: the requester takes back their own request while it waits for
approvers (a create, a rollback, a merge, an extension), or a checkpoint
scheduled for later (`--at`, or the next change window) before it runs;
and a command interrupted (Ctrl-C) before its job started takes that job
back (`withdraw_unstarted`). Nothing ran for it, so nothing is undone; the
card and the thread say who withdrew it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.changes import Command, IllegalTransition, State
from bot.changes.record import ConcurrentUpdate, get_change, note, transition
from bot.domain import ApprovalState, user_mention
from bot.jobs import JobKind
from bot.service.approvals import ApprovalOutcome
from bot.service.binding import Stale, Target, bound_request, pending_requests
from bot.service.deciding import Principal, as_principal
from bot.service.errors import Conflict, Forbidden
from bot.service.finding import find_change
from bot.service.requests import view
from bot.store.db import session_scope
from bot.store.tables import change_ref

if TYPE_CHECKING:
    from sqlmodel import Session

    from bot.service.deps import ServiceDeps


def withdraw(
    ctx: ServiceDeps, ref: str, *, requester: str | Principal, target: Target | None = None
) -> ApprovalOutcome:
    """Withdraw the request `target` means (default: the only one waiting).
    Only whoever asked for it may: an approver rejects instead."""
    who = as_principal(requester)
    aim = target or Target()
    change_id = find_change(ctx, ref, verb="withdraw")
    now = ctx.clock()
    with session_scope(ctx.engine) as s:
        scheduled = get_change(s, change_id).state == State.SCHEDULED
    if scheduled and aim.request_id is None and aim.action in (None, "create"):
        return cancel_scheduled(ctx, change_id, who)
    try:
        with session_scope(ctx.engine) as s:
            change = get_change(s, change_id)
            if aim.request_id is None and aim.version is None:
                _refuse_if_nothing_waits(s, change_id, State(change.state))
            request = bound_request(s, change, aim, "withdraw")
            if request.requested_by != who.id:
                raise Forbidden(
                    f"only {user_mention(request.requested_by)}, who asked for it, may "
                    f"withdraw the {request.action} of {change_ref(change_id)}"
                )
            if aim.legacy and change.version != aim.version:
                raise Conflict(f"{change_ref(change_id)} changed meanwhile; look again")
            request.state, request.resolved_at = ApprovalState.WITHDRAWN, now
            request.resolved_by = who.id
            request.resolved_by_team = who.team
            s.add(request)
            action, count, required = request.action, len(request.approvals), request.required
            assert request.id is not None
            request_id = request.id
            details = {"request": request_id, "action": action}
            message = f"{action} withdrawn by {user_mention(who.id)}; nothing ran for it"
            if action == "create" and change.state == State.AWAITING_APPROVAL:
                transition(
                    s,
                    change,
                    Command.WITHDRAW,
                    actor=who.id,
                    actor_team=who.team,
                    now=now,
                    message=message,
                    details=details,
                )
            else:
                note(
                    s,
                    change,
                    kind=f"{action}_withdrawn",
                    actor=who.id,
                    actor_team=who.team,
                    now=now,
                    message=message,
                    details=details,
                )
    except Stale:
        ctx.notifier.changed(change_id)
        raise
    except ConcurrentUpdate:
        raise Conflict(f"{change_ref(change_id)} changed while you withdrew; look again") from None
    ctx.notifier.changed(change_id)
    return ApprovalOutcome(
        view(ctx, change_id),
        action,
        ApprovalState.WITHDRAWN,
        count,
        required,
        request_id=request_id,
    )


def _refuse_if_nothing_waits(s: Session, change_id: int, state: State) -> None:
    """Conflict, saying the change's state, when no request of it waits:
    "nothing waiting for approval" would read as if it once waited, about a
    change that was scheduled, or that is already withdrawn."""
    if pending_requests(s, change_id):
        return
    ref = change_ref(change_id)
    if state is State.WITHDRAWN:
        raise Conflict(f"{ref} is already withdrawn: there is nothing left to withdraw")
    said = state.value.replace("_", " ")
    raise Conflict(f"{ref} is {said} and has nothing waiting for approval: nothing to withdraw")


def cancel_scheduled(ctx: ServiceDeps, change_id: int, who: Principal) -> ApprovalOutcome:
    """Withdraw a create that waits for its time (`--at`) or its window: the
    change ends withdrawn and its queued job is cancelled, in one
    transaction. A worker that started it first wins (the change's
    versioned transition), and then this is refused: never both."""
    now = ctx.clock()
    ref = change_ref(change_id)
    try:
        with session_scope(ctx.engine) as s:
            change = get_change(s, change_id)
            if change.requester != who.id:
                raise Forbidden(
                    f"only {user_mention(change.requester)}, who asked for it, may withdraw "
                    f"the scheduled checkpoint of {ref}"
                )
            if change.state != State.SCHEDULED:
                raise Conflict(f"{ref} is {change.state.replace('_', ' ')}, no longer scheduled")
            transition(
                s,
                change,
                Command.WITHDRAW,
                actor=who.id,
                actor_team=who.team,
                now=now,
                message=f"scheduled checkpoint withdrawn by {user_mention(who.id)} before it "
                f"ran; nothing was done on {change.host}",
            )
            ctx.ledger.cancel_queued(
                s, change_id=change_id, kind=JobKind.CREATE.value, error="withdrawn"
            )
    except ConcurrentUpdate:
        raise Conflict(
            f"{ref} changed while you withdrew (it may have started); look again"
        ) from None
    ctx.notifier.changed(change_id)
    return ApprovalOutcome(view(ctx, change_id), "create", ApprovalState.WITHDRAWN, 0, 0)


def withdraw_unstarted(ctx: ServiceDeps, change_id: int, kind: str, who: Principal) -> bool:
    """Take back the queued `kind` job (create, rollback or merge: its
    `JobKind` word; another kind raises ValueError) of
    `change_id` for a command that was interrupted before any process
    started it, in one transaction: the job is cancelled, and a create's
    change ends withdrawn (from approved or scheduled) while a rollback's or
    merge's goes back to active (it moved to `rolling_back` / `merging`
    when it was asked for; its checkpoint is untouched). False when the job
    was no longer queued (a worker's claim won: it runs, and nothing here
    changed); the cancel's conditional UPDATE and the claim's (`state =
    'queued'` both) let only one of them through."""
    job_kind = JobKind(kind)
    if job_kind not in (JobKind.CREATE, JobKind.ROLLBACK, JobKind.MERGE):
        raise ValueError(f"a {kind} job is not taken back")
    now = ctx.clock()
    because = "its command was interrupted (Ctrl-C) before it started"
    try:
        with session_scope(ctx.engine) as s:
            change = get_change(s, change_id)
            if not ctx.ledger.cancel_queued(
                s, change_id=change_id, kind=job_kind.value, error=f"withdrawn: {because}"
            ):
                raise _Started
            if job_kind is JobKind.CREATE:
                command = Command.WITHDRAW
                message = f"checkpoint withdrawn: {because}; nothing was done on {change.host}"
            else:
                command = Command.TAKE_BACK
                message = (
                    f"{kind} withdrawn: {because}; nothing was done on {change.host}, "
                    "the checkpoint is kept"
                )
            transition(
                s, change, command, actor=who.id, actor_team=who.team, now=now, message=message
            )
    except (_Started, ConcurrentUpdate, IllegalTransition):
        return False
    ctx.notifier.changed(change_id)
    return True


class _Started(Exception):
    """Raised inside the transaction so that it rolls back whole: a worker
    started the job first."""
