"""Use cases that change things: request a checkpoint, roll back, merge,
extend. Each validates its input before writing anything, asks the policy,
records the decision, and hands host work to a job."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlmodel import Session, select

from bot.changes import Command, IllegalTransition, State
from bot.changes.record import (
    ConcurrentUpdate,
    events_of,
    get_change,
    note,
    open_change,
    parse_ref,
    recording,
    transition,
)
from bot.changes.views import ON_BEHALF_OF, ChangeView, offered_resolutions
from bot.clock import utc_text
from bot.domain import (
    ApprovalState,
    BatchRef,
    ChangeRef,
    CheckpointKind,
    canonical_guid,
    user_mention,
)
from bot.durations import DurationError, format_duration, parse_duration
from bot.jobs import JobKind
from bot.reasons import EXAMPLE, ReasonError, check_reason
from bot.service.at_time import AtTime, check_future, outside_window, window_refusal
from bot.service.deciding import Principal, as_principal
from bot.service.dispatch import awaits_queue
from bot.service.errors import (
    BadRequest,
    Conflict,
    changed_meanwhile,
    not_now,
)
from bot.service.finding import find_change, resolve_vm
from bot.service.ownership import new_token
from bot.service.vm_target import change_of_vm, vm_of_change
from bot.store.db import session_scope
from bot.store.tables import change_ref
from bot.store.tables.approvals import ApprovalRequest
from bot.store.tables.changes import Change
from policies import Action, Decision, Verdict
from templates import action_verb

if TYPE_CHECKING:
    from bot.inventory import VM
    from bot.service.deps import ServiceDeps


@dataclass(frozen=True)
class Outcome:
    """What a request led to: the change now, the policy's word, the job,
    and the approval it waits for, if any."""

    change: ChangeView
    decision: Decision
    job_id: int | None = None
    approval_id: int | None = None
    # The job is recorded but the queue did not take it yet (bot.service.dispatch).
    waits_for_queue: bool = False
    # The request it waits for was asked before this one, by `asked_by`:
    # nothing new was asked (and nothing new shows in its thread).
    already_asked: bool = False
    asked_by: str | None = None

    @property
    def refused(self) -> bool:
        return self.decision.verdict is Verdict.DENY

    @property
    def waiting(self) -> bool:
        return self.approval_id is not None


def _duration(text: str, what: str) -> timedelta:
    try:
        return parse_duration(text)
    except DurationError as exc:
        raise BadRequest(f"{what}: {exc}") from None


def lifetime_limit(ctx: ServiceDeps, vm: VM) -> timedelta:
    """How long the policy lets `vm`'s checkpoints live (the ttl rule's
    `max` for its scope)."""
    from policies.rules.lifetime import TTLParams

    rule, _decided = ctx.policy.rule_settings("ttl", ctx.decider.inventory_facts(vm))
    assert isinstance(rule.params, TTLParams)
    return rule.params.max


def too_long_for(ctx: ServiceDeps, vm: VM, text: str) -> str:
    """A lifetime past every duration's bound, in the words of the bound
    that matters: the policy's, for this VM (not the parser's year)."""
    limit = format_duration(lifetime_limit(ctx, vm))
    return (
        f"'{text.strip()}' is too long: {vm.name}'s checkpoints live at most {limit} (the policy)"
    )


def validate_create(
    ctx: ServiceDeps,
    reason: str | None,
    ctype: str | None,
    ttl: str | None,
    vm: VM | None = None,
) -> tuple[str, str, timedelta | None]:
    try:
        text = check_reason(reason)
    except ReasonError as exc:
        if exc.missing:
            raise BadRequest(f'a reason is required: say why, e.g. --reason "{EXAMPLE}"') from None
        raise BadRequest(exc.message) from None
    kind = (ctype or ctx.settings.defaults.checkpoint_type).strip().lower()
    if CheckpointKind.parse(kind) is None:
        raise BadRequest(
            f"unknown checkpoint type '{ctype}': use one of {', '.join(CheckpointKind)}"
        )
    if ttl is None:
        return text, kind, None
    try:
        return text, kind, parse_duration(ttl)
    except DurationError as exc:
        if exc.too_long and vm is not None:
            raise BadRequest(f"--ttl: {too_long_for(ctx, vm, ttl)}") from None
        raise BadRequest(f"--ttl: {exc}") from None


def _summary(decision: Decision) -> str:
    return "; ".join(decision.reasons) or "all guardrails passed"


def open_approval(
    s: Session,
    change: Change,
    action: str,
    who: Principal,
    decision: Decision,
    now: datetime,
    params: dict[str, object] | None = None,
) -> ApprovalRequest:
    assert change.id is not None and decision.approval is not None
    request = ApprovalRequest(
        change_id=change.id,
        action=action,
        requested_by=who.id,
        requested_by_team=who.team,
        requested_in=who.channel,
        requested_by_groups=sorted(who.groups),
        requested_at=now,
        required=decision.approval.required,
        requirement=decision.to_dict()["approval"],
        params=dict(params or {}),
    )
    s.add(request)
    s.flush()
    return request


def request_checkpoint(
    ctx: ServiceDeps,
    vm_name: str,
    *,
    reason: str | None,
    requester: str | Principal,
    checkpoint_type: str | None = None,
    ttl: str | None = None,
    source: str = "cli",
    channel: str | None = None,
    batch_id: int | None = None,
    at: AtTime | None = None,
    wave_approval: Decision | None = None,
) -> Outcome:
    """Ask for a checkpoint. Denials are recorded too: the record is the audit.
    With `batch_id` the change is a member of that batch (bot.service.batches).
    With `at` it is taken then (docs/batches.md "At a time"): decided as of
    that instant, and refused before anything is recorded when the VM's
    change windows are closed then. With `wave_approval` (its wave's
    strictest member's need, bot.service.batches) a member the policy
    allows waits for that approval with the rest of its wave."""
    who = requester if isinstance(requester, Principal) else Principal(requester, channel=channel)
    vm = resolve_vm(ctx, vm_name, wave=batch_id is None)
    text, kind, lifetime = validate_create(ctx, reason, checkpoint_type, ttl, vm)
    if at is not None:
        check_future(at, ctx.clock())
    decision = ctx.decider.decide(
        vm,
        Action.CREATE,
        who,
        checkpoint_type=kind,
        ttl=lifetime,
        now=at.instant if at is not None else None,
    )
    if at is not None and (closed := window_refusal(decision)) is not None:
        raise outside_window(at, [(vm.name, *closed)])
    # The node the decision just found the VM on (a clustered VM moves); the
    # job follows it again before it runs (bot.service.execution).
    seen = ctx.decider.locator.last_seen(vm)
    owner = seen.host if seen is not None else vm.host
    adjusted = str(decision.adjustments.get("checkpoint_type", kind))
    ttl_seconds = int(
        decision.adjustments.get("ttl_seconds")
        or (lifetime or ctx.settings.defaults.ttl).total_seconds()
    )
    now = ctx.clock()
    approval_id = None
    with session_scope(ctx.engine) as s:
        change = open_change(
            s,
            Change(
                vm_id=vm.vm_id,
                vm_name=vm.name,
                host=owner,
                checkpoint_type=adjusted,
                reason=text,
                requester=who.id,
                requester_team=who.team,
                requester_groups=sorted(who.groups),
                source=source,
                channel=channel or who.channel,
                state="",
                decision=decision.to_dict(),
                ttl_seconds=ttl_seconds,
                batch_id=batch_id,
                run_at=at.instant if at is not None else None,
            ),
            actor=who.id,
            actor_team=who.team,
            now=now,
        )
        verdict = decision.verdict
        # A wave needs what its strictest member needs: its other members
        # (refusals aside) wait for that same approval, one for the wave.
        waits_with_wave = wave_approval is not None and verdict is not Verdict.DENY
        if waits_with_wave:
            verdict = Verdict.NEEDS_APPROVAL
        command = {
            Verdict.DENY: Command.DENY,
            Verdict.NEEDS_APPROVAL: Command.REQUEST_APPROVAL,
            Verdict.ALLOW: Command.APPROVE,
        }[verdict]
        transition(
            s,
            change,
            command,
            actor="policy",
            now=now,
            message=_summary(decision),
            details={**decision.to_dict(), ON_BEHALF_OF: who.id},
        )
        if waits_with_wave:
            assert wave_approval is not None and wave_approval.approval is not None
            approval_id = open_approval(s, change, "create", who, wave_approval, now).id
            note(
                s,
                change,
                kind="create_awaits_approval",
                actor="policy",
                now=now,
                message=f"waits with its wave: the wave's checkpoints need "
                f"{wave_approval.approval.describe()} (what its strictest member needs)",
                details={**wave_approval.to_dict(), ON_BEHALF_OF: who.id},
            )
        elif decision.verdict is Verdict.NEEDS_APPROVAL:
            approval_id = open_approval(s, change, "create", who, decision, now).id
        refused = decision.verdict is Verdict.DENY
        for warning in () if refused else decision.warnings:
            note(s, change, kind="warning", actor="policy", now=now, message=warning)
        if adjusted != kind and not refused:
            note(
                s,
                change,
                kind="adjusted",
                actor="policy",
                now=now,
                message=f"checkpoint type {kind} → {adjusted}, so Hyper-V cannot fall back "
                "silently to a standard checkpoint",
            )
        assert change.id is not None
        change_id = change.id
        job_id = None
        if verdict is Verdict.ALLOW:
            # Recorded with the approval it follows from: both or neither.
            job_id = record_create(ctx, s, change, decision.schedule_at)
    waits = job_id is not None and not ctx.deliver(job_id)
    ctx.notifier.changed(change_id)
    return Outcome(view(ctx, change_id), decision, job_id, approval_id, waits_for_queue=waits)


def host_limit(ctx: ServiceDeps, change: Change) -> dict[str, object]:
    """A batch member's job runs only in one of its host's first
    `batches.per_host` slots and, on a cluster's node, one of its cluster's
    first `batches.per_cluster` (bot.jobs.hostslots); a change asked for
    alone is not bounded."""
    if change.batch_id is None:
        return {}
    limits: dict[str, object] = {"host_limit": ctx.settings.batches.per_host}
    cluster = ctx.inventory.cluster_of(change.host)
    if cluster is not None:
        limits |= {"cluster": cluster.name, "cluster_limit": ctx.settings.batches.per_cluster}
    return limits


def record_create(
    ctx: ServiceDeps, s: Session, change: Change, schedule_at: datetime | None
) -> int:
    """Record the create job in session `s`: at the time its requester asked
    for (`change.run_at`), or in its change window if the policy gave one,
    whichever is later; `ctx.deliver` hands it to the queue after the commit."""
    now = ctx.clock()
    assert change.id is not None
    key, payload = f"create:{change.id}", {"token": new_token(), **host_limit(ctx, change)}
    asked = change.run_at if change.run_at is not None and change.run_at > now else None
    if asked is not None and (schedule_at is None or schedule_at <= asked):
        schedule_at = asked
        message = f"asked for {utc_text(asked)}: runs then"
    else:
        message = (
            f"outside its change window: runs when it opens at {utc_text(schedule_at)}"
            if schedule_at is not None
            else ""
        )
    if schedule_at is not None and schedule_at > now:
        transition(
            s,
            change,
            Command.SCHEDULE,
            actor="policy" if asked is None else change.requester,
            actor_team=None if asked is None else change.requester_team,
            now=now,
            message=message,
        )
        return ctx.record_job(
            s, JobKind.CREATE, change, key=key, not_before=schedule_at, payload=payload
        )
    return ctx.record_job(s, JobKind.CREATE, change, key=key, payload=payload)


class MergeBlocked(Conflict):
    """A merge refused while a rollback waits for approval: the merge would
    delete the checkpoint the rollback restores. Carries the change and who
    asked for the rollback, so each surface names its own commands
    (`words(cli=True)`: the terminal's)."""

    names_people = True  # who asked for the rollback

    def __init__(self, ref: str, asked_by: str) -> None:
        self.ref, self.asked_by = ref, asked_by
        super().__init__(self.words())

    def words(self, *, cli: bool = False) -> str:
        ref, who = self.ref, user_mention(self.asked_by)
        if cli:
            approve = f"checkpoint-bot change approve {ref} --request rollback"
            reject = f'checkpoint-bot change reject {ref} --request rollback --reason "…"'
            withdraw = f"checkpoint-bot checkpoint withdraw {ref} --request rollback"
        else:
            approve = f"/checkpoint approve {ref} rollback"
            reject = f'/checkpoint reject {ref} rollback --reason "…"'
            withdraw = f"/checkpoint withdraw {ref} rollback"
        return (
            f"{ref} is not merged: a rollback asked by {who} waits for approval, and a merge "
            f"deletes the checkpoint it would restore. An approver approves it (`{approve}`) "
            f"or rejects it (`{reject}`), or {who} withdraws it (`{withdraw}`); then merge."
        )


def pending_request(s: Session, change_id: int, action: str) -> ApprovalRequest | None:
    return s.exec(
        select(ApprovalRequest).where(
            ApprovalRequest.change_id == change_id,
            ApprovalRequest.action == action,
            ApprovalRequest.state == ApprovalState.PENDING,
        )
    ).first()


@dataclass(frozen=True)
class HostJob:
    """A rollback or merge started in a transaction: the job to queue once
    it commits (its key is the start event's seq, so it is queued once)."""

    kind: JobKind
    seq: int
    # Who asked for it, where (the job's re-check resolves their groups again).
    requester: Principal | None = None

    def payload(self) -> dict[str, object]:
        who = self.requester
        if who is None:
            return {}
        return {"requester": {"id": who.id, "team": who.team, "channel": who.channel}}


def start_host_action(
    s: Session, change: Change, action: Action, who: Principal, now: datetime
) -> HostJob:
    """Move an active change into rolling back / merging, in session `s`.
    Raises IllegalTransition or ConcurrentUpdate; Conflict for a merge while
    a rollback waits for its approvers: the merge would delete the
    checkpoint that rollback restores, and close the request unseen. Asked
    in this transaction, so a rollback asked meanwhile is seen too."""
    if action is Action.MERGE:
        waiting = pending_request(s, change.id or 0, Action.ROLLBACK.value)
        if waiting is not None:
            raise MergeBlocked(change_ref(change.id or 0), waiting.requested_by)
    command, kind = {
        Action.ROLLBACK: (Command.START_ROLLBACK, JobKind.ROLLBACK),
        Action.MERGE: (Command.START_MERGE, JobKind.MERGE),
    }[action]
    event = transition(
        s,
        change,
        command,
        actor=who.id,
        actor_team=who.team,
        now=now,
        message=f"{action.value} requested by {user_mention(who.id)}",
    )
    return HostJob(kind, event.seq, who)


def record_host_action(ctx: ServiceDeps, s: Session, change: Change, job: HostJob) -> int:
    """The job of a rollback or merge, in the transaction that started it; its
    payload carries who asked, so the job's re-check asks about them."""
    return ctx.record_job(
        s,
        job.kind,
        change,
        key=f"{job.kind}:{change.id}:{job.seq}",
        payload={**job.payload(), **host_limit(ctx, change)},
    )


def begin_host_action(
    ctx: ServiceDeps,
    change_id: int,
    action: Action,
    who: str | Principal,
    *,
    deliver: bool = True,
) -> int:
    """Move an active change into rolling back / merging and queue the job
    (or, with `deliver=False`, leave it in the job outbox for the caller to
    deliver: a wave begins every member before any member's job can run).

    A write that lands between this read and its conditional update (a TTL
    reminder, a warning in the thread) moves the change's version, not its
    state: `recording` reads the change again and the transition is asked
    again. A write that moved the state is a Conflict in the words of the
    state it is in now; nothing is queued by a try that lost."""
    person = as_principal(who)
    seen: State | None = None

    def start(s: Session, change: Change) -> int:
        nonlocal seen
        state = State(change.state)
        if seen is not None and state is not seen:
            raise refused_now(ctx, change_id, state, action.value)
        seen = state
        job = start_host_action(s, change, action, person, ctx.clock())
        return record_host_action(ctx, s, change, job)

    try:
        job_id = recording(ctx.engine, change_id, start)
    except IllegalTransition as exc:
        raise refused_now(ctx, change_id, exc.state, action.value) from None
    except ConcurrentUpdate:
        raise changed_meanwhile(change_id, "asked", "nothing was done, look again") from None
    if deliver:
        ctx.deliver(job_id)
    return job_id


def refused_now(ctx: ServiceDeps, change_id: int, state: State, action: str) -> Conflict:
    """Why `action` cannot happen to the change in `state` now, in the
    person's words (`not_now`); an interrupted change is read once more to
    tell one the reconciler is checking from one that waits for a person."""
    awaits_human = False
    if state is State.INTERRUPTED:
        with session_scope(ctx.engine) as s:
            awaits_human = bool(offered_resolutions(events_of(s, change_id)))
    return Conflict(not_now(change_ref(change_id), state, action, awaits_human=awaits_human))


def _act(ctx: ServiceDeps, ref: str, action: Action, who: Principal) -> Outcome:
    change_id = find_change(ctx, ref, verb=action_verb(action.value))
    with session_scope(ctx.engine) as s:
        change = get_change(s, change_id)
    allowed = {Action.ROLLBACK: {State.ACTIVE}, Action.MERGE: {State.ACTIVE, State.ROLLED_BACK}}
    if State(change.state) not in allowed[action]:
        raise refused_now(ctx, change_id, State(change.state), action.value)
    vm = vm_of_change(ctx, change, action_verb(action.value))
    decision = ctx.decider.decide(
        vm, action, who, checkpoint_type=change.checkpoint_type, change=change
    )
    now = ctx.clock()
    if decision.verdict is Verdict.ALLOW:
        job_id = begin_host_action(ctx, change_id, action, who)
        waits = awaits_queue(ctx, job_id)
        return Outcome(view(ctx, change_id), decision, job_id, waits_for_queue=waits)
    try:
        with session_scope(ctx.engine) as s:
            change = get_change(s, change_id)
            if State(change.state) not in allowed[action]:
                # It moved on while the policy was asked (a merge started).
                raise refused_now(ctx, change_id, State(change.state), action.value)
            if decision.verdict is Verdict.DENY:
                note(
                    s,
                    change,
                    kind=f"{action.value}_refused",
                    actor="policy",
                    now=now,
                    message=_summary(decision),
                    details={**decision.to_dict(), ON_BEHALF_OF: who.id},
                )
                return Outcome(ChangeView.of(change), decision)
            rollback = pending_request(s, change_id, Action.ROLLBACK.value)
            if action is Action.MERGE and rollback is not None:
                # Approving the merge would be refused for the same reason.
                raise MergeBlocked(change_ref(change_id), rollback.requested_by)
            pending = pending_request(s, change_id, action.value)
            already = pending is not None
            if pending is None:
                pending = open_approval(s, change, action.value, who, decision, now)
                assert decision.approval is not None
                note(
                    s,
                    change,
                    kind=f"{action.value}_awaits_approval",
                    actor="policy",
                    now=now,
                    message=f"{action.value} by {user_mention(who.id)} needs "
                    f"{decision.approval.describe()}: {_summary(decision)}",
                    details={**decision.to_dict(), ON_BEHALF_OF: who.id},
                )
            return Outcome(
                ChangeView.of(change),
                decision,
                approval_id=pending.id,
                already_asked=already,
                asked_by=pending.requested_by,
            )
    except ConcurrentUpdate:
        raise changed_meanwhile(change_id, "asked") from None


def _change_named(ctx: ServiceDeps, ref: str, verb: str) -> str:
    """`ref` as written when it is a change's or a checkpoint's id (or a
    wave's, which `find_change` explains), else a VM's name: its one change
    that `verb` acts on (bot/service/vm_target.py)."""
    text = ref.strip()
    written_as_id = (
        parse_ref(text) is not None
        or canonical_guid(text) is not None
        or ChangeRef.typed(text)
        or BatchRef.typed(text)
    )
    return text if written_as_id else change_of_vm(ctx, text, verb)


def rollback(ctx: ServiceDeps, ref: str, *, requester: str | Principal) -> Outcome:
    """Roll back a change named by `CHG-n`, its checkpoint's Id, or its VM's
    name (the VM's one active change)."""
    who = as_principal(requester)
    outcome = _act(ctx, _change_named(ctx, ref, "roll back"), Action.ROLLBACK, who)
    ctx.notifier.changed(outcome.change.id)
    return outcome


def merge(ctx: ServiceDeps, ref: str, *, requester: str | Principal) -> Outcome:
    """Keep a change named by `CHG-n`, its checkpoint's Id, or its VM's name
    (the VM's one active or rolled-back change)."""
    who = as_principal(requester)
    outcome = _act(ctx, _change_named(ctx, ref, "merge"), Action.MERGE, who)
    ctx.notifier.changed(outcome.change.id)
    return outcome


def extend(ctx: ServiceDeps, ref: str, by: str, *, requester: str | Principal) -> Outcome:
    """Give a checkpoint more time: an active or rolled-back change's, which
    still holds it (`ref`: `CHG-n`, its checkpoint's Id, or its VM's name
    for the VM's one active change); beyond the scope's maximum lifetime
    the policy asks for approval. The new expiry is
    counted from the one the policy was asked about: if another extension or
    a state change lands first, the person is told to look again. A note
    landing between the read and the update (`begin_host_action`) is read
    past."""
    who = as_principal(requester)
    delta = _duration(by, "extend by")
    change_id = find_change(ctx, _change_named(ctx, ref, "extend"), verb="extend")
    with session_scope(ctx.engine) as s:
        change = get_change(s, change_id)
    if State(change.state) not in _EXTENDABLE or change.expires_at is None:
        # The words name the states `_EXTENDABLE` holds (seen: "only an
        # active checkpoint", while a rolled-back change's card offers Extend).
        raise Conflict(
            f"{change_ref(change_id)} is {change.state.replace('_', ' ')}; only a change "
            "that still holds its checkpoint (active or rolled back) can be extended"
        )
    now = ctx.clock()
    asked_about = change.expires_at
    new_expiry = max(now, asked_about) + delta
    vm = vm_of_change(ctx, change, "extend")
    decision = ctx.decider.decide(vm, Action.EXTEND, who, extend_to=new_expiry, change=change)

    def write(s: Session, change: Change) -> Outcome:
        if State(change.state) not in _EXTENDABLE or change.expires_at != asked_about:
            raise changed_meanwhile(change_id, "asked")
        approval_id = None
        if decision.verdict is Verdict.DENY:
            note(
                s,
                change,
                kind="extend_refused",
                actor="policy",
                now=now,
                message=_summary(decision),
                details={**decision.to_dict(), ON_BEHALF_OF: who.id},
            )
        elif decision.verdict is Verdict.NEEDS_APPROVAL:
            approval = open_approval(
                s, change, "extend", who, decision, now, {"extend_to": new_expiry.isoformat()}
            )
            approval_id = approval.id
            assert decision.approval is not None
            note(
                s,
                change,
                kind="extend_awaits_approval",
                actor="policy",
                now=now,
                message=f"extension to {utc_text(new_expiry)} needs {decision.approval.describe()}",
                # The "Approval needed" reply says to when (templates/slack/change_event).
                details={
                    **decision.to_dict(),
                    "extend_to": new_expiry.isoformat(),
                    ON_BEHALF_OF: who.id,
                },
            )
        else:
            apply_extension(s, change, new_expiry, who.id, now, actor_team=who.team)
        return Outcome(ChangeView.of(change), decision, approval_id=approval_id)

    try:
        outcome = recording(ctx.engine, change_id, write)
    except ConcurrentUpdate:
        raise changed_meanwhile(change_id, "asked") from None
    ctx.notifier.changed(change_id)
    return outcome


_EXTENDABLE = (State.ACTIVE, State.ROLLED_BACK)


def apply_extension(
    s: Session,
    change: Change,
    until: datetime,
    actor: str,
    now: datetime,
    *,
    actor_team: str | None = None,
    asked_by: str | None = None,
) -> None:
    """`asked_by`: who asked for it, when that is not `actor` (an approver
    carrying out an extension someone asked for): the thread names them."""
    old = change.expires_at
    note(
        s,
        change,
        kind="extended",
        actor=actor,
        actor_team=actor_team,
        now=now,
        message=f"expiry moved from {utc_text(old)} to {utc_text(until)}"
        if old
        else f"expires at {utc_text(until)}",
        details={"asked_by": asked_by} if asked_by else None,
        expires_at=until,
    )


def view(ctx: ServiceDeps, change_id: int) -> ChangeView:
    with session_scope(ctx.engine) as s:
        return ChangeView.of(get_change(s, change_id))
