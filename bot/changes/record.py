"""The change record: changes and their append-only events.

Every write to a change is a conditional update on its `version`, and every
event is appended in the same transaction as that update, so two writers can
never interleave events or both move a change out of the same state.

Every write also appends a Slack outbox entry in that transaction: the
thread that shows the change is then brought up to date by whichever
process drains the outbox, even if this one dies right after the commit
(`bot.notify.outbox`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.changes.lifecycle import Command, State, Transition, apply, still_wanted
from bot.domain import ApprovalState, ChangeRef
from bot.store.db import session_scope
from bot.store.tables.changes import Change, ChangeEvent

T = TypeVar("T")


class ChangeNotFound(LookupError):
    def __init__(self, ref: str) -> None:
        super().__init__(f"no change {ref} (change ids look like CHG-0042)")
        self.ref = ref


class ConcurrentUpdate(RuntimeError):
    """Someone else changed the record first; reload and decide again."""

    def __init__(self, change_id: int) -> None:
        super().__init__(f"CHG-{change_id:04d} was changed by someone else at the same moment")
        self.change_id = change_id


def parse_ref(text: str) -> int | None:
    """`CHG-0042`, `chg-42` or `CHG42` → 42; anything else → None."""
    ref = ChangeRef.parse(text)
    return ref.id if ref else None


def get_change(session: Session, change_id: int) -> Change:
    change = session.get(Change, change_id, populate_existing=True)
    if change is None:
        raise ChangeNotFound(f"CHG-{change_id:04d}")
    return change


def recording(
    engine: Engine,
    change_id: int,
    write: Callable[[Session, Change], T],
    *,
    tries: int = 3,
) -> T:
    """`write(session, change)` in one transaction, on the change as it is
    now. A ConcurrentUpdate means another writer's note or step landed
    between the read and the update: the change is read again and `write`
    runs again, up to `tries` times, then the ConcurrentUpdate is raised.
    The transition table still refuses a step the change's new state does
    not allow (IllegalTransition). For what already happened (a job's step
    after the host acted, a note) that is all: losing the record of a
    restore that ran would be worse than writing it after the other note.
    A request a person made on what they saw also checks, in `write`, that
    what they saw still holds (bot/service/requests.py `begin_host_action`,
    `extend`)."""
    for attempt in range(1, tries + 1):
        try:
            with session_scope(engine) as s:
                return write(s, get_change(s, change_id))
        except ConcurrentUpdate:
            if attempt == tries:
                raise
    raise AssertionError("tries must be at least 1")


def open_change(
    session: Session,
    change: Change,
    *,
    actor: str,
    now: datetime,
    actor_team: str | None = None,
) -> Change:
    """Insert a new change in `requested` with its first event."""
    change.state = State.REQUESTED.value
    change.created_at = now
    change.updated_at = now
    change.version = 1
    session.add(change)
    session.flush()
    assert change.id is not None
    session.add(
        ChangeEvent(
            change_id=change.id,
            seq=1,
            at=now,
            actor=actor,
            actor_team=actor_team if actor_team is not None else change.requester_team,
            kind="requested",
            to_state=State.REQUESTED.value,
            message=change.reason,
            details={"vm": change.vm_name, "host": change.host, "type": change.checkpoint_type},
        )
    )
    _behind_in_slack(session, change, now)
    return change


def _behind_in_slack(session: Session, change: Change, now: datetime) -> None:
    # Imported where the record is written: reading a change (`change show`)
    # maps neither the Slack outbox nor the approval requests
    # (bot.store.tables).
    from bot.store.tables.slack import SlackOutbox

    assert change.id is not None
    session.add(SlackOutbox(change_id=change.id, created_at=now))


def _bump(session: Session, change: Change, now: datetime, values: dict[str, Any]) -> None:
    assert change.id is not None
    result = session.execute(
        update(Change)
        .where(col(Change.id) == change.id, col(Change.version) == change.version)
        .values(version=change.version + 1, updated_at=now, **values)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise ConcurrentUpdate(change.id)
    _behind_in_slack(session, change, now)
    session.refresh(change)


def _append(
    session: Session,
    change: Change,
    *,
    kind: str,
    actor: str,
    now: datetime,
    message: str,
    details: dict[str, Any],
    transition: Transition | None = None,
    actor_team: str | None = None,
) -> ChangeEvent:
    assert change.id is not None
    last = session.exec(
        select(func.max(ChangeEvent.seq)).where(ChangeEvent.change_id == change.id)
    ).one()
    event = ChangeEvent(
        change_id=change.id,
        seq=(last or 0) + 1,
        at=now,
        actor=actor,
        actor_team=actor_team,
        kind=kind,
        from_state=transition.from_state.value if transition else None,
        to_state=transition.to_state.value if transition else None,
        message=message[:4000],
        details=details,
    )
    session.add(event)
    session.flush()
    return event


def transition(
    session: Session,
    change: Change,
    command: Command,
    *,
    actor: str,
    now: datetime,
    message: str = "",
    details: dict[str, Any] | None = None,
    actor_team: str | None = None,
    **values: Any,
) -> ChangeEvent:
    """Move `change` by `command` (pure table), update it conditionally and
    append exactly one event. Raises IllegalTransition or ConcurrentUpdate.
    `actor_team`: the Slack workspace of a Slack user acting (None otherwise)."""
    step = apply(State(change.state), command)
    _bump(session, change, now, {"state": step.to_state.value, **values})
    _supersede_requests(session, change, step.to_state, now)
    return _append(
        session,
        change,
        kind=command.value,
        actor=actor,
        now=now,
        message=message,
        details=details or {},
        transition=step,
        actor_team=actor_team,
    )


def _supersede_requests(session: Session, change: Change, state: State, now: datetime) -> None:
    """Requests waiting for approvers that the new state makes pointless
    are closed in the same transaction, so no card offers to approve them."""
    from bot.store.tables.approvals import ApprovalRequest

    pending = session.exec(
        select(ApprovalRequest).where(
            ApprovalRequest.change_id == change.id, ApprovalRequest.state == ApprovalState.PENDING
        )
    ).all()
    for request in pending:
        if not still_wanted(request.action, state):
            request.state = ApprovalState.SUPERSEDED
            request.resolved_at = now
            request.resolved_by = f"the change became {state.value.replace('_', ' ')}"
            session.add(request)


def note(
    session: Session,
    change: Change,
    *,
    kind: str,
    actor: str,
    now: datetime,
    message: str,
    details: dict[str, Any] | None = None,
    actor_team: str | None = None,
    **values: Any,
) -> ChangeEvent:
    """An event that does not change the state (a warning, an extension)."""
    _bump(session, change, now, values)
    return _append(
        session,
        change,
        kind=kind,
        actor=actor,
        now=now,
        message=message,
        details=details or {},
        actor_team=actor_team,
    )


def events_of(session: Session, change_id: int) -> list[ChangeEvent]:
    return list(
        session.exec(
            select(ChangeEvent)
            .where(ChangeEvent.change_id == change_id)
            .order_by(col(ChangeEvent.seq))
        )
    )
