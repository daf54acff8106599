"""Read-only lookups for Slack's screens: the App Home, what waits for
approvers on a change, a change's current version, the change windows.

Nothing here writes or decides; each listener calls exactly one of these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlmodel import col, select

from bot.changes import FINAL_STATES, State
from bot.changes.pending import pending_approvals
from bot.changes.record import parse_ref
from bot.changes.views import ChangeView, PendingApproval, UpcomingWindow
from bot.domain import ApprovalState
from bot.inventory import InventoryLookupError
from bot.service.deciding import Principal
from bot.service.errors import from_inventory
from bot.store.db import session_scope
from bot.store.models import ApprovalRequest, Change, change_ref
from policies import ApprovalRequirement, Facts, Permission, authorize, check_approver

if TYPE_CHECKING:
    from bot.service.deps import ServiceDeps

_OPEN = [s.value for s in State if s not in FINAL_STATES and s is not State.ROLLED_BACK]
_HOLDING = [State.ACTIVE.value, State.ROLLED_BACK.value]
# App Home shows a bounded page; the template counts what it leaves out.
_HOME_LIMIT = 200


@dataclass(frozen=True)
class HomeData:
    mine: list[ChangeView]
    to_approve: list[PendingApproval]
    windows: list[UpcomingWindow]
    overdue: list[ChangeView]


def newest_active_change(ctx: ServiceDeps, vm_name: str) -> str | None:
    """`rollback VM` means the VM's newest active change: its ref, or None."""
    try:
        vm = ctx.inventory.vm(vm_name)
    except InventoryLookupError as exc:
        raise from_inventory(exc) from None
    with session_scope(ctx.engine) as s:
        found = s.exec(
            select(Change.id)
            .where(Change.vm_id == vm.vm_id, Change.state == State.ACTIVE.value)
            .order_by(col(Change.id).desc())
        ).first()
    return change_ref(found) if found is not None else None


def waiting(ctx: ServiceDeps, change: ChangeView) -> list[PendingApproval]:
    """What waits for approvers on `change`, one entry per pending request."""
    return pending_approvals(ctx.engine, change)


def change_version(ctx: ServiceDeps, ref: str) -> int | None:
    """The change's current version (to tell an outdated message), or None."""
    change_id = parse_ref(ref)
    if change_id is None:
        return None
    with session_scope(ctx.engine) as s:
        change = s.get(Change, change_id)
        return change.version if change is not None else None


def upcoming_windows(ctx: ServiceDeps, limit: int = 10) -> list[UpcomingWindow]:
    now = ctx.clock()
    found = []
    for w in ctx.policy.windows:
        opens = w.next_start(now)
        until = w.open_until(now)
        if until is not None:
            # Open right now: show the current opening, it is what matters.
            opens = until - w.duration
        found.append(UpcomingWindow(w.name, opens, opens + w.duration))
    return sorted(found, key=lambda u: u.opens_at)[:limit]


def window_scopes(ctx: ServiceDeps) -> dict[str, str]:
    return {w.name: w.scope.describe() for w in ctx.policy.windows}


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
        mine_views = [ChangeView.of(c) for c in mine]
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
                        change=ChangeView.of(change),
                        action=request.action,
                        description=requirement.describe(),
                        approvals=len(request.approvals),
                        required=request.required,
                        request_id=request.id,
                        requested_by=request.requested_by,
                        only_in=where,
                    )
                )
    return HomeData(mine_views, to_approve, upcoming_windows(ctx), overdue_views)
