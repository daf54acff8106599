"""TTL notices follow what they are about.

A TTL reminder (the requester's DM) and an expiry notice (the channel's)
carry buttons that decide a checkpoint, or a whole wave. They are posted
outside the change's thread, so the thread's sync never touched them
again: once someone kept & merged, rolled back or extended the checkpoint
(from the thread, the CLI, or an automatic merge), their buttons were
stale, and a click got a refusal. Now the TTL chaser `remember`s where
each notice landed (the `D…` conversation Slack answered for a DM) and
what it showed, and every sync of a change (bot/notify/thread.py, driven
by the Slack outbox, so any process does it and a failed update is tried
again) calls `TTLNoticeFollower.follow`: a notice whose changes moved is
updated in place to say what happened to each, with no buttons. Each
update is claimed first with a conditional write of `shown`, so a move is
told once however many processes sync.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.changes.batch_load import load_batch
from bot.changes.record import events_of, get_change
from bot.changes.views import ChangeView
from bot.domain import BOT_ACTOR
from bot.notify.channel import Posted
from bot.store.db import session_scope
from bot.store.tables import batch_ref
from bot.store.tables.ttl_notices import TTLNotice

if TYPE_CHECKING:
    # The Slack SDK and the renderer come with the notifier that builds a
    # follower; the TTL chaser imports `remember` on every path, Slack or not.
    from slack_sdk import WebClient

    from templates.blocks import SlackRenderer

log = logging.getLogger(__name__)

# States a notice names as what happened; any other is "now <state>".
_TOLD = frozenset({"merged", "merging", "rolled_back", "rolling_back", "vanished"})
# Slack's answers that no retry changes: the message or its conversation
# is gone, or the bot may not edit it. The notice is left as it is.
_FOR_GOOD = frozenset(
    {
        "message_not_found",
        "channel_not_found",
        "cant_update_message",
        "is_archived",
        "not_in_channel",
        "account_inactive",
    }
)
# Conditional writes lost to another process before this one gives way.
_TRIES = 3


@dataclass(frozen=True)
class Outcome:
    """What became of one change a notice was about (for the template):
    `what` is a state in `_TOLD`, "extended", "now" (another state),
    "expired" (nobody decided, and the expiry the notice foretold has come)
    or "unchanged" (as the notice showed it: a wave's member nobody decided
    yet, or a change back where it was after its merge failed)."""

    change: ChangeView
    what: str
    by: str | None = None
    until: datetime | None = None

    @property
    def automatic(self) -> bool:
        return self.by == BOT_ACTOR


# --- what a notice showed --------------------------------------------------------


def _iso(at: datetime | None) -> str | None:
    if at is None:
        return None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


def expiry_told(change: ChangeView) -> bool:
    """Whether the TTL chaser has told this checkpoint's expiry (a
    `ttl_expired` event since its last extension; `change` read with its
    events). A reminder posted before then says "expires in 45m", which is
    no longer true once it has."""
    told = False
    for event in change.events:
        if event.kind == "ttl_expired":
            told = True
        elif event.kind == "extended":
            told = False
    return told


def snapshot(change: ChangeView) -> dict[str, str | bool | None]:
    """How a notice shows one change: what its buttons were for, and
    whether it said the checkpoint had expired."""
    return {
        "state": change.state,
        "expires_at": _iso(change.expires_at),
        "expired": expiry_told(change),
    }


def digest(changes: Sequence[ChangeView]) -> str:
    """What a notice about `changes` shows, as a short key: it changes when
    one of them changes state or expiry, or once its expiry is told, and
    with nothing else (a note)."""
    items = sorted((c.id, c.state, _iso(c.expires_at), expiry_told(c)) for c in changes)
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()


def remember(
    engine: Engine,
    posted: Posted,
    *,
    phase: str,
    changes: Sequence[ChangeView],
    batch_id: int | None,
    now: datetime,
) -> int:
    """Record a TTL notice just posted about `changes` (rendered as they
    are here); its id."""
    notice = TTLNotice(
        change_id=changes[0].id if batch_id is None else None,
        batch_id=batch_id,
        phase=phase,
        channel=posted.channel,
        ts=posted.ts,
        posted_at=now,
        about={str(c.id): snapshot(c) for c in changes},
        shown=digest(changes),
    )
    with session_scope(engine) as s:
        s.add(notice)
        s.flush()
        assert notice.id is not None
        return notice.id


def behind(engine: Engine, notice_id: int) -> bool:
    """Whether a change of the notice moved since it was rendered: a move
    that landed between the render and `remember` had its sync already."""
    with session_scope(engine) as s:
        notice = s.get(TTLNotice, notice_id)
        if notice is None:
            return False
        return digest(_changes(s, notice)) != notice.shown


def _changes(s: Session, notice: TTLNotice) -> list[ChangeView]:
    return [
        ChangeView.of(get_change(s, int(key)), events_of(s, int(key)))
        for key in sorted(notice.about, key=int)
    ]


# --- what became of each change ----------------------------------------------------


def outcome_of(seen: Mapping[str, Any], change: ChangeView) -> Outcome:
    """What became of `change` since a notice showed it as `seen` (pure)."""
    if change.state != seen.get("state"):
        what = change.state if change.state in _TOLD else "now"
        return Outcome(change, what, by=_who_moved_it(change))
    if _iso(change.expires_at) != seen.get("expires_at"):
        return Outcome(change, "extended", by=_who_extended(change), until=change.expires_at)
    if expiry_told(change) and not seen.get("expired"):
        return Outcome(change, "expired")
    return Outcome(change, "unchanged")


def _who(details: Mapping[str, Any], actor: str) -> str:
    # The thread names who asked, not the bot (or approver) that did it.
    asked = details.get("asked_by")
    return str(asked) if asked else actor


def _who_moved_it(change: ChangeView) -> str | None:
    moves = [e for e in change.events if e.to_state == change.state]
    return _who(moves[-1].details, moves[-1].actor) if moves else None


def _who_extended(change: ChangeView) -> str | None:
    extensions = [e for e in change.events if e.kind == "extended"]
    return _who(extensions[-1].details, extensions[-1].actor) if extensions else None


# --- bringing notices up to date -------------------------------------------------


class TTLNoticeFollower:
    def __init__(
        self,
        engine: Engine,
        client: WebClient,
        renderer: SlackRenderer,
        *,
        demo: bool,
        start_after_restore: bool = True,
    ) -> None:
        self.engine, self.client, self.renderer, self.demo = engine, client, renderer, demo
        # For a reminder drawn again once overdue: its Roll back's confirm.
        self.start_after_restore = start_after_restore

    def __repr__(self) -> str:
        return f"TTLNoticeFollower(demo={self.demo})"

    def follow(self, change_id: int) -> None:
        """Bring every TTL notice about the change (or its wave) up to date.
        Raises what Slack answered when it may answer otherwise later (the
        outbox tries the sync again); a notice gone for good is left."""
        for notice_id in self._notices_about(change_id):
            self._bring_up_to_date(notice_id)

    def _notices_about(self, change_id: int) -> list[int]:
        with session_scope(self.engine) as s:
            batch_id = get_change(s, change_id).batch_id
            about = col(TTLNotice.change_id) == change_id
            if batch_id is not None:
                about = or_(about, col(TTLNotice.batch_id) == batch_id)
            found = s.exec(select(TTLNotice.id).where(about).order_by(col(TTLNotice.id))).all()
        return [i for i in found if i is not None]

    def _bring_up_to_date(self, notice_id: int) -> None:
        for _ in range(_TRIES):
            with session_scope(self.engine) as s:
                notice = s.get(TTLNotice, notice_id, populate_existing=True)
                assert notice is not None
                changes = _changes(s, notice)
            was, now = notice.shown, digest(changes)
            if now == was:
                return
            outcomes = [outcome_of(notice.about[str(c.id)], c) for c in changes]
            if all(o.what == "unchanged" for o in outcomes):
                # Nothing it shows moved (a notice remembered before its key
                # covered the expiry): the key is brought up to date, no post.
                self._swap(notice_id, was, now)
                return
            payload = self._payload(notice, changes, outcomes)
            if not self._swap(notice_id, was, now):
                continue  # another process told a move first: read again
            self._update(notice, payload, was, now)
            return

    def _payload(
        self, notice: TTLNotice, changes: Sequence[ChangeView], outcomes: Sequence[Outcome]
    ) -> dict[str, Any]:
        if all(o.what in ("expired", "unchanged") for o in outcomes):
            return self._overdue(notice, changes)
        ref = batch_ref(notice.batch_id) if notice.batch_id is not None else changes[0].ref
        return self.renderer.payload(
            "ttl_notice_settled",
            demo=self.demo,
            ref=ref,
            phase=notice.phase,
            outcomes=outcomes,
            wave=notice.batch_id is not None,
        )

    def _overdue(self, notice: TTLNotice, changes: Sequence[ChangeView]) -> dict[str, Any]:
        """A reminder whose checkpoints expired undecided, drawn again: it
        says so, with its buttons (still theirs: nothing was decided)."""
        if notice.batch_id is None:
            return self.renderer.payload(
                "ttl_notice",
                demo=self.demo,
                c=changes[0],
                phase="overdue",
                left="",
                start_after_restore=self.start_after_restore,
            )
        with session_scope(self.engine) as s:
            wave = load_batch(s, notice.batch_id)
        return self.renderer.payload(
            "batch_ttl_notice", demo=self.demo, b=wave, held=changes, phase="overdue", left=""
        )

    def _update(self, notice: TTLNotice, payload: dict[str, Any], was: str, now: str) -> None:
        from slack_sdk.errors import SlackApiError

        try:
            self.client.chat_update(channel=notice.channel, ts=notice.ts, **payload)
        except SlackApiError as exc:
            error = str(exc.response.get("error", ""))
            if error in _FOR_GOOD:
                log.info("TTL notice %s cannot be updated (%s); left as it is", notice.id, error)
                return
            self._swap(notice.id or 0, now, was)  # not shown: the next sync tries again
            raise

    def _swap(self, notice_id: int, was: str, now: str) -> bool:
        """Set `shown` to `now` where it still says `was`."""
        with session_scope(self.engine) as s:
            result = s.execute(
                update(TTLNotice)
                .where(col(TTLNotice.id) == notice_id, col(TTLNotice.shown) == was)
                .values(shown=now)
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]
