"""Approval DMs follow their request.

Where the approvals rule says `dm: true`, each named approver gets a direct
message asking them to decide (bot/notify/thread.py). It carries no
buttons, but its words ("asks for your approval") stayed after someone
approved, rejected or withdrew the request, so an approver reading it later
went looking for a decision already made. Now the notifier `remember`s
where each DM landed (the `D…` conversation Slack answered) and which
request it is about, and every sync of a change (driven by the Slack
outbox, so any process does it and a failed update is tried again) calls
`ApprovalDMFollower.follow`: a DM whose request is settled is updated in
place to say how, and by whom. Each update is claimed first with a
conditional write of `shown`, so a settlement is told once however many
processes sync.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.changes.record import events_of, get_change
from bot.changes.views import ASKS_APPROVAL, ChangeView, EventView
from bot.domain import ApprovalState
from bot.notify.channel import Posted
from bot.store.db import session_scope
from bot.store.tables.approval_dms import ApprovalDM
from bot.store.tables.approvals import ApprovalRequest

if TYPE_CHECKING:
    from slack_sdk import WebClient

    from templates.blocks import SlackRenderer

log = logging.getLogger(__name__)

# Slack's answers that no retry changes: the DM or its conversation is
# gone, or the bot may not edit it. The DM is left as it is.
_FOR_GOOD = frozenset(
    {"message_not_found", "channel_not_found", "cant_update_message", "account_inactive"}
)


@dataclass(frozen=True)
class Settled:
    """How a request a DM asked about ended (for the template): `state` an
    `ApprovalState` other than pending; `by` who settled it (the person who
    rejected or withdrew it, the last approver), or for a superseded one
    why it no longer applies; `approvers` everyone who approved it."""

    action: str
    state: str
    by: str | None
    approvers: tuple[str, ...]


def settled(request: ApprovalRequest) -> Settled | None:
    """What the DM should say of `request`: None while it is pending (pure)."""
    if request.state == ApprovalState.PENDING:
        return None
    approvers = tuple(str(a.get("by")) for a in request.approvals if a.get("by"))
    return Settled(request.action, str(request.state), request.resolved_by, approvers)


def remember(
    engine: Engine, posted: Posted, *, event: EventView, change_id: int, user: str, now: datetime
) -> int | None:
    """Record an approval DM just posted to `user` for the request `event`
    asked approvers to decide; its id (None when no such request is found:
    nothing then to follow)."""
    action = ASKS_APPROVAL.get(event.kind)
    with session_scope(engine) as s:
        # The request is opened in the transaction that notes the event,
        # with the same clock reading: the newest of its action by then.
        request = s.exec(
            select(ApprovalRequest)
            .where(
                col(ApprovalRequest.change_id) == change_id,
                col(ApprovalRequest.action) == action,
                col(ApprovalRequest.requested_at) <= event.at,
            )
            .order_by(col(ApprovalRequest.id).desc())
        ).first()
        if request is None or request.id is None:
            return None
        dm = ApprovalDM(
            request_id=request.id,
            change_id=change_id,
            user=user,
            channel=posted.channel,
            ts=posted.ts,
            posted_at=now,
            shown=ApprovalState.PENDING.value,
        )
        s.add(dm)
        s.flush()
        return dm.id


class ApprovalDMFollower:
    def __init__(
        self, engine: Engine, client: WebClient, renderer: SlackRenderer, *, demo: bool
    ) -> None:
        self.engine, self.client, self.renderer, self.demo = engine, client, renderer, demo

    def __repr__(self) -> str:
        return f"ApprovalDMFollower(demo={self.demo})"

    def follow(self, change_id: int, default_channel: str | None) -> None:
        """Bring every approval DM about the change up to date (its thread is
        in the change's channel, or `default_channel`). Raises what
        Slack answered when it may answer otherwise later (the outbox tries
        the sync again); a DM gone for good is left."""
        with session_scope(self.engine) as s:
            rows = s.exec(
                select(ApprovalDM, ApprovalRequest)
                .join(ApprovalRequest, col(ApprovalRequest.id) == col(ApprovalDM.request_id))
                .where(
                    col(ApprovalDM.change_id) == change_id,
                    col(ApprovalDM.shown) != col(ApprovalRequest.state),
                )
                .order_by(col(ApprovalDM.id))
            ).all()
            if not rows:
                return
            change = get_change(s, change_id)
            channel = change.channel or default_channel
            view = ChangeView.of(change, events_of(s, change_id))
        for dm, request in rows:
            outcome = settled(request)
            if outcome is None or dm.id is None:
                continue
            payload = self.renderer.payload(
                "approval_dm_settled",
                c=view,
                r=outcome,
                you=dm.user,
                channel=channel,
                demo=self.demo,
            )
            if not self._swap(dm.id, dm.shown, outcome.state):
                continue  # another process told it first
            self._update(dm, payload, outcome.state)

    def _update(self, dm: ApprovalDM, payload: dict[str, Any], now: str) -> None:
        from slack_sdk.errors import SlackApiError

        try:
            self.client.chat_update(channel=dm.channel, ts=dm.ts, **payload)
        except SlackApiError as exc:
            error = str(exc.response.get("error", ""))
            if error in _FOR_GOOD:
                log.info("approval DM %s cannot be updated (%s); left as it is", dm.id, error)
                return
            self._swap(dm.id or 0, now, dm.shown)  # not shown: the next sync tries again
            raise

    def _swap(self, dm_id: int, was: str, now: str) -> bool:
        """Set `shown` to `now` where it still says `was`."""
        with session_scope(self.engine) as s:
            result = s.execute(
                update(ApprovalDM)
                .where(col(ApprovalDM.id) == dm_id, col(ApprovalDM.shown) == was)
                .values(shown=now)
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]
