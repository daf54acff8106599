"""Read-only lookups for Slack's screens: the App Home, what waits for
approvers on a change, a change's current version, the change windows.

Nothing here writes or decides; each listener calls exactly one of these.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlmodel import col, select

from bot.changes import FINAL_STATES, State
from bot.changes.batch_load import load_batch, members_of
from bot.changes.batch_record import get_batch
from bot.changes.batch_views import BatchView
from bot.changes.pending import pending_approvals
from bot.changes.record import parse_ref
from bot.changes.views import ChangeView, PendingApproval, UpcomingWindow
from bot.domain import ApprovalState
from bot.durations import format_duration
from bot.inventory import InventoryLookupError
from bot.service.binding import Happened, events_since
from bot.service.deciding import Principal
from bot.service.errors import from_inventory
from bot.service.queries import ScheduledRun, scheduled_runs
from bot.service.requests import lifetime_limit
from bot.store.db import session_scope
from bot.store.tables import batch_ref
from bot.store.tables.approvals import ApprovalRequest
from bot.store.tables.changes import Change, ChangeEvent
from policies import (
    PERMISSIONS_RULE,
    Action,
    ApprovalRequirement,
    Facts,
    Permission,
    authorize,
    check_approver,
)
from policies.rules.lifetime import ttl_past_maximum

if TYPE_CHECKING:
    from bot.service.deps import ServiceDeps

_OPEN = [s.value for s in State if s not in FINAL_STATES and s is not State.ROLLED_BACK]
_HOLDING = [State.ACTIVE.value, State.ROLLED_BACK.value]
# A Slack user id (not "*", not `cli:NAME`, not the policy or the bot).
_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")
# App Home shows a bounded page; the template counts what it leaves out.
_HOME_LIMIT = 200
# The viewer's waves with their progress line, newest first (each is a
# read of its members; the page has room for a few).
_HOME_WAVES = 5


@dataclass(frozen=True)
class HomeChange(ChangeView):
    """A change as the App Home lists it. The template has no clock, and a
    past expiry must read "expired …" as in "Past their TTL", so whether it
    has passed is settled here, at the time the page is built."""

    expired: bool = False

    @classmethod
    def at(cls, view: ChangeView, now: datetime) -> HomeChange:
        values = {f.name: getattr(view, f.name) for f in fields(ChangeView)}
        return cls(**values, expired=view.expires_at is not None and view.expires_at < now)


@dataclass(frozen=True)
class HomeData:
    mine: list[ChangeView]
    to_approve: list[PendingApproval]
    windows: list[UpcomingWindow]
    overdue: list[ChangeView]
    # The viewer's changes and waves asked for at a time (`--at`), soonest first.
    scheduled: list[ScheduledRun] = field(default_factory=list)
    # Waves waiting for the viewer's approval: one entry per wave, its
    # members' requests out of `to_approve` (docs/batches.md).
    waves_to_approve: list[WaveApproval] = field(default_factory=list)
    # The viewer's own open waves, newest first: each with its state and
    # progress ("7 of 9 done, 1 failed"), as its card says it.
    waves: list[BatchView] = field(default_factory=list)


@dataclass(frozen=True)
class WaveApproval:
    """One approval for a whole wave, as an approver sees it: the members
    it carries out (VM names, in order), what it needs and how far it is."""

    batch_ref: str
    action: str
    description: str
    vms: tuple[str, ...]
    approvals: int
    required: int
    requested_by: str | None
    # Its Approve all's value, bound to every request of the wave that
    # waits now, as the wave's card draws it (bot/wave_keys.py).
    value: str = ""


def _by_wave(
    pending: list[PendingApproval], waves: dict[int, int], values: dict[int, str]
) -> tuple[list[PendingApproval], list[WaveApproval]]:
    """`pending` split: approvals of changes asked for alone, and one entry
    per wave (and action) for its members' (`waves`: change id → batch id;
    `values`: batch id → its Approve all's value)."""
    alone: list[PendingApproval] = []
    grouped: dict[tuple[int, str], list[PendingApproval]] = {}
    for p in pending:
        batch_id = waves.get(p.change.id)
        if batch_id is None:
            alone.append(p)
        else:
            grouped.setdefault((batch_id, p.action), []).append(p)
    entries = [
        WaveApproval(
            batch_ref(batch_id),
            action,
            members[0].description,
            tuple(m.change.vm_name for m in members),
            min(m.approvals for m in members),
            max(m.required for m in members),
            members[0].requested_by,
            values.get(batch_id, ""),
        )
        for (batch_id, action), members in grouped.items()
    ]
    return alone, entries


def waiting(ctx: ServiceDeps, change: ChangeView) -> list[PendingApproval]:
    """What waits for approvers on `change`, one entry per pending request."""
    return pending_approvals(ctx.engine, change)


def concerned(ctx: ServiceDeps, change_id: int) -> tuple[str, ...]:
    """The Slack users whose App Home shows `change_id` or just stopped
    showing it: its requester, the users who may approve any of its
    requests, the admins, and everyone who acted on it. (Members of an
    approver group are not listed by the policy; their Home is refreshed
    when they have opened it, `handlers/home_refresh.py`.)"""
    with session_scope(ctx.engine) as s:
        change = s.get(Change, change_id)
        if change is None:
            return ()
        requests = s.exec(
            select(ApprovalRequest).where(ApprovalRequest.change_id == change_id)
        ).all()
        events = s.exec(select(ChangeEvent).where(ChangeEvent.change_id == change_id)).all()
        people = [change.requester, *ctx.policy.admins.users]
        for r in requests:
            people += [r.requested_by, *ApprovalRequirement.from_dict(r.requirement).users]
        people += [e.actor for e in events]
    found = [p for p in dict.fromkeys(people) if _SLACK_USER.match(p)]
    return tuple(found)


@dataclass(frozen=True)
class Refusal:
    """A rule that refuses a VM whatever its host says, in its own words."""

    rule: str
    message: str
    remediation: str


def refused_at_once(
    ctx: ServiceDeps, vm_name: str, who: Principal, ttl: timedelta | None = None
) -> list[Refusal]:
    """Why creating a checkpoint of `vm_name` (for `ttl`, if asked) is
    refused for `who` before any host is asked (the create modal says it
    under its field, the VM picker marks the VM); [] when nothing refuses
    it outright. An unknown VM is a BadRequest."""
    try:
        vm = ctx.inventory.vm(vm_name)
    except InventoryLookupError as exc:
        raise from_inventory(exc) from None
    return [
        Refusal(o.rule, o.message, o.remediation)
        for o in ctx.decider.refusals_at_once(vm, Action.CREATE, who, ttl)
    ]


def ttl_refusal(ctx: ServiceDeps, vm_name: str, text: str) -> Refusal | None:
    """A TTL too long to be a duration at all (past a year, `text` as the
    person wrote it), refused in the ttl rule's own words for `vm_name`'s
    maximum: the create form says it as it says a TTL only past the
    policy's maximum (`refused_at_once`). None when the inventory has no
    such VM (its own field says so)."""
    try:
        vm = ctx.inventory.vm(vm_name)
    except InventoryLookupError:
        return None
    most = format_duration(lifetime_limit(ctx, vm))
    return Refusal("ttl", *ttl_past_maximum(text.strip(), most))


def refused_vms(ctx: ServiceDeps, who: Principal, limit: int = 100) -> dict[str, str]:
    """VM name → the rule that refuses a checkpoint of it whatever its host
    says (the create modal's VM picker marks them). Permissions are left
    out: they are the person's, not the VM's, and the modal says them on
    submit. Nothing when the estate is larger than a picker lists."""
    vms = ctx.inventory.vms
    if len(vms) > limit:
        return {}
    marks: dict[str, str] = {}
    for vm in vms:
        rules = [
            o.rule
            for o in ctx.decider.refusals_at_once(vm, Action.CREATE, who)
            if o.rule != PERMISSIONS_RULE
        ]
        if rules:
            marks[vm.name] = rules[0]
    return marks


def change_version(ctx: ServiceDeps, ref: str) -> int | None:
    """The change's current version (to tell an outdated message), or None."""
    change_id = parse_ref(ref)
    if change_id is None:
        return None
    with session_scope(ctx.engine) as s:
        change = s.get(Change, change_id)
        return change.version if change is not None else None


def happened_since(
    ctx: ServiceDeps, ref: str, version: int
) -> tuple[tuple[Happened, ...], int] | None:
    """What happened to the change after `version` (a card's version): the
    first few events and how many more; None for no such change."""
    change_id = parse_ref(ref)
    if change_id is None:
        return None
    with session_scope(ctx.engine) as s:
        if s.get(Change, change_id) is None:
            return None
        return events_since(s, change_id, version)


def upcoming_windows(ctx: ServiceDeps, limit: int = 10) -> list[UpcomingWindow]:
    now = ctx.clock()
    found = []
    for w in ctx.policy.windows:
        opens = w.next_start(now)
        until = w.open_until(now)
        if until is not None:
            # Open right now: show the current opening, it is what matters.
            opens = until - w.duration
        found.append(
            UpcomingWindow(
                w.name,
                opens,
                opens + w.duration,
                open_now=until is not None,
                defined=f"{w.schedule_text} in {w.tz.key}",
            )
        )
    return sorted(found, key=lambda u: u.opens_at)[:limit]


def _where_approvable(ctx: ServiceDeps, who: Principal) -> tuple[str, ...] | None:
    """() when `who` may approve from App Home; the channels they may
    approve in when the policy limits approving to channels; None when the
    `approve` permission is not theirs anywhere (the button would refuse)."""
    here = authorize(ctx.policy, Permission.APPROVE, Facts(), who.id, who.groups, None)
    if not here.fired:
        return ()
    channels = ctx.policy.permission(Permission.APPROVE).channels
    there = tuple(
        c
        for c in channels
        if c != "*"
        and not authorize(ctx.policy, Permission.APPROVE, Facts(), who.id, who.groups, c).fired
    )
    return there or None


def home(ctx: ServiceDeps, who: Principal) -> HomeData:
    """What App Home shows `who`: open changes, approvals they may give,
    upcoming windows and checkpoints past their TTL."""
    now = ctx.clock()
    with session_scope(ctx.engine) as s:
        mine = s.exec(
            select(Change)
            .where(Change.requester == who.id, col(Change.state).in_([*_OPEN, *_HOLDING]))
            .order_by(col(Change.id).desc())
            .limit(_HOME_LIMIT)
        ).all()
        overdue = s.exec(
            select(Change)
            .where(col(Change.state).in_(_HOLDING), col(Change.expires_at) < now)
            .order_by(col(Change.expires_at))
            .limit(_HOME_LIMIT)
        ).all()
        pending = s.exec(
            select(ApprovalRequest, Change)
            .where(
                ApprovalRequest.state == ApprovalState.PENDING,
                ApprovalRequest.change_id == Change.id,
            )
            .order_by(col(ApprovalRequest.id))
            .limit(_HOME_LIMIT)
        ).all()
        mine_views: list[ChangeView] = [HomeChange.at(ChangeView.of(c), now) for c in mine]
        wave_ids = list(dict.fromkeys(c.batch_id for c in mine_views if c.batch_id is not None))
        my_waves = [
            BatchView.of(get_batch(s, batch_id), members_of(s, batch_id))
            for batch_id in wave_ids[:_HOME_WAVES]
        ]
        overdue_views = [ChangeView.of(c) for c in overdue]
        to_approve = []
        where = _where_approvable(ctx, who)
        for request, change in pending:
            requirement = ApprovalRequirement.from_dict(request.requirement)
            ok, _why = check_approver(requirement, who.id, who.groups, request.requested_by)
            if (
                ok
                and where is not None
                and not any(a.get("by") == who.id for a in request.approvals)
            ):
                to_approve.append(
                    PendingApproval(
                        change=HomeChange.at(ChangeView.of(change), now),
                        action=request.action,
                        description=requirement.describe(),
                        approvals=len(request.approvals),
                        required=request.required,
                        request_id=request.id,
                        requested_by=request.requested_by,
                        only_in=where,
                        extend_to=PendingApproval.extension_of(request.params),
                    )
                )
    timed = scheduled_runs(ctx, requester=who.id)[:_HOME_LIMIT]
    # Only where the viewer may approve here (no channel limit): a wave's
    # Approve all is given from the App Home like any other approval.
    waves = {p.change.id: p.change.batch_id for p in to_approve if p.change.batch_id is not None}
    with session_scope(ctx.engine) as s:
        values = {b: load_batch(s, b).button_value("approve") for b in set(waves.values())}
    alone, by_wave = _by_wave([p for p in to_approve if not p.only_in], waves, values)
    limited = [p for p in to_approve if p.only_in]
    return HomeData(
        mine_views,
        alone + limited,
        upcoming_windows(ctx),
        overdue_views,
        timed,
        by_wave,
        my_waves,
    )


# --- the inventory, as Slack's screens need it -------------------------------
# The listeners never hold the inventory themselves: these are its answers.


def vm_problem(ctx: ServiceDeps, name: str) -> str | None:
    """Why `name` is not a VM of the inventory (the inventory's own words),
    or None when it is one."""
    try:
        ctx.inventory.vm(name)
    except InventoryLookupError as exc:
        return str(exc)
    return None


def vm_names(ctx: ServiceDeps, containing: str = "") -> list[str]:
    """The inventory's VM names that contain `containing` (any case), sorted."""
    wanted = containing.casefold()
    return sorted(vm.name for vm in ctx.inventory.vms if wanted in vm.name.casefold())


def vms_by_host(ctx: ServiceDeps) -> dict[str, list[str]]:
    """Each host's VM names, as the inventory places them."""
    inventory = ctx.inventory
    return {h.name: [vm.name for vm in inventory.vms if vm.host == h.name] for h in inventory.hosts}
