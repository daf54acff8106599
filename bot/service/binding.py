"""A click acts only on what its card showed.

Every button names the change, what it is for, and the version of the
change the card was rendered at (`templates.blocks.ActionValue`):

- an Approve / Reject names one approval request (`create#12`): it acts on
  that request while it is still pending, and on nothing else. Once that
  request is settled, or superseded, the click changes nothing and says
  what happened since; whatever waits now has its own buttons.
- a Roll back / Keep & merge / Extend / Start / resolve button names its
  action: it acts while the change is still in the state the card showed,
  and has not left it since (a rollback that failed and left the change
  active again was not on the card: its copy drawn before acts on nothing).
  Notes (an extension, a TTL notice, a host's warning) leave it standing.
- an old-format value (`CHG-n:vN`, from messages posted before this format)
  names no request, so it acts only where exactly one thing can be meant:
  the change is still at version N (nothing at all happened since the card)
  and exactly one request waits.

A value no card of this bot carried (a version the change never reached, a
request id no row can have) acts on nothing and is refused as such
(`NotDrawn`), before anything is looked up by it.

The CLI and `/checkpoint approve` name no request either: they act on what
waits if one thing does, on the named action if the caller said which, and
otherwise ask which.

Versions are event sequence numbers: every write to a change bumps its
version and appends exactly one event (`bot.changes.record`), so "what
happened since vN" is the events after seq N.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlmodel import Session, col, select

from bot.changes.record import events_of, get_change
from bot.domain import APPROVAL_ACTIONS, ApprovalState, user_mention
from bot.service.errors import BadRequest, Conflict
from bot.service.finding import find_change
from bot.store.db import session_scope
from bot.store.tables import change_ref
from bot.store.tables.approvals import ApprovalRequest
from bot.store.tables.changes import Change, ChangeEvent

if TYPE_CHECKING:
    from bot.service.deps import ServiceDeps

# How many of the events since a card the explanation lists.
_SINCE_SHOWN = 6

# The largest id a button can name: ids and versions are INTEGER columns,
# and PostgreSQL's INTEGER ends here. A larger one was on no card this bot
# drew, and is refused before it reaches the database (where it would not
# even fit a bind parameter).
MAX_ROW_ID = 2**31 - 1


@dataclass(frozen=True)
class Target:
    """What an approval or rejection is for. All None: whatever waits (the
    CLI, `/checkpoint approve CHG-n`); `action`: the one waiting request for
    that action; `request_id`: exactly that request (a new-format button);
    `version` alone: an old-format button, bound to that version."""

    request_id: int | None = None
    action: str | None = None
    version: int | None = None

    def __post_init__(self) -> None:
        if self.action is not None and self.action not in APPROVAL_ACTIONS:
            raise BadRequest(
                f"unknown request '{self.action}': say one of {', '.join(APPROVAL_ACTIONS)}"
            )

    @property
    def legacy(self) -> bool:
        return self.request_id is None and self.version is not None


@dataclass(frozen=True)
class Happened:
    """One event since a card was rendered, for the explanation."""

    kind: str
    actor: str
    at: datetime
    to_state: str | None


@dataclass(frozen=True)
class Waiting:
    """A request that waits for approvers now."""

    request_id: int
    action: str


class Stale(Conflict):
    """A click for something that no longer waits, or a card that no longer
    shows the change as it is: nothing was changed. Carries what happened,
    so each surface can say it in its own words (`message` is plain text for
    the CLI and logs; Slack renders mentions from the fields)."""

    def __init__(
        self,
        change_id: int,
        *,
        was_for: str,
        seen_version: int | None = None,
        now_version: int,
        settled_state: str | None = None,
        settled_by: str | None = None,
        settled_at: datetime | None = None,
        since: tuple[Happened, ...] = (),
        more_since: int = 0,
        waiting: tuple[Waiting, ...] = (),
    ) -> None:
        self.change_id = change_id
        self.ref = change_ref(change_id)
        self.was_for = was_for
        self.seen_version = seen_version
        self.now_version = now_version
        self.settled_state = settled_state
        self.settled_by = settled_by
        self.settled_at = settled_at
        self.since = since
        self.more_since = more_since
        self.waiting = waiting
        super().__init__(self._plain())

    def _plain(self) -> str:
        head = f"{self.ref}: this button was for {self.was_for}"
        if self.settled_state is not None:
            head += f", {settled_words(self.settled_state, self.settled_by)}"
            if self.settled_at is not None:
                head += f" at {self.settled_at:%Y-%m-%d %H:%M} UTC"
        elif self.seen_version is not None:
            head += ", and the change moved on since the card was drawn"
            if self.since:
                shown = ", ".join(f"{h.kind.replace('_', ' ')} by {h.actor}" for h in self.since)
                more = f" and {self.more_since} more" if self.more_since else ""
                head += f"; since then: {shown}{more}"
        head += "; nothing was done"
        if self.waiting:
            names = " and ".join(f"the {w.action}" for w in self.waiting)
            head += f". Waiting now: {names}, with its own buttons in the thread's card"
        else:
            head += f". Nothing waits for approval on {self.ref} now"
        return head + "."


def settled_words(state: str, by: str | None) -> str:
    """How a request ended, in words: `by` is the person who settled an
    approved, rejected or withdrawn one (named as a mention, so Slack shows
    the person and the CLI an @name), the reason for a superseded one; a
    refusal is the policy's, whoever clicked."""
    if state == ApprovalState.SUPERSEDED:
        return f"which no longer applies ({by})" if by else "which no longer applies"
    if state == ApprovalState.REFUSED:
        return "refused by the policy"
    if state == ApprovalState.WITHDRAWN:
        # Only its requester can withdraw a request: say so once, then who.
        return (
            f"withdrawn by its requester, {user_mention(by)}"
            if by
            else "withdrawn by its requester"
        )
    verb: dict[str, str] = {
        ApprovalState.APPROVED: "approved",
        ApprovalState.REJECTED: "rejected",
    }
    said = verb.get(state, state)
    return f"{said} by {user_mention(by)}" if by else said


NOT_DRAWN = "this button's value is not one this bot drew; nothing was done"


class NotDrawn(BadRequest):
    """A button value no card of this bot carried: a request id no row can
    have, or a version the change never reached (a forged or garbled value,
    signed by Slack all the same). Nothing is looked up or changed."""

    def __init__(self, change_id: int) -> None:
        self.change_id = change_id
        self.ref = change_ref(change_id)
        super().__init__(f"{self.ref}: {NOT_DRAWN}")


class Ambiguous(Conflict):
    """More than one request waits and the caller did not say which."""

    def __init__(self, change_id: int, verb: str, choices: tuple[str, ...]) -> None:
        self.change_id = change_id
        self.ref = change_ref(change_id)
        self.verb = verb
        self.choices = choices
        super().__init__(
            f"{self.ref} waits for approval of more than one thing ({', '.join(choices)}): "
            f"say which one you {verb}; nothing was done"
        )


# --- reading the record ----------------------------------------------------------


def pending_requests(s: Session, change_id: int) -> list[ApprovalRequest]:
    return list(
        s.exec(
            select(ApprovalRequest)
            .where(
                ApprovalRequest.change_id == change_id,
                ApprovalRequest.state == ApprovalState.PENDING,
            )
            .order_by(col(ApprovalRequest.id))
        ).all()
    )


def _waiting(s: Session, change_id: int) -> tuple[Waiting, ...]:
    return tuple(
        Waiting(r.id, r.action) for r in pending_requests(s, change_id) if r.id is not None
    )


def events_since(s: Session, change_id: int, version: int) -> tuple[tuple[Happened, ...], int]:
    """The first events after `version` and how many more there are."""
    later = [e for e in events_of(s, change_id) if e.seq > version]
    shown = tuple(Happened(e.kind, e.actor, e.at, e.to_state) for e in later[:_SINCE_SHOWN])
    return shown, max(0, len(later) - _SINCE_SHOWN)


def state_at(events: list[ChangeEvent], version: int) -> str | None:
    """The change's state when it was at `version` (its events up to seq
    `version`), or None when the record does not go back that far."""
    state = None
    for e in events:
        if e.seq > version:
            break
        if e.to_state:
            state = e.to_state
    return state


def _request_words(action: str) -> str:
    return f"the {action} approval"


def bound_request(s: Session, change: Change, target: Target, verb: str) -> ApprovalRequest:
    """The pending request `target` means on `change`, read in session `s`,
    or Stale / Ambiguous / Conflict (NotDrawn: a value no card carried).
    Called again in the transaction that
    writes, so the request is still pending when the write commits: every
    settlement of a request bumps the change's version, and so does every
    approval, so two writers cannot both act on one version."""
    assert change.id is not None
    change_id = change.id
    if target.version is not None and target.version > change.version:
        # Versions only grow: no card showed this one.
        raise NotDrawn(change_id)
    if target.request_id is not None:
        if not 0 < target.request_id <= MAX_ROW_ID:
            raise NotDrawn(change_id)
        request = s.get(ApprovalRequest, target.request_id, populate_existing=True)
        if request is None or request.change_id != change_id:
            raise NotDrawn(change_id)  # no request of this change
        if target.action is not None and request.action != target.action:
            # The value contradicts itself: act on neither.
            raise NotDrawn(change_id)
        if request.state != ApprovalState.PENDING:
            raise Stale(
                change_id,
                was_for=_request_words(request.action),
                seen_version=target.version,
                now_version=change.version,
                settled_state=request.state,
                settled_by=request.resolved_by,
                settled_at=request.resolved_at,
                waiting=_waiting(s, change_id),
            )
        return request
    pending = pending_requests(s, change_id)
    if target.legacy:
        assert target.version is not None
        if change.version != target.version or len(pending) != 1:
            since, more = events_since(s, change_id, target.version)
            raise Stale(
                change_id,
                was_for="what this card showed",
                seen_version=target.version,
                now_version=change.version,
                since=since,
                more_since=more,
                waiting=_waiting(s, change_id),
            )
        return pending[0]
    if target.action is not None:
        pending = [r for r in pending if r.action == target.action]
    if not pending:
        what = (
            f"no {target.action} waiting for approval"
            if target.action
            else "nothing waiting for approval"
        )
        others = _waiting(s, change_id)
        tail = (
            f" (waiting: {', '.join(w.action for w in others)})" if others and target.action else ""
        )
        raise Conflict(f"{change_ref(change_id)} has {what}{tail}")
    if len(pending) > 1:
        raise Ambiguous(change_id, verb, tuple(r.action for r in pending))
    return pending[0]


CARD_ACTIONS = {
    "rollback": "a rollback",
    "merge": "keeping (merging) the checkpoint",
    "extend": "an extension",
    "start": "starting the VM",
    "unschedule": "withdrawing the scheduled checkpoint",
    "resolve": "recording what happened",
}


@dataclass(frozen=True)
class Card:
    """A non-approval button: the action it is for and the version its card
    showed (`legacy`: an old-format value, which names no action)."""

    action: str
    version: int
    legacy: bool = False


def check_card(ctx: ServiceDeps, ref: str, card: Card) -> None:
    """Raise Stale (and refresh the change's views) unless the change is
    still as the card showed it: in the same state, with no transition
    since, for a new-format button; at exactly the same version for an old
    one. The action's own service call then checks everything else, as it
    does for any request."""
    change_id = find_change(ctx, ref)
    with session_scope(ctx.engine) as s:
        change = get_change(s, change_id)
        if card.version > change.version:
            # A version the change has not reached was on no card we posted.
            raise NotDrawn(change_id)
        events = events_of(s, change_id)
        if card.legacy:
            fresh = change.version == card.version
        else:
            fresh = state_at(events, card.version) == change.state and not any(
                e.to_state for e in events if e.seq > card.version
            )
        if fresh:
            return
        since, more = events_since(s, change_id, card.version)
        waiting = _waiting(s, change_id)
        now_version = change.version
    ctx.notifier.changed(change_id)
    raise Stale(
        change_id,
        was_for=CARD_ACTIONS.get(card.action, card.action) + " of the change as its card showed it",
        seen_version=card.version,
        now_version=now_version,
        since=since,
        more_since=more,
        waiting=waiting,
    )
