"""Use cases that change things: request a checkpoint, roll back, merge.

Each validates everything before writing anything, records the decision,
moves the change through the lifecycle and hands host work to a job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlmodel import select

from bot.changes import Command, IllegalTransition
from bot.changes.record import (
    ConcurrentUpdate,
    get_change,
    note,
    open_change,
    parse_ref,
    transition,
)
from bot.durations import DurationError, format_duration, parse_duration
from bot.facts import inventory_facts
from bot.inventory import InvalidName, UnknownVM
from bot.service.errors import BadRequest, Conflict, NotFound
from bot.service.views import ChangeView
from bot.store.db import session_scope
from bot.store.models import Change, change_ref
from policies import Action, Context, Decision, Request, Verdict, evaluate

if TYPE_CHECKING:
    from bot.context import AppContext
    from bot.inventory import VM

CHECKPOINT_TYPES = ("production", "production-only", "standard")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
MAX_REASON = 500


@dataclass(frozen=True)
class Outcome:
    """What a request led to: the change now, the policy's word, the job."""

    change: ChangeView
    decision: Decision
    job_id: int | None = None

    @property
    def refused(self) -> bool:
        return self.decision.verdict is Verdict.DENY


def resolve_vm(ctx: AppContext, name: str) -> VM:
    try:
        return ctx.inventory.vm(name)
    except (UnknownVM, InvalidName) as exc:
        raise BadRequest(str(exc)) from None


def decide(ctx: AppContext, vm: VM, action: Action, requester: str, ctype: str | None) -> Decision:
    now = ctx.clock()
    facts = inventory_facts(ctx.inventory, vm, f"inventory {ctx.settings.inventory_path.name}", now)
    request = Request(
        action=action, vm_name=vm.name, vm_id=vm.vm_id, requester=requester, checkpoint_type=ctype
    )
    return evaluate(request, facts, Context(now=now))


def _validate_create(
    ctx: AppContext, reason: str | None, ctype: str | None, ttl: str | None
) -> tuple[str, str, timedelta]:
    text = (reason or "").strip()
    if not text:
        raise BadRequest('a reason is required: say why, e.g. --reason "KB5044284 patch"')
    if len(text) > MAX_REASON:
        raise BadRequest(f"the reason is {len(text)} characters long; keep it under {MAX_REASON}")
    kind = (ctype or ctx.settings.defaults.checkpoint_type).strip().lower()
    if kind not in CHECKPOINT_TYPES:
        raise BadRequest(
            f"unknown checkpoint type '{ctype}': use one of {', '.join(CHECKPOINT_TYPES)}"
        )
    lifetime = ctx.settings.defaults.ttl
    if ttl is not None:
        try:
            lifetime = parse_duration(ttl)
        except DurationError as exc:
            raise BadRequest(f"--ttl: {exc}") from None
    limit = ctx.settings.defaults.max_ttl
    if lifetime > limit:
        raise BadRequest(
            f"a TTL of {format_duration(lifetime)} is longer than the maximum of "
            f"{format_duration(limit)}; ask for {format_duration(limit)} or less"
        )
    return text, kind, lifetime


def request_checkpoint(
    ctx: AppContext,
    vm_name: str,
    *,
    reason: str | None,
    requester: str,
    checkpoint_type: str | None = None,
    ttl: str | None = None,
    source: str = "cli",
    channel: str | None = None,
) -> Outcome:
    """Ask for a checkpoint. Denials are recorded too: the record is the audit."""
    vm = resolve_vm(ctx, vm_name)
    text, kind, lifetime = _validate_create(ctx, reason, checkpoint_type, ttl)
    decision = decide(ctx, vm, Action.CREATE, requester, kind)
    now = ctx.clock()
    job_id = None
    with session_scope(ctx.engine) as s:
        change = open_change(
            s,
            Change(
                vm_id=vm.vm_id,
                vm_name=vm.name,
                host=vm.host,
                checkpoint_type=kind,
                reason=text,
                requester=requester,
                source=source,
                channel=channel,
                state="",
                decision=decision.to_dict(),
                ttl_seconds=int(lifetime.total_seconds()),
            ),
            actor=requester,
            now=now,
        )
        summary = "; ".join(decision.reasons) or "all guardrails passed"
        if decision.verdict is Verdict.DENY:
            transition(
                s,
                change,
                Command.DENY,
                actor="policy",
                now=now,
                message=summary,
                details=decision.to_dict(),
            )
        elif decision.verdict is Verdict.NEEDS_APPROVAL:
            transition(
                s,
                change,
                Command.REQUEST_APPROVAL,
                actor="policy",
                now=now,
                message=summary,
                details=decision.to_dict(),
            )
        else:
            transition(
                s,
                change,
                Command.APPROVE,
                actor="policy",
                now=now,
                message=summary,
                details=decision.to_dict(),
            )
            for warning in decision.warnings:
                note(s, change, kind="warning", actor="policy", now=now, message=warning)
        assert change.id is not None
        change_id = change.id
    if decision.verdict is Verdict.ALLOW:
        job_id = ctx.submit("create", change_id, key=f"create:{change_id}")
    return Outcome(_view(ctx, change_id), decision, job_id)


def find_change(ctx: AppContext, ref: str) -> int:
    """A change id from `CHG-n`, or from the Id of a checkpoint it owns."""
    text = ref.strip()
    change_id = parse_ref(text)
    if change_id is None and _GUID.match(text):
        with session_scope(ctx.engine) as s:
            owner = s.exec(select(Change).where(Change.checkpoint_id == text.lower())).first()
        if owner is None or owner.id is None:
            raise NotFound(
                f"checkpoint {text} is not owned by any change; the bot never touches a "
                "checkpoint it did not take"
            )
        change_id = owner.id
    if change_id is None:
        raise BadRequest(
            f"'{ref}' is neither a change id (like CHG-0042) nor a checkpoint Id (a GUID)"
        )
    with session_scope(ctx.engine) as s:
        if s.get(Change, change_id) is None:
            raise NotFound(f"no change {change_ref(change_id)}")
    return change_id


def _start(
    ctx: AppContext, ref: str, *, action: Action, command: Command, job_kind: str, actor: str
) -> Outcome:
    change_id = find_change(ctx, ref)
    with session_scope(ctx.engine) as s:
        change = get_change(s, change_id)
    vm = resolve_vm(ctx, change.vm_name) if change.vm_name else None
    assert vm is not None
    decision = decide(ctx, vm, action, actor, change.checkpoint_type)
    now = ctx.clock()
    try:
        with session_scope(ctx.engine) as s:
            change = get_change(s, change_id)
            if decision.verdict is not Verdict.ALLOW:
                note(
                    s,
                    change,
                    kind=f"{action.value}_refused",
                    actor="policy",
                    now=now,
                    message="; ".join(decision.reasons),
                    details=decision.to_dict(),
                )
                return Outcome(ChangeView.of(change), decision)
            event = transition(
                s,
                change,
                command,
                actor=actor,
                now=now,
                message=f"{action.value} requested by {actor}",
                details=decision.to_dict(),
            )
            seq = event.seq
    except IllegalTransition as exc:
        raise Conflict(f"{change_ref(change_id)}: {exc}") from None
    except ConcurrentUpdate:
        raise Conflict(
            f"{change_ref(change_id)} changed while you asked; nothing was done, look again"
        ) from None
    job_id = ctx.submit(job_kind, change_id, key=f"{job_kind}:{change_id}:{seq}")
    return Outcome(_view(ctx, change_id), decision, job_id)


def rollback(ctx: AppContext, ref: str, *, requester: str) -> Outcome:
    return _start(
        ctx,
        ref,
        action=Action.ROLLBACK,
        command=Command.START_ROLLBACK,
        job_kind="restore",
        actor=requester,
    )


def merge(ctx: AppContext, ref: str, *, requester: str) -> Outcome:
    return _start(
        ctx,
        ref,
        action=Action.MERGE,
        command=Command.START_MERGE,
        job_kind="remove",
        actor=requester,
    )


def explain(ctx: AppContext, vm_name: str, action: str, requester: str) -> Decision:
    vm = resolve_vm(ctx, vm_name)
    try:
        act = Action(action)
    except ValueError:
        raise BadRequest(
            f"unknown action '{action}': use one of {', '.join(a.value for a in Action)}"
        ) from None
    return decide(ctx, vm, act, requester, None)


def _view(ctx: AppContext, change_id: int) -> ChangeView:
    with session_scope(ctx.engine) as s:
        return ChangeView.of(get_change(s, change_id))
