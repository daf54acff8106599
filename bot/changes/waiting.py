"""Which actions of some changes wait for an approver, read in one query:
`change show` asks it of one change, `change list` and `/checkpoint status`
of a page of them."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, col, select

from bot.changes.lifecycle import State, still_wanted
from bot.domain import ApprovalState
from bot.store.tables.approvals import ApprovalRequest
from bot.store.tables.changes import Change


def waiting_actions(s: Session, changes: Sequence[Change]) -> dict[int, tuple[str, ...]]:
    """Each change's actions whose approval requests wait and can still be
    carried out (a rollback asked for before the change was merged cannot),
    oldest first; a change with none is left out."""
    states = {c.id: State(c.state) for c in changes if c.id is not None}
    if not states:
        return {}
    pending = s.exec(
        select(ApprovalRequest.change_id, ApprovalRequest.action)
        .where(
            col(ApprovalRequest.change_id).in_(list(states)),
            ApprovalRequest.state == ApprovalState.PENDING,
        )
        .order_by(col(ApprovalRequest.id))
    ).all()
    found: dict[int, tuple[str, ...]] = {}
    for change_id, action in pending:
        if still_wanted(action, states[change_id]):
            found[change_id] = (*found.get(change_id, ()), action)
    return found
