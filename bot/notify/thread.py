"""One Slack thread per change: the root message shows the change as it is
now (updated in place), and every event of its record becomes one reply.

Idempotent and safe to call from any process at any time: the root and each
reply are claimed with a conditional update before they are posted, so two
syncs racing never post the same thing twice. A failed post releases its
claim, and the next sync tries again.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import col

from bot.changes import State
from bot.changes.pending import pending_approvals
from bot.changes.record import events_of, get_change
from bot.changes.views import ChangeView, EventView
from bot.notify.pacing import ChannelPacer
from bot.store.db import session_scope
from bot.store.models import Change, ChangeEvent, Job, change_ref
from templates.blocks import SlackRenderer

log = logging.getLogger(__name__)

_POSTING = "posting:"
# A claim older than this belongs to a process that died mid-post: retake it.
# (Slack answers a post within seconds; the retry handlers wait at most ~30 s.)
_STALE_CLAIM_SECONDS = 120.0
# Progress replies of the most recent jobs whose ts this process keeps.
_PROGRESS_REMEMBERED = 1000


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
    ) -> None:
        self.engine, self.client, self.renderer = engine, client, renderer
        self.default_channel = default_channel
        self.demo, self.start_after_restore = demo, start_after_restore
        self.pacer = pacer or ChannelPacer()
        # One worker keeps a channel's replies in order; posting is paced anyway.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slack-thread")
        self._queued: set[int] = set()
        self._lock = threading.Lock()
        # job id → the ts of its progress reply; only the process running a
        # job reports its progress, so memory is the right place.
        self._progress_ts: dict[int, str] = {}

    def changed(self, change_id: int) -> None:
        """Sync in the background: the caller (a Slack ack's follow-up, a
        job step) must not wait behind paced posts. Requests for a change
        already queued are folded into the one pending sync."""
        with self._lock:
            if change_id in self._queued:
                return
            self._queued.add(change_id)
        self._pool.submit(self._background_sync, change_id)

    def progress(self, job_id: int, message: str) -> None:
        self._pool.submit(self._background_progress, job_id, message)

    def _background_progress(self, job_id: int, message: str) -> None:
        try:
            self._show_progress(job_id, message)
        except Exception:
            log.warning("could not show the progress of job %s", job_id, exc_info=True)

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
        ts = self._progress_ts.get(job_id)
        if ts is not None:
            self.client.chat_update(channel=channel, ts=ts, **payload)
            return
        self.pacer.wait(channel)
        answer = self.client.chat_postMessage(channel=channel, thread_ts=thread_ts, **payload)
        self._progress_ts[job_id] = str(answer["ts"])
        while len(self._progress_ts) > _PROGRESS_REMEMBERED:
            del self._progress_ts[next(iter(self._progress_ts))]

    def flush(self, timeout: float = 30.0) -> None:
        """Wait for queued syncs (a CLI process about to exit)."""
        done = threading.Event()
        self._pool.submit(done.set)
        done.wait(timeout)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)

    def _background_sync(self, change_id: int) -> None:
        with self._lock:
            self._queued.discard(change_id)
        try:
            self.sync(change_id)
        except Exception:
            # The change itself is recorded; its thread catches up on the next sync.
            log.exception("could not update the Slack thread of %s", change_ref(change_id))

    def sync(self, change_id: int) -> None:
        with session_scope(self.engine) as s:
            change = get_change(s, change_id)
            events = events_of(s, change_id)
        channel = change.channel or self.default_channel
        # A refusal is told to the requester alone (ephemeral); no thread for it.
        if channel is None or (change.state == State.DENIED and change.thread_ts is None):
            return
        view = ChangeView.of(change, events)
        root = self.renderer.payload(
            "change_root",
            demo=self.demo,
            c=view,
            pending=pending_approvals(self.engine, view),
            start_after_restore=self.start_after_restore,
        )
        thread_ts = change.thread_ts
        if thread_ts is None or _stale(thread_ts):
            thread_ts = self._post_root(change_id, channel, root, thread_ts)
            if thread_ts is None:
                return
        elif thread_ts.startswith(_POSTING):
            return  # another process is posting the root; it posts the replies too
        else:
            self._update_root(channel, thread_ts, root)
        for event in events:
            if event.id is not None and (event.slack_ts is None or _stale(event.slack_ts)):
                self._post_event(
                    event.id, channel, thread_ts, view, EventView.of(event), event.slack_ts
                )

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
    ) -> None:
        token = _claim_token()
        if not self._claim(
            ChangeEvent, ChangeEvent.id, event_id, ChangeEvent.slack_ts, seen, token
        ):
            return
        payload = self.renderer.payload("change_event", demo=self.demo, c=view, e=event)
        try:
            self.pacer.wait(channel)
            answer = self.client.chat_postMessage(channel=channel, thread_ts=thread_ts, **payload)
        except SlackApiError:
            self._claim(ChangeEvent, ChangeEvent.id, event_id, ChangeEvent.slack_ts, token, None)
            raise
        self._claim(
            ChangeEvent, ChangeEvent.id, event_id, ChangeEvent.slack_ts, token, str(answer["ts"])
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
