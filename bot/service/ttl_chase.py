"""TTL chasing: every checkpoint is followed to its end.

Before expiry, at each of the ttl rule's `remind_before` points, the
requester (by DM) and the thread are reminded, with the buttons that decide
it. At expiry the change's channel is told. Where the VM's scope allows it
(`auto_merge`), a checkpoint nobody decided on is kept & merged
`auto_merge_grace` after it expired, through the same policy and job path as
a person's click. Nothing ever rolls back on its own.

Every notice is claimed by `(kind, slot)` with the expiry in the slot, so
each goes out once across replicas, and an extension (a new expiry) starts
the reminders afresh. `due_reminder` is pure.

A patch wave is chased as one thing (docs/batches.md "Lifetimes"): its
members' reminders and expiry notices are due when its soonest-expiring
member's are, claimed once for the batch, noted on every member, and told
in ONE message for the wave (`batch_ttl_notice`). Automatic merges stay
per member: each VM's scope decides its own.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlmodel import col, select

from bot.changes.batch_load import load_batch
from bot.changes.lifecycle import State
from bot.changes.record import events_of, get_change, note, recording
from bot.changes.views import HOST_SAID, ChangeView
from bot.domain import BOT_ACTOR
from bot.durations import format_duration
from bot.notify import ttl_notices
from bot.notify.channel import Posted
from bot.service import vanished
from bot.service.deciding import Principal
from bot.service.errors import ServiceError
from bot.store.db import session_scope
from bot.store.tables import batch_ref
from bot.store.tables.batches import Batch
from bot.store.tables.changes import Change
from policies import Facts
from policies.rules.lifetime import TTLParams

if TYPE_CHECKING:
    from bot.service.deps import ServiceDeps

log = logging.getLogger(__name__)

ACTOR = BOT_ACTOR
# Chased: a checkpoint exists and nobody is working on it.
_CHASED = (State.ACTIVE.value, State.ROLLED_BACK.value)
_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")


def due_reminder(
    expires_at: datetime, ttl: timedelta, points: Sequence[timedelta], now: datetime
) -> timedelta | None:
    """The reminder point due at `now`: the one closest to expiry that has
    been reached. Points longer than the checkpoint's whole life are moot (a
    1-hour checkpoint needs no "expires in 24 hours")."""
    if now >= expires_at:
        return None
    reached = [p for p in points if p < ttl and now >= expires_at - p]
    return min(reached) if reached else None


def ttl_params(ctx: ServiceDeps, change: ChangeView) -> tuple[TTLParams, bool]:
    """The ttl rule's settings for the change's VM, and whether its scope
    was decided (auto-merge needs it; reminders fall back to the base)."""
    try:
        facts = ctx.decider.inventory_facts(ctx.inventory.vm_by_id(change.vm_id))
    except LookupError:
        # Gone from the inventory: still chased, by the base settings,
        # and never merged automatically (its scope cannot be told).
        facts, gone = Facts(), True
    else:
        gone = False
    rule, decided = ctx.policy.rule_settings("ttl", facts)
    assert isinstance(rule.params, TTLParams)
    return rule.params, decided and not gone


def auto_merge_at(ctx: ServiceDeps, change: ChangeView) -> datetime | None:
    """When the chase asks for `change`'s keep & merge on its own (the ttl
    rule's `auto_merge`, its scope decided: its expiry plus
    `auto_merge_grace`); None when it never does, or the change has no
    expiry. The merge itself then goes through the policy as anyone's."""
    if change.expires_at is None:
        return None
    params, decided = ttl_params(ctx, change)
    if not (params.auto_merge and decided):
        return None
    return change.expires_at + params.auto_merge_grace


def auto_merge_words(left: timedelta) -> str:
    """What the chase will do `left` from now, as its expiry notice says it."""
    return (
        f"it is kept & merged automatically in {format_duration(left)} unless someone decides first"
    )


class TTLChaser:
    name = "ttl_chase"

    def __init__(self, ctx: ServiceDeps) -> None:
        self.ctx = ctx

    def __repr__(self) -> str:
        return "TTLChaser()"

    def tick(self, now: datetime) -> None:
        with session_scope(self.ctx.engine) as s:
            rows = s.exec(
                select(Change)
                .where(col(Change.state).in_(_CHASED), col(Change.expires_at).is_not(None))
                .order_by(col(Change.id))
            ).all()
            changes = [ChangeView.of(c) for c in rows]
        waves: dict[int, list[ChangeView]] = {}
        for change in changes:
            if change.batch_id is not None:
                waves.setdefault(change.batch_id, []).append(change)
                continue
            try:
                self.chase(change, now)
            except Exception:
                log.exception("could not chase the TTL of %s", change.ref)
        for batch_id, members in waves.items():
            try:
                self.chase_wave(batch_id, members, now)
            except Exception:
                log.exception("could not chase the TTL of %s", batch_ref(batch_id))

    def params(self, change: ChangeView) -> tuple[TTLParams, bool]:
        return ttl_params(self.ctx, change)

    def chase(self, change: ChangeView, now: datetime) -> None:
        assert change.expires_at is not None
        params, decided = self.params(change)
        expiry = change.expires_at.isoformat(timespec="seconds")
        left = change.expires_at - now
        point = due_reminder(
            change.expires_at, timedelta(seconds=change.ttl_seconds), params.remind_before, now
        )
        if point is not None:
            slot = f"{change.id}:{expiry}:{int(point.total_seconds())}"
            if self.ctx.ticks.claim("ttl_reminder", slot) and not self._vanished(change):
                self._remind(change, left)
            return
        if left > timedelta(0):
            return
        if self.ctx.ticks.claim("ttl_expired", f"{change.id}:{expiry}"):
            if self._vanished(change):
                return
            self._expired(change, params, decided)
        self._auto_merge_if_due(change, now)

    def chase_wave(self, batch_id: int, members: list[ChangeView], now: datetime) -> None:
        """The members of one wave still holding a checkpoint: one reminder
        and one expiry notice for all of them, when the soonest-expiring
        member's is due (its expiry in the slot: an extension of that
        member starts the wave's reminders afresh)."""
        lead = min(members, key=lambda m: (m.expires_at or now, m.id))
        assert lead.expires_at is not None
        params, _ = self.params(lead)
        expiry = lead.expires_at.isoformat(timespec="seconds")
        left = lead.expires_at - now
        point = due_reminder(
            lead.expires_at, timedelta(seconds=lead.ttl_seconds), params.remind_before, now
        )
        ref = batch_ref(batch_id)
        if point is not None:
            slot = f"{ref}:{expiry}:{int(point.total_seconds())}"
            if self.ctx.ticks.claim("ttl_reminder", slot):
                held = [m for m in members if not self._vanished(m)]
                if held:
                    self._remind_wave(batch_id, held, left)
            return
        if left <= timedelta(0) and self.ctx.ticks.claim("ttl_expired", f"{ref}:{expiry}"):
            held = [m for m in members if not self._vanished(m)]
            if held:
                self._expired_wave(batch_id, held)
        for member in members:
            # Each member's own scope says whether it is merged on its own.
            if member.expires_at is not None and member.expires_at <= now:
                self._auto_merge_if_due(member, now)

    def _auto_merge_if_due(self, change: ChangeView, now: datetime) -> None:
        assert change.expires_at is not None
        due = auto_merge_at(self.ctx, change)
        expiry = change.expires_at.isoformat(timespec="seconds")
        if (
            due is not None
            and now >= due
            and self.ctx.ticks.claim("ttl_auto_merge", f"{change.id}:{expiry}")
        ):
            self._auto_merge(change)

    def _remind_wave(self, batch_id: int, members: list[ChangeView], left: timedelta) -> None:
        text = format_duration(left)
        ref = batch_ref(batch_id)
        for member in members:
            self._note(
                member,
                "ttl_reminder",
                f"{ref}'s checkpoints expire in {text}: keep & merge them, roll back, or "
                "extend (one reminder for the wave)",
            )
        requester = members[0].requester
        if _SLACK_USER.match(requester):
            self._post_wave(requester, batch_id, members, "reminder", text)

    def _expired_wave(self, batch_id: int, members: list[ChangeView]) -> None:
        then = "they stay until someone decides; none is rolled back on its own"
        for member in members:
            self._note(member, "ttl_expired", f"{batch_ref(batch_id)}'s TTL is over: {then}")
        with session_scope(self.ctx.engine) as s:
            batch = s.get(Batch, batch_id)
            own = batch.channel if batch is not None else None
        channel = own or self.ctx.settings.slack.changes_channel
        self._post_wave(channel, batch_id, members, "expired", then)

    def _post_wave(
        self,
        channel: str | None,
        batch_id: int,
        members: list[ChangeView],
        phase: str,
        left: str,
    ) -> None:
        if channel is None or not self.ctx.channels.enabled:
            return
        with session_scope(self.ctx.engine) as s:
            wave = load_batch(s, batch_id)
        held = [self._fresh(m) for m in members]
        posted = self.ctx.channels.post_message(
            channel, "batch_ttl_notice", b=wave, held=held, phase=phase, left=left
        )
        self._remember(posted, phase, held, batch_id)

    def _vanished(self, change: ChangeView) -> bool:
        """Nobody is reminded about a checkpoint that is no longer there:
        the host is asked first (only when a notice is due)."""
        return vanished.check(self.ctx, change, "found when its TTL reminder was due")

    # -- telling ----------------------------------------------------------------

    def _note(self, change: ChangeView, kind: str, message: str, said: str | None = None) -> None:
        # Its slot is claimed: a note lost to another writer's would never
        # be sent again. `said`: what an error said in it (HOST_SAID).
        details = {HOST_SAID: [said]} if said else None
        recording(
            self.ctx.engine,
            change.id,
            lambda s, current: note(
                s,
                current,
                kind=kind,
                actor=ACTOR,
                now=self.ctx.clock(),
                message=message,
                details=details,
            ),
        )
        self.ctx.notifier.changed(change.id)

    def _fresh(self, change: ChangeView) -> ChangeView:
        """The change as a notice shows it, with its events: whether its
        expiry was told is read from them (bot.notify.ttl_notices)."""
        with session_scope(self.ctx.engine) as s:
            return ChangeView.of(get_change(s, change.id), events_of(s, change.id))

    def _post(self, channel: str | None, change: ChangeView, phase: str, left: str) -> None:
        if channel is None or not self.ctx.channels.enabled:
            return
        shown = self._fresh(change)
        posted = self.ctx.channels.post_message(
            channel,
            "ttl_notice",
            c=shown,
            phase=phase,
            left=left,
            start_after_restore=self.ctx.settings.defaults.start_after_restore,
        )
        self._remember(posted, phase, [shown], None)

    def _remember(
        self, posted: Posted | None, phase: str, shown: list[ChangeView], batch_id: int | None
    ) -> None:
        """Keep where the notice landed, so that its buttons give way to what
        happened once the checkpoint is decided or extended (each sync of a
        change follows its notices, bot/notify/ttl_notices.py)."""
        if posted is None:
            return
        engine = self.ctx.engine
        notice = ttl_notices.remember(
            engine, posted, phase=phase, changes=shown, batch_id=batch_id, now=self.ctx.clock()
        )
        if ttl_notices.behind(engine, notice):
            # Decided while the notice was on its way: that sync did not know it.
            self.ctx.notifier.changed(shown[0].id)

    def _remind(self, change: ChangeView, left: timedelta) -> None:
        text = format_duration(left)
        self._note(
            change,
            "ttl_reminder",
            f"the checkpoint expires in {text}: keep & merge it, roll back, or extend",
        )
        if _SLACK_USER.match(change.requester):
            self._post(change.requester, change, "reminder", text)

    def _expired(self, change: ChangeView, params: TTLParams, decided: bool) -> None:
        automatic = params.auto_merge and decided
        then = (
            auto_merge_words(params.auto_merge_grace)
            if automatic
            else "it stays until someone decides; it is never rolled back on its own"
        )
        self._note(change, "ttl_expired", f"the checkpoint's TTL is over: {then}")
        channel = self._channel(change)
        self._post(channel, change, "expired", then)

    def _channel(self, change: ChangeView) -> str | None:
        with session_scope(self.ctx.engine) as s:
            row = s.get(Change, change.id)
            own = row.channel if row is not None else None
        return own or self.ctx.settings.slack.changes_channel

    def _auto_merge(self, change: ChangeView) -> None:
        # Imported here: the request use cases import this module's neighbours.
        from bot.service.requests import merge

        current = self._fresh(change)
        if current.state not in _CHASED or current.expires_at != change.expires_at:
            return  # someone decided (or extended) since this tick began
        try:
            outcome = merge(self.ctx, change.ref, requester=Principal(ACTOR))
        except ServiceError as exc:
            self._note(
                change,
                "auto_merge_failed",
                f"automatic keep & merge not started: {exc}",
                said=str(exc),
            )
            return
        if outcome.refused or outcome.waiting:
            log.info("auto-merge of %s: refused or waiting for approval", change.ref)
