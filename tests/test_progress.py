"""Long host work shows progress in its thread: one reply, updated in
place while the work goes on, and an outcome that says how long it took."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.clock import ScaledClock
from bot.context import AppContext
from bot.notify import ChannelPacer, ThreadNotifier
from bot.service import request_checkpoint, show_change
from bot.service.execution import HostJobs
from bot.store.db import session_scope
from bot.store.models import Change
from tests.helpers import T0, inline_context, settings_for
from tests.slack_support import BOT_TOKEN, FakeSlackApi

CHANNEL = "C0OPS"


class SlowCreates:
    """A host whose checkpoints take `seconds` of real time, as production
    checkpoints of a busy guest do."""

    def __init__(self, host: Any, seconds: float) -> None:
        self._host, self._seconds = host, seconds

    def create_checkpoint(self, vm_id: str, name: str) -> Any:
        time.sleep(self._seconds)
        return self._host.create_checkpoint(vm_id, name)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._host, name)


@pytest.fixture
def slack_ctx(tmp_path: Path) -> Iterator[tuple[AppContext, FakeSlackApi]]:
    with FakeSlackApi() as api:
        env = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_API_URL": api.api_url}
        # Jobs run inline, on a clock at real speed: the slow create takes its second.
        ctx = inline_context(settings_for(tmp_path), ScaledClock(1, start=T0), env)
        assert isinstance(ctx.notifier, ThreadNotifier)
        ctx.notifier.pacer = ChannelPacer(rate=1000.0, burst=1000)
        host_jobs = ctx.runner.handlers["create"].__self__  # type: ignore[attr-defined]
        assert isinstance(host_jobs, HostJobs)
        host_jobs.progress_seconds = 0.15
        ctx.host_for.wrap(lambda _name, host: SlowCreates(host, 1.0))  # type: ignore[arg-type,return-value]
        try:
            yield ctx, api
        finally:
            ctx.close()


def test_a_slow_checkpoint_reports_progress_in_one_updated_reply(
    slack_ctx: tuple[AppContext, FakeSlackApi],
) -> None:
    ctx, api = slack_ctx
    out = request_checkpoint(
        ctx, "WEB01", reason="KB5044284", requester="U0ALICE", channel=CHANNEL, source="slack"
    )
    assert out.job_id is not None and ctx.ledger.get(out.job_id).state == "succeeded"
    change = show_change(ctx, out.change.ref)
    assert change.state == "active"
    assert re.search(r"taken in \d+s$", change.events[-1].message), change.events[-1].message

    def taken_posted(calls: list[Any]) -> bool:
        return any(
            c.method == "chat.postMessage" and "taken in" in str(c.body.get("text")) for c in calls
        )

    api.wait_for(taken_posted)
    posts = api.of("chat.postMessage")
    with session_scope(ctx.engine) as s:
        root_ts = s.get(Change, change.id).thread_ts  # type: ignore[union-attr]
    progress = [p for p in posts if "so far" in str(p.body.get("text"))]
    assert len(progress) == 1, [p.body.get("text") for p in posts]
    assert progress[0].body["thread_ts"] == root_ts
    assert "taking a production checkpoint of WEB01" in str(progress[0].body["text"])
    updates = [u for u in api.of("chat.update") if "so far" in str(u.body.get("text"))]
    assert updates, "the progress reply is updated while the checkpoint is taken"
    # Every update edits that one reply, never the root, and the last says how it ended.
    assert len({u.body["ts"] for u in updates}) == 1
    assert updates[0].body["ts"] != root_ts

    def ended(calls: list[Any]) -> bool:
        return any(c.method == "chat.update" and "ended after" in str(c.body) for c in calls)

    api.wait_for(ended)

    # Once the work ended, the reply is closed: its last edit shows ✅, no ⏳.
    reply_ts = updates[0].body["ts"]

    def closed(calls: list[Any]) -> bool:
        edits = [c for c in calls if c.method == "chat.update" and c.body.get("ts") == reply_ts]
        return bool(edits) and ":white_check_mark:" in json.dumps(edits[-1].body)

    api.wait_for(closed)
    last = [c for c in api.of("chat.update") if c.body.get("ts") == reply_ts][-1]
    assert ":hourglass_flowing_sand:" not in json.dumps(last.body)
