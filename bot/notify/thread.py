"""One Slack thread per change: the root message shows the change as it is
now (updated in place), and every event of its record becomes one reply.

Idempotent and safe to call from any process at any time: the root and each
reply are claimed with a conditional update before they are posted, so two
syncs racing never post the same thing twice. A failed post releases its
claim, and the next sync tries again.

What to sync comes from the Slack outbox (`bot.notify.outbox`), written
with every change of the record: `changed()` drains the change's entries
at once, and `start_draining()` drains every due entry on a timer, so a
restarted process (or another replica) posts what a dead one did not.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.changes import State
from bot.changes.batch_load import load_batch
from bot.changes.batch_milestones import FINISHED, REJECTED, note_finished
from bot.changes.batch_record import get_batch
from bot.changes.batch_scheduled import SCHEDULED, note_scheduled
from bot.changes.batch_views import BatchEventView, BatchView
from bot.changes.lifecycle import IN_FLIGHT
from bot.changes.pending import pending_approvals
from bot.changes.record import events_of, get_change
from bot.changes.views import ChangeView, EventView
from bot.clock import real_seconds, system_clock
from bot.notify.approval_dms import ApprovalDMFollower
from bot.notify.approval_dms import remember as remember_dm
from bot.notify.channel import Posted
from bot.notify.homes import StaleHomes
from bot.notify.horizon import too_late_for_a_thread
from bot.notify.outbox import OutboxDrainer
from bot.notify.pacing import ChannelPacer
from bot.notify.replies import approvers_to_ping, worth_a_reply
from bot.notify.ttl_notices import TTLNoticeFollower
from bot.store.db import session_scope
from bot.store.outage_log import OutageLog, unreachable
from bot.store.tables import change_ref
from bot.store.tables.batches import Batch, BatchEvent
from bot.store.tables.changes import Change, ChangeEvent
from bot.store.tables.jobs import Job
from templates.blocks import SlackRenderer

log = logging.getLogger(__name__)

_POSTING = "posting:"
# What an event's slack_ts holds when it gets no reply of its own (the root
# card or another reply says it; bot/notify/replies.py): settled, not posted.
QUIET = "quiet"
# A claim older than this belongs to a process that died mid-post: retake it.
# (Slack answers a post within seconds; the retry handlers wait at most ~30 s.)
_STALE_CLAIM_SECONDS = 120.0
# Progress replies of the most recent jobs whose ts this process keeps.
_PROGRESS_REMEMBERED = 1000
# A wave's root waits until its create has recorded every member
# (`members_recorded`): its fallback text is what notifications show, fixed
# when posted, and posted after its first member it said "refused — 1 VMs"
# of a wave that was not. A wave older than this (real time) without that
# event lost the process recording it: its root is posted with what was
# recorded. Longer than recording a large wave takes when hosts answer the
# policy slowly; far shorter than the outbox keeps trying (about 1.5 h).
WAVE_HOLD = timedelta(minutes=30)

# A wave's own milestones that are a reply in its thread (batch_event.kind);
# the rest of its history (requested, members recorded) the card says.
MILESTONES = frozenset(
    {
        "create_awaits_approval",
        "rollback_awaits_approval",
        "merge_awaits_approval",
        "approved",
        "rollback_started",
        "merge_started",
        "rollback_refused",
        "merge_refused",
        "withdrawn",
        # The end of the wave's create, Roll back all or Keep & merge all:
        # "8 of 8 taken" (bot/changes/batch_milestones.py).
        *FINISHED.values(),
        # The members that wait for their window or time, and until when
        # (bot/changes/batch_scheduled.py).
        SCHEDULED,
        # A member's request an approver rejected: who, and why
        # (bot/changes/batch_milestones.py `note_rejected`).
        REJECTED,
    }
)


# A member's own request that waits for approvers (asked for that VM alone,
# not with the wave: the wave's asks its approvers in a reply of its own).
_ASKED_ALONE = frozenset(
    {"rollback_awaits_approval", "merge_awaits_approval", "extend_awaits_approval"}
)


def _matters(event: ChangeEvent) -> bool:
    """Of a batch member's events, what its batch's thread tells: a step
    that failed, and a request of that member alone that waits for
    approvers, whose "Approval needed" reply pings them (a member has no
    thread of its own); its card line says the rest."""
    if event.kind in _ASKED_ALONE:
        # Records written before the marker say the wave in their words
        # ("rollback of BAT-0001 by …"): never ping those again.
        with_wave = (event.details or {}).get("wave") or " of BAT-" in event.message[:24]
        return not with_wave
    return event.kind.endswith("failed") or event.kind == "interrupt"


def _claim_token() -> str:
    return f"{_POSTING}{time.time():.0f}:{uuid.uuid4().hex}"


def _stale(value: str | None) -> bool:
    if value is None or not value.startswith(_POSTING):
        return False
    try:
        since = float(value[len(_POSTING) :].split(":", 1)[0])
    except ValueError:
        return True
    return time.time() - since > _STALE_CLAIM_SECONDS


class ThreadNotifier:
    def __init__(
        self,
        engine: Engine,
        client: WebClient,
        renderer: SlackRenderer,
        *,
        default_channel: str | None,
        demo: bool,
        start_after_restore: bool,
        pacer: ChannelPacer | None = None,
        owner: str | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.engine, self.client, self.renderer = engine, client, renderer
        # The record's clock (the demo's may run fast): how old a change is.
        self.clock = clock or system_clock
        self.default_channel = default_channel
        self.demo, self.start_after_restore = demo, start_after_restore
        self.pacer = pacer or ChannelPacer()
        # One worker keeps a channel's replies in order; posting is paced anyway.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slack-thread")
        self._queued: set[int] = set()
        self._lock = threading.Lock()
        # job id → its progress reply (ts, change id, channel, last words);
        # only the process running a job reports its progress, so memory is
        # the right place.
        self._progress_ts: dict[int, tuple[str, int, str, str]] = {}
        # Told after every sync of a change (the App Home's refresher).
        self._listeners: list[Callable[[int], None]] = []
        # Where a process with no listener leaves the change for one that has.
        self.stale_homes = StaleHomes(engine)
        # The TTL reminders and expiry notices about a change, outside its
        # thread, follow it too (their buttons must not outlive a decision).
        self.ttl_notices = TTLNoticeFollower(
            engine, client, renderer, demo=demo, start_after_restore=start_after_restore
        )
        # The approval DMs too: once their request is settled they say so.
        self.approval_dms = ApprovalDMFollower(engine, client, renderer, demo=demo)
        self.outbox = OutboxDrainer(engine, self.sync, owner or f"notifier-{uuid.uuid4().hex[:12]}")
        self._draining = False
        self._timer_stop = threading.Event()
        # The database not answering, told once and then once a minute.
        self.outages = OutageLog(log, "Slack notifier")
        self._timer: threading.Thread | None = None

    def changed(self, change_id: int) -> None:
        """Sync in the background: the caller (a Slack ack's follow-up, a
        job step) must not wait behind paced posts. Requests for a change
        already queued are folded into the one pending sync."""
        with self._lock:
            if change_id in self._queued:
                return
            self._queued.add(change_id)
        self._submit(self._background_sync, change_id)

    def listen(self, listener: Callable[[int], None]) -> None:
        """Call `listener(change_id)` after each sync of a change, on the
        notifier's worker (the App Home of everyone it concerns is
        re-published there). A failing listener is logged, never raised."""
        self._listeners.append(listener)

    def progress(self, job_id: int, message: str) -> None:
        self._submit(self._background_progress, job_id, message)

    def _submit(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            self._pool.submit(fn, *args)
        except RuntimeError:
            # Closed (the process is stopping) while work that commits changes
            # still runs: its outbox entries wait for the next process to drain.
            log.info("Slack notifier closed; the outbox keeps what was not posted")

    def _background_progress(self, job_id: int, message: str) -> None:
        try:
            self._show_progress(job_id, message)
        except Exception as exc:
            self._failed(exc, "could not show the progress of job %s", job_id)

    def _failed(self, exc: Exception, words: str, *args: object) -> None:
        """A failure of the notifier's background work. The database or
        queue not answering is told by the outage log: one line, then at
        most one a minute, the traceback only under -v (every tick would
        otherwise log fifty lines, in every process). Anything else, a bug
        or Slack's own error, with its traceback."""
        what = unreachable(exc)
        if what is None:
            log.warning(words, *args, exc_info=True)
            return
        self.outages.failed(what, exc, then="the Slack outbox keeps what is not posted yet")

    def _show_progress(self, job_id: int, message: str) -> None:
        with session_scope(self.engine) as s:
            job = s.get(Job, job_id)
            if job is None or job.change_id is None:
                return
            change = get_change(s, job.change_id)
        channel = change.channel or self.default_channel
        thread_ts = change.thread_ts
        if channel is None or thread_ts is None or thread_ts.startswith(_POSTING):
            return  # no thread yet: the outcome reply will tell the story
        payload = self.renderer.payload(
            "change_progress", demo=self.demo, c=ChangeView.of(change), message=message
        )
        known = self._progress_ts.get(job_id)
        if known is not None:
            self.client.chat_update(channel=channel, ts=known[0], **payload)
            self._progress_ts[job_id] = (known[0], change.id or 0, channel, message)
            return
        if change.state not in IN_FLIGHT:
            return  # the work ended already: its outcome reply tells it
        self.pacer.wait(channel)
        answer = self.client.chat_postMessage(channel=channel, thread_ts=thread_ts, **payload)
        self._progress_ts[job_id] = (str(answer["ts"]), change.id or 0, channel, message)
        while len(self._progress_ts) > _PROGRESS_REMEMBERED:
            del self._progress_ts[next(iter(self._progress_ts))]

    def drain(self) -> None:
        """Sync every change the outbox holds, in the background (folded
        into one pending drain)."""
        with self._lock:
            if self._draining:
                return
            self._draining = True
        self._submit(self._background_drain)

    def start_draining(self, interval: float) -> None:
        """Drain the outbox now and then every `interval` seconds until
        `close()`: what other processes recorded, and what failed before."""
        if self._timer is not None:
            return
        self._timer = threading.Thread(
            target=self._drain_every, args=(interval,), name="slack-outbox", daemon=True
        )
        self._timer.start()

    def _drain_every(self, interval: float) -> None:
        while not self._timer_stop.is_set():
            self.drain()
            self._timer_stop.wait(interval)

    def _background_drain(self) -> None:
        with self._lock:
            self._draining = False
        try:
            self.outbox.drain()
            self.outbox.prune()
        except Exception as exc:
            self._failed(exc, "could not drain the Slack outbox; tried again later")
        else:
            self.outages.answered()

    def flush(self, timeout: float = 30.0) -> None:
        """Wait for queued syncs (a CLI process about to exit)."""
        done = threading.Event()
        try:
            self._pool.submit(done.set)
        except RuntimeError:
            return  # closed already: nothing is queued any more
        done.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Post what is queued for up to `timeout` seconds, then finish the
        post in flight and stop: what is left stays in the outbox for the
        next process (a SIGTERM must not wait behind minutes of paced posts)."""
        self._timer_stop.set()
        self.flush(timeout)
        self.outbox.stop()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _background_sync(self, change_id: int) -> None:
        with self._lock:
            self._queued.discard(change_id)
        try:
            if self.outbox.drain_change(change_id) or self.outbox.has_pending(change_id):
                return
            # Nothing recorded since the last sync (a stale card was clicked):
            # bring the root up to date all the same; every post is claimed.
            self.sync(change_id)
        except Exception:
            # The change itself is recorded; its thread catches up on the next drain.
            log.exception("could not update the Slack thread of %s", change_ref(change_id))

    def _tell_listeners(self, change_id: int) -> None:
        if not self._listeners:
            # No Slack app in this process renders App Homes (a worker behind
            # `serve --no-worker`, a CLI command): leave the change for the
            # serving processes, which publish on their tick (bot/notify/homes.py).
            try:
                self.stale_homes.record(change_id)
            except Exception as exc:
                self._failed(exc, "could not record the App Homes of %s", change_ref(change_id))
            return
        for listener in self._listeners:
            try:
                listener(change_id)
            except Exception:
                log.warning("a listener of %s failed", change_ref(change_id), exc_info=True)

    def _close_progress(self, change_id: int, state: str) -> None:
        """Once a change's host work ended, its progress replies say so
        instead of showing ⏳ for ever (a merge's "merging the disk…")."""
        if state in IN_FLIGHT:
            return
        for job_id, (ts, owner, channel, message) in list(self._progress_ts.items()):
            if owner != change_id:
                continue
            with session_scope(self.engine) as s:
                change = get_change(s, change_id)
            payload = self.renderer.payload(
                "change_progress", c=ChangeView.of(change), message=message, done=True
            )
            self.client.chat_update(channel=channel, ts=ts, **payload)
            self._progress_ts.pop(job_id, None)

    def sync(self, change_id: int) -> bool:
        """Post and update what the change's record implies; True when its
        thread is complete, False when a post is claimed elsewhere or held back
        (a wave still recording its members) for now.
        Its TTL notices and approval DMs follow (after the thread: a failed
        update of one raises, and the outbox tries the whole sync again,
        claimed posts once)."""
        complete = self._sync_thread(change_id)
        self.ttl_notices.follow(change_id)
        self.approval_dms.follow(change_id, self.default_channel)
        return complete

    def _sync_thread(self, change_id: int) -> bool:
        with session_scope(self.engine) as s:
            change = get_change(s, change_id)
            events = events_of(s, change_id)
        channel = change.channel or self.default_channel
        if channel is not None and too_late_for_a_thread(change, self.clock()):
            log.info(
                "%s was %s at %s, before any process could post it to Slack: no thread is "
                "opened for it now (its record keeps it)",
                change_ref(change_id),
                change.state,
                f"{change.updated_at:%Y-%m-%d %H:%M} UTC",
            )
            return True
        if channel is not None and change.batch_id is not None:
            complete = self._sync_member(change.batch_id, channel)
            # A member's Homes follow it as a lone change's do (#17): the
            # requester's "Your open changes", an approver's Approve all.
            self._tell_listeners(change_id)
            return complete
        # A refusal is told to the requester alone (ephemeral); no thread for it.
        if channel is None or (change.state == State.DENIED and change.thread_ts is None):
            return True
        view = ChangeView.of(change, events)
        pending = pending_approvals(self.engine, view)
        root = self.renderer.payload(
            "change_root",
            demo=self.demo,
            c=view,
            pending=pending,
            start_after_restore=self.start_after_restore,
        )
        thread_ts = change.thread_ts
        if thread_ts is None or _stale(thread_ts):
            # Posted without naming the approvers (a new message notifies its
            # mentions; the "Approval needed" reply is their one ping), then
            # edited at once into the full card.
            first = self.renderer.payload(
                "change_root",
                demo=self.demo,
                c=view,
                pending=pending,
                start_after_restore=self.start_after_restore,
                first_post=True,
            )
            thread_ts = self._post_root(change_id, channel, first, thread_ts)
            if thread_ts is None:
                return False
            if first != root:
                self._update_root(channel, thread_ts, root)
        elif thread_ts.startswith(_POSTING):
            return False  # another process is posting the root; it posts the replies too
        else:
            self._update_root(channel, thread_ts, root)
        self._close_progress(change_id, change.state)
        complete = True
        seen = [EventView.of(e) for e in events]
        for event, shown in zip(events, seen, strict=True):
            if event.id is None:
                continue
            if event.slack_ts is None or _stale(event.slack_ts):
                if not worth_a_reply(shown, seen):
                    self._claim(
                        ChangeEvent,
                        ChangeEvent.id,
                        event.id,
                        ChangeEvent.slack_ts,
                        event.slack_ts,
                        QUIET,
                    )
                    continue
                posted = self._post_event(event.id, channel, thread_ts, view, shown, event.slack_ts)
                complete = complete and posted
            elif event.slack_ts.startswith(_POSTING):
                complete = False  # being posted by another process
        # Whichever way the sync came (a commit here, the outbox's timer),
        # the views beyond the thread follow it (the App Homes).
        self._tell_listeners(change_id)
        return complete

    def _sync_member(self, batch_id: int, channel: str) -> bool:
        """A batch member posts no root of its own: the batch has one thread
        whose root is its compact card, brought up to date with every
        member's step, and only what matters of a member (a failure) is a
        reply there (docs/batches.md, "In Slack"). When this member was
        the last of the wave's action on its way, the action's end is
        recorded first (once, whichever process notices) and posted with the
        other milestones; so are the members that wait for their time. The
        root is first posted once the wave's create has recorded every
        member (`WAVE_HOLD`); until then this returns False."""
        with session_scope(self.engine) as s:
            note_finished(s, batch_id)
        with session_scope(self.engine) as s:
            note_scheduled(s, batch_id, now=self.clock())
        with session_scope(self.engine) as s:
            batch = load_batch(s, batch_id)
            seen = get_batch(s, batch_id).thread_ts
        if seen is None and self._recording(batch):
            # Not posted yet and still being recorded: the outbox keeps this
            # member's entries and comes back (at once, when the create's
            # last step tells the notifier, bot.service.batches `retell`).
            return False
        root = self.renderer.payload(
            "batch_card",
            demo=self.demo,
            b=batch,
            start_after_restore=self.start_after_restore,
        )
        thread_ts = seen
        if thread_ts is None or _stale(thread_ts):
            thread_ts = self._claimed_post(
                Batch, Batch.id, batch_id, Batch.thread_ts, channel, root, seen
            )
            if thread_ts is None:
                return False
        elif thread_ts.startswith(_POSTING):
            return False  # another process is posting the root
        else:
            self._update_root(channel, thread_ts, root)
        complete = True
        for member, event in self._member_failures(batch):
            if event.id is None:
                continue
            if event.slack_ts is None or _stale(event.slack_ts):
                posted = self._post_event(
                    event.id, channel, thread_ts, member, EventView.of(event), event.slack_ts
                )
                complete = complete and posted
            elif event.slack_ts.startswith(_POSTING):
                complete = False
        if not complete:
            # A failure is being posted elsewhere: the wave's end, which
            # names it, waits for it (the outbox comes back to this).
            return False
        return self._post_milestones(batch, channel, thread_ts)

    def _recording(self, batch: BatchView) -> bool:
        """Whether the wave's create is still recording its members (no
        `members_recorded` yet), within `WAVE_HOLD` of its opening."""
        if any(e.kind == "members_recorded" for e in batch.events):
            return False
        age = real_seconds(self.clock, self.clock() - batch.created_at)
        return age < WAVE_HOLD.total_seconds()

    def _member_failures(self, batch: BatchView) -> list[tuple[ChangeView, ChangeEvent]]:
        """What matters of every member (its failures), in the order they
        were recorded: whichever member's sync posts the wave's end, the
        failures it names are in the thread before it."""
        ids = [m.change_id for m in batch.members]
        with session_scope(self.engine) as s:
            changes = {
                c.id: ChangeView.of(c)
                for c in s.exec(select(Change).where(col(Change.id).in_(ids))).all()
            }
            rows = s.exec(
                select(ChangeEvent)
                .where(col(ChangeEvent.change_id).in_(ids))
                .order_by(col(ChangeEvent.id))
            ).all()
        return [(changes[e.change_id], e) for e in rows if _matters(e)]

    def _post_milestones(self, batch: BatchView, channel: str, thread_ts: str) -> bool:
        """Each milestone of the wave not yet in its thread, as a reply,
        each claimed on `batch_event.slack_ts` first so it is posted once
        across processes. True when none is left to post."""
        complete = True
        with session_scope(self.engine) as s:
            rows = s.exec(
                select(BatchEvent)
                .where(
                    col(BatchEvent.batch_id) == batch.id,
                    col(BatchEvent.kind).in_(sorted(MILESTONES)),
                )
                .order_by(col(BatchEvent.seq))
            ).all()
            pending = [(e.id, e.slack_ts, BatchEventView.of(e)) for e in rows]
        for event_id, seen, shown in pending:
            assert event_id is not None
            if seen is not None and not _stale(seen):
                complete = complete and not seen.startswith(_POSTING)
                continue
            token = _claim_token()
            if not self._claim(
                BatchEvent, BatchEvent.id, event_id, BatchEvent.slack_ts, seen, token
            ):
                complete = False
                continue
            payload = self.renderer.payload("batch_event", b=batch, e=shown)
            try:
                self.pacer.wait(channel)
                answer = self.client.chat_postMessage(
                    channel=channel, thread_ts=thread_ts, **payload
                )
            except SlackApiError:
                self._claim(BatchEvent, BatchEvent.id, event_id, BatchEvent.slack_ts, token, None)
                raise
            self._claim(
                BatchEvent, BatchEvent.id, event_id, BatchEvent.slack_ts, token, str(answer["ts"])
            )
        return complete

    def _claimed_post(
        self,
        table: Any,
        key: Any,
        row_id: int,
        column: Any,
        channel: str,
        payload: dict[str, Any],
        seen: str | None,
    ) -> str | None:
        """Post a thread's root once: claimed on `column` before the post."""
        token = _claim_token()
        if not self._claim(table, key, row_id, column, seen, token):
            return None
        try:
            self.pacer.wait(channel)
            answer = self.client.chat_postMessage(channel=channel, **payload)
        except SlackApiError:
            self._claim(table, key, row_id, column, token, None)
            raise
        ts = str(answer["ts"])
        self._claim(table, key, row_id, column, token, ts)
        return ts

    def _post_root(
        self, change_id: int, channel: str, payload: dict[str, Any], seen: str | None
    ) -> str | None:
        token = _claim_token()
        if not self._claim(Change, Change.id, change_id, Change.thread_ts, seen, token):
            return None
        try:
            self.pacer.wait(channel)
            answer = self.client.chat_postMessage(channel=channel, **payload)
        except SlackApiError:
            self._claim(Change, Change.id, change_id, Change.thread_ts, token, None)
            raise
        ts = str(answer["ts"])
        self._claim(Change, Change.id, change_id, Change.thread_ts, token, ts)
        return ts

    def _update_root(self, channel: str, ts: str, payload: dict[str, Any]) -> None:
        self.client.chat_update(channel=channel, ts=ts, **payload)

    def _post_event(
        self,
        event_id: int,
        channel: str,
        thread_ts: str,
        view: ChangeView,
        event: EventView,
        seen: str | None,
    ) -> bool:
        token = _claim_token()
        if not self._claim(
            ChangeEvent, ChangeEvent.id, event_id, ChangeEvent.slack_ts, seen, token
        ):
            return False
        # No demo footer: the root carries it, once per thread.
        payload = self.renderer.payload("change_event", c=view, e=event)
        try:
            self.pacer.wait(channel)
            answer = self.client.chat_postMessage(channel=channel, thread_ts=thread_ts, **payload)
        except SlackApiError:
            self._claim(ChangeEvent, ChangeEvent.id, event_id, ChangeEvent.slack_ts, token, None)
            raise
        self._claim(
            ChangeEvent, ChangeEvent.id, event_id, ChangeEvent.slack_ts, token, str(answer["ts"])
        )
        self._direct_pings(channel, view, event)
        return True

    def _direct_pings(self, channel: str, view: ChangeView, event: EventView) -> None:
        """An approval asked where the policy says `dm: true`: each listed
        approver also gets a direct message. Sent once, with the reply it
        follows (whose claim is taken); a failed one is logged, not retried.
        Each one posted is remembered, so it follows its request once settled."""
        for user in approvers_to_ping(event):
            payload = self.renderer.payload(
                "approval_dm", c=view, e=event, channel=channel, demo=self.demo
            )
            try:
                self.pacer.wait(user)
                answer = self.client.chat_postMessage(channel=user, **payload)
            except SlackApiError:
                log.warning("could not message %s about %s", user, view.ref, exc_info=True)
                continue
            landed = Posted(str(answer.get("channel") or user), str(answer["ts"]))
            remember_dm(
                self.engine, landed, event=event, change_id=view.id, user=user, now=self.clock()
            )

    def _claim(
        self, table: Any, key: Any, row_id: int, column: Any, expect: str | None, value: str | None
    ) -> bool:
        """Set `column` to `value` where it still holds `expect`: the one
        write an event row ever gets after it was appended (its reply's ts)."""
        condition = col(column).is_(None) if expect is None else col(column) == expect
        with session_scope(self.engine) as s:
            result = s.execute(
                update(table).where(col(key) == row_id, condition).values({column.key: value})
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]
