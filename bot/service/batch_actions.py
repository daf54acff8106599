"""Roll back or merge a whole batch (docs/batches.md, "Rolling back or
merging a wave").

Each member is rolled back or merged as an ordinary change: its own job,
its per-VM lock, its host slot. What the batch adds is the decision: the
batch's action needs what its strictest member needs. One member the
policy refuses refuses the whole action before anything starts (nothing
half-done); one member that needs an approver makes every member wait for
that approver, and `approve_batch` carries them all out together. Once
started, a member that fails never stops or undoes the others: each
member's outcome is shown for itself. Asked again while every member
already waits for that approval (a second click of Roll back all), it asks
nothing new: no batch event, so the approvers are not pinged again
(`BatchAction.already_asked`, as `Outcome.already_asked` for one change).

A member whose host cannot be asked is left out, never decided on facts
nobody has: it is told as not started (its host could not be reached) and
recorded as refused nowhere, while the others are decided and act without
it; the same action asked again once the host answers takes it. Only when
no member can be decided is the action Unavailable, with nothing recorded.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from bot.changes import State
from bot.changes.batch_record import batch_note, get_batch
from bot.changes.batch_views import BatchView, MemberView
from bot.changes.record import ConcurrentUpdate, get_change, note
from bot.changes.views import ON_BEHALF_OF
from bot.domain import user_mention
from bot.service.approvals import ApprovalOutcome, approve
from bot.service.batches import check_drawn, find_batch, retell, show_batch
from bot.service.binding import Target
from bot.service.deciding import Principal, as_principal
from bot.service.errors import Conflict, ServiceError
from bot.service.locate import HostUnavailable
from bot.service.requests import begin_host_action, open_approval, pending_request
from bot.service.strictest import WHY_THE_WAVE_ASKS, strictest
from bot.service.vm_target import vm_of_change
from bot.store.db import session_scope
from bot.store.tables import batch_ref, change_ref
from policies import Action, Decision, Verdict
from templates import counted

if TYPE_CHECKING:
    from bot.service.deps import ServiceDeps

# Which member states each action applies to (as for a single change).
ELIGIBLE: dict[Action, frozenset[State]] = {
    Action.ROLLBACK: frozenset({State.ACTIVE}),
    Action.MERGE: frozenset({State.ACTIVE, State.ROLLED_BACK}),
}
_VERB = {Action.ROLLBACK: "roll back", Action.MERGE: "merge"}


class MemberResult(enum.StrEnum):
    STARTED = "started"
    AWAITS_APPROVAL = "awaits_approval"
    SKIPPED = "skipped"
    NOT_STARTED = "not_started"


@dataclass(frozen=True)
class MemberAction:
    """What the batch action did to one member."""

    change: str
    vm: str
    result: MemberResult
    detail: str = ""
    job_id: int | None = None
    change_id: int = 0
    # AWAITS_APPROVAL only: who asked for the request it waits for. With
    # `asked_before`, that request was open before this action (nothing
    # new was asked of its approvers).
    asked_by: str | None = None
    asked_before: bool = False


@dataclass(frozen=True)
class BatchAction:
    """The batch action as decided, and each member's part in it."""

    batch: BatchView
    action: str
    decision: Decision
    members: tuple[MemberAction, ...]

    @property
    def refused(self) -> bool:
        return self.decision.verdict is Verdict.DENY

    @property
    def already_asked(self) -> bool:
        """Every member it acts on already waited for approval of this
        action: nothing new was asked, and nobody was pinged again (as
        `Outcome.already_asked` for one change)."""
        waiting = self._awaiting
        return bool(waiting) and all(m.asked_before for m in waiting)

    @property
    def asked_by(self) -> tuple[str, ...]:
        """Who asked for what its members wait for, each once, in member order."""
        return tuple(dict.fromkeys(m.asked_by for m in self._awaiting if m.asked_by))

    @property
    def _awaiting(self) -> list[MemberAction]:
        return [m for m in self.members if m.result is MemberResult.AWAITS_APPROVAL]

    @property
    def job_ids(self) -> list[int]:
        return [m.job_id for m in self.members if m.job_id is not None]


def _act(
    ctx: ServiceDeps, ref: str, action: Action, who: Principal, drawn: str | None
) -> BatchAction:
    batch_id = find_batch(ref)
    batch = show_batch(ctx, ref)
    # The members acted on are this view's: the one the button's key matched.
    check_drawn(batch, action.value, drawn)
    allowed = ELIGIBLE[action]
    eligible = [m for m in batch.members if State(m.state) in allowed and not _held(m, action)]
    skipped = [
        MemberAction(
            m.change,
            m.vm_name,
            MemberResult.SKIPPED,
            _held(m, action) or f"is {m.state.replace('_', ' ')}",
            change_id=m.change_id,
        )
        for m in batch.members
        if State(m.state) not in allowed or _held(m, action)
    ]
    if not eligible:
        raise Conflict(
            f"{batch.ref} has no member to {_VERB[action]}: "
            + ", ".join(f"{m.vm} {m.detail}" for m in skipped)
        )
    decisions: list[tuple[int, Decision]] = []
    first_down: HostUnavailable | None = None
    # Members whose host could not be asked: never decided on facts nobody
    # has (nor recorded as refused); the others go ahead without them.
    # A host found down is not asked again for its next members: each ask
    # may wait for the whole call timeout.
    unreached: list[MemberAction] = []
    down: dict[str, HostUnavailable] = {}
    for m in eligible:
        change_id = m.change_id
        if m.host in down:
            unreached.append(_unreached(m, action, down[m.host]))
            continue
        with session_scope(ctx.engine) as s:
            change = get_change(s, change_id)
        vm = vm_of_change(ctx, change, _VERB[action])
        try:
            decision = ctx.decider.decide(
                vm, action, who, checkpoint_type=change.checkpoint_type, change=change
            )
        except HostUnavailable as exc:
            if exc.host == m.host:
                down[m.host] = exc
            unreached.append(_unreached(m, action, exc))
            first_down = first_down or exc
            continue
        decisions.append((change_id, decision))
    if not decisions:
        # No member could be decided: as for one change, nothing was
        # decided or recorded (Unavailable).
        assert first_down is not None
        raise first_down
    skipped = unreached + skipped
    verdict = strictest([d for _, d in decisions])
    members: list[MemberAction] = []
    if verdict.verdict is Verdict.DENY:
        refusing = [
            f"{change_ref(cid)}: {'; '.join(d.reasons)}"
            for cid, d in decisions
            if d.verdict is Verdict.DENY
        ]
        _note(ctx, batch_id, f"{action.value}_refused", who, "; ".join(refusing), verdict)
        refused = show_batch(ctx, ref)
        retell(ctx, refused)
        return BatchAction(refused, action.value, verdict, tuple(skipped))
    if verdict.verdict is Verdict.NEEDS_APPROVAL:
        assert verdict.approval is not None
        need = verdict.approval.describe()
        for change_id, _ in decisions:
            members.append(_await(ctx, change_id, action, who, verdict, batch.ref, need))
        asked = BatchAction(batch, action.value, verdict, tuple(members))
        if asked.already_asked:
            # Another click of Roll back all (or Keep & merge all) while it
            # waits: the approvers were asked when it was first asked for.
            # A batch event now would be a second ":bell: Approval needed"
            # in the wave's thread, pinging them again for nothing new.
            return BatchAction(batch, action.value, verdict, tuple(members + skipped))
        _note(
            ctx,
            batch_id,
            f"{action.value}_awaits_approval",
            who,
            f"{action.value} of {counted(len(decisions), 'member')} needs {need}: "
            f"{WHY_THE_WAVE_ASKS}" + _unreached_note(unreached),
            verdict,
            [m.change_id for m in members if m.result is MemberResult.AWAITS_APPROVAL],
        )
    else:
        # Noted before any member starts: what ends after this event is what
        # the action did (a member that cannot start is told as not run).
        _note(
            ctx,
            batch_id,
            f"{action.value}_started",
            who,
            f"{action.value} of {counted(len(decisions), 'member')} asked by "
            f"{user_mention(who.id)}" + _unreached_note(unreached),
            verdict,
            [change_id for change_id, _ in decisions],
        )
        for change_id, _ in decisions:
            members.append(_start(ctx, change_id, action, who))
        # Delivered once every member has begun: a member's job may end in
        # moments (a fast host, a refusal at its re-check), and the wave's
        # end, asked for then, would count a member the loop had not begun
        # yet as not run. An undelivered job waits in the job outbox
        # (bot/jobs/delivery.py): nothing recorded is lost.
        for started in members:
            if started.job_id is not None:
                ctx.deliver(started.job_id)
    for acted in members:
        ctx.notifier.changed(acted.change_id)
    return BatchAction(show_batch(ctx, ref), action.value, verdict, tuple(members + skipped))


_PAST = {Action.ROLLBACK: "rolled back", Action.MERGE: "merged"}


def _unreached(m: MemberView, action: Action, exc: HostUnavailable) -> MemberAction:
    """A member left as it is because its host could not be asked: not
    started, with why and what to do (running the action again takes it)."""
    if exc.login_failed:
        why = (
            f"the bot could not log in to {exc.host}: not {_PAST[action]}; trying again will "
            "not help until the credential is fixed"
        )
    else:
        why = f"{exc.host} could not be reached: not {_PAST[action]}; try again once it answers"
    return MemberAction(m.change, m.vm_name, MemberResult.NOT_STARTED, why, change_id=m.change_id)


def _unreached_note(unreached: list[MemberAction]) -> str:
    """The batch event's words for members left out because their host
    could not be asked (not a refusal: nothing was decided for them)."""
    if not unreached:
        return ""
    whose = "its host" if len(unreached) == 1 else "their hosts"
    return f"; left out, {whose} could not be asked: " + ", ".join(m.vm for m in unreached)


def _held(m: MemberView, action: Action) -> str:
    """Why a member the action could otherwise take is left out: a merge
    of a member whose rollback waits for its approvers would delete the
    checkpoint that rollback restores (bot.service.requests.start_host_action
    refuses it too); "" when nothing holds it."""
    if action is Action.MERGE and m.waiting == Action.ROLLBACK.value:
        asked = f" by {user_mention(m.waiting_by)}" if m.waiting_by else ""
        return f"is not merged: its rollback, asked{asked}, waits for approval"
    return ""


def _start(ctx: ServiceDeps, change_id: int, action: Action, who: Principal) -> MemberAction:
    with session_scope(ctx.engine) as s:
        vm = get_change(s, change_id).vm_name
    try:
        job_id = begin_host_action(ctx, change_id, action, who, deliver=False)
    except ServiceError as exc:
        # It moved on meanwhile (someone merged it): the others go ahead.
        return MemberAction(
            change_ref(change_id), vm, MemberResult.NOT_STARTED, exc.message, change_id=change_id
        )
    return MemberAction(
        change_ref(change_id), vm, MemberResult.STARTED, job_id=job_id, change_id=change_id
    )


def _await(
    ctx: ServiceDeps,
    change_id: int,
    action: Action,
    who: Principal,
    decision: Decision,
    batch: str,
    need: str,
) -> MemberAction:
    now = ctx.clock()
    try:
        with session_scope(ctx.engine) as s:
            change = get_change(s, change_id)
            vm = change.vm_name
            if State(change.state) not in ELIGIBLE[action]:
                return MemberAction(
                    change_ref(change_id),
                    vm,
                    MemberResult.NOT_STARTED,
                    f"is {change.state}",
                    change_id=change_id,
                )
            pending = pending_request(s, change_id, action.value)
            before = pending is not None
            if pending is None:
                pending = open_approval(s, change, action.value, who, decision, now)
                note(
                    s,
                    change,
                    kind=f"{action.value}_awaits_approval",
                    actor="policy",
                    now=now,
                    message=f"{action.value} of {batch} by {user_mention(who.id)} needs {need}, "
                    "what its strictest member needs",
                    # The wave's own reply asks its approvers (bot/notify/thread.py).
                    details={**decision.to_dict(), "wave": batch, ON_BEHALF_OF: who.id},
                )
            asked_by = pending.requested_by
    except ConcurrentUpdate:
        return MemberAction(
            change_ref(change_id),
            "",
            MemberResult.NOT_STARTED,
            "changed meanwhile; look again",
            change_id=change_id,
        )
    return MemberAction(
        change_ref(change_id),
        vm,
        MemberResult.AWAITS_APPROVAL,
        need,
        change_id=change_id,
        asked_by=asked_by,
        asked_before=before,
    )


def _note(
    ctx: ServiceDeps,
    batch_id: int,
    kind: str,
    who: Principal,
    message: str,
    d: Decision,
    targets: list[int] | None = None,
) -> None:
    details: dict[str, object] = {"decision": d.to_dict()}
    if targets is not None:
        # The members the action acts on: its end is told once none of them
        # is on its way any more (bot/changes/batch_milestones.py).
        details["targets"] = targets
    with session_scope(ctx.engine) as s:
        batch_note(
            s,
            get_batch(s, batch_id),
            kind=kind,
            actor=who.id,
            actor_team=who.team,
            now=ctx.clock(),
            message=message,
            details=details,
        )


def rollback_batch(
    ctx: ServiceDeps, ref: str, *, requester: str | Principal, drawn: str | None = None
) -> BatchAction:
    """Roll back every active member (or ask for the approval the
    strictest member's rollback needs). `drawn`: the key of the button
    clicked (bot/wave_keys.py); a card drawn for other members does nothing."""
    return _act(ctx, ref, Action.ROLLBACK, as_principal(requester), drawn)


def merge_batch(
    ctx: ServiceDeps, ref: str, *, requester: str | Principal, drawn: str | None = None
) -> BatchAction:
    """Merge (keep) every member that still holds its checkpoint (`drawn`:
    as for `rollback_batch`)."""
    return _act(ctx, ref, Action.MERGE, as_principal(requester), drawn)


@dataclass(frozen=True)
class BatchApproval:
    batch: BatchView
    outcomes: tuple[ApprovalOutcome, ...]
    # Members whose approval could not be given (why), the others went ahead.
    problems: tuple[tuple[str, str], ...] = ()
    # Where the wave's card and thread are (its channel, else the changes
    # channel); None when it has none. An answer given elsewhere (the App
    # Home) points there rather than copying a card nothing keeps current.
    channel: str | None = None

    @property
    def job_ids(self) -> list[int]:
        return [o.job_id for o in self.outcomes if o.job_id is not None]


def approve_batch(
    ctx: ServiceDeps, ref: str, *, approver: str | Principal, drawn: str | None = None
) -> BatchApproval:
    """Approve what every member of the batch waits for (a rollback or a
    merge of all), member by member: each is re-checked by the policy as
    an ordinary approval, and one that cannot be approved leaves the
    others approved. `drawn`: the key of the Approve all clicked
    (bot/wave_keys.py): it approves only requests that card showed waiting,
    and nothing when what waits changed since."""
    who = as_principal(approver)
    batch = show_batch(ctx, ref)
    check_drawn(batch, "approve", drawn)
    shown = set(batch.pending_requests) if drawn is not None else None
    outcomes: list[ApprovalOutcome] = []
    problems: list[tuple[str, str]] = []
    for m in batch.members:
        change_id = m.change_id
        with session_scope(ctx.engine) as s:
            waiting = [
                r
                for a in ("rollback", "merge", "create")
                if (r := pending_request(s, change_id, a)) is not None
                and (shown is None or r.id in shown)
            ]
        if not waiting:
            continue
        try:
            # Delivered below, once the wave's approval is noted: a member's
            # job ends in moments, and its wave's "finished" must not reach
            # the thread before "approved".
            outcomes.append(
                approve(
                    ctx,
                    m.change,
                    approver=who,
                    target=Target(request_id=waiting[0].id),
                    deliver=False,
                )
            )
        except ServiceError as exc:
            problems.append((m.vm_name, exc.message))
    if not outcomes and not problems:
        raise Conflict(f"nothing of {batch_ref(batch.id)} waits for approval")
    if outcomes:
        with session_scope(ctx.engine) as s:
            batch_note(
                s,
                get_batch(s, batch.id),
                kind="approved",
                actor=who.id,
                actor_team=who.team,
                now=ctx.clock(),
                message=f"{user_mention(who.id)} approved what "
                f"{counted(len(outcomes), 'member')} waited for"
                + (f"; {len(problems)} could not be approved" if problems else ""),
                details={
                    "approved": [o.change.ref for o in outcomes],
                    "problems": dict(problems),
                },
            )
    # An undelivered job waits in the job outbox (bot/jobs/delivery.py), as
    # when the queue does not answer: nothing recorded is lost.
    outcomes = [
        replace(o, waits_for_queue=not ctx.deliver(o.job_id)) if o.job_id is not None else o
        for o in outcomes
    ]
    after = show_batch(ctx, ref)
    # Syncs the wave's card and thread, and with them the App Homes that
    # follow the notifier (the approver's no longer offers Approve all).
    retell(ctx, after)
    with session_scope(ctx.engine) as s:
        # As the thread notifier picks it (bot/notify/thread.py): the
        # members are asked for in the wave's channel.
        channel = get_batch(s, batch.id).channel or ctx.settings.slack.changes_channel
    return BatchApproval(after, tuple(outcomes), tuple(problems), channel)
