"""What waits for approvers on a change (the create itself, a rollback, a
merge, an extension), as its thread root and `/checkpoint status` show it:
one entry per waiting request, each carrying the request's id, so its
Approve / Reject act on that request and no other."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.changes.lifecycle import State, still_wanted
from bot.changes.views import ChangeView, PendingApproval
from bot.domain import ApprovalState
from bot.store.db import session_scope
from bot.store.tables.approvals import ApprovalRequest
from policies import ApprovalRequirement


def pending_approvals(engine: Engine, change: ChangeView) -> list[PendingApproval]:
    with session_scope(engine) as s:
        requests = s.exec(
            select(ApprovalRequest)
            .where(
                ApprovalRequest.change_id == change.id,
                ApprovalRequest.state == ApprovalState.PENDING,
            )
            .order_by(col(ApprovalRequest.id))
        ).all()
        # A request the change has moved past (a rollback asked for before
        # the change was merged) offers no live Approve any more.
        return [
            PendingApproval(
                change=change,
                action=r.action,
                description=ApprovalRequirement.from_dict(r.requirement).describe(),
                approvals=len(r.approvals),
                required=r.required,
                request_id=r.id,
                requested_by=r.requested_by,
                extend_to=PendingApproval.extension_of(r.params),
            )
            for r in requests
            if still_wanted(r.action, State(change.state))
        ]
