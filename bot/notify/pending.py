"""What waits for approvers on a change besides the create itself (a
rollback, a merge, an extension), as its thread root and `/checkpoint
status` show it. A waiting create is the change's own state."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.service.views import ChangeView
from bot.store.db import session_scope
from bot.store.models import ApprovalRequest
from policies import ApprovalRequirement
from templates.blocks import PendingApproval


def pending_approval(engine: Engine, change: ChangeView) -> PendingApproval | None:
    with session_scope(engine) as s:
        request = s.exec(
            select(ApprovalRequest)
            .where(ApprovalRequest.change_id == change.id, ApprovalRequest.state == "pending")
            .order_by(col(ApprovalRequest.id))
        ).first()
    if request is None or request.action == "create":
        return None
    return PendingApproval(
        change=change,
        action=request.action,
        description=ApprovalRequirement.from_dict(request.requirement).describe(),
        approvals=len(request.approvals),
        required=request.required,
    )
