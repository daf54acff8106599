"""The Slack thread of a change, against a local Web API that records every
call: one root, one reply per event in order, never twice."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from bot.clock import ScaledClock
from bot.config import SlackConfig
from bot.context import AppContext
from bot.notify import ChannelPacer, ThreadNotifier
from bot.notify.horizon import too_late_for_a_thread
from bot.notify.thread import QUIET
from bot.service import (
    approve,
    merge,
    outbox_status,
    request_checkpoint,
    rollback,
    show_change,
)
from bot.store.db import session_scope
from bot.store.models import Change, ChangeEvent
from tests.helpers import T0, inline_context, settings_for
from tests.slack_support import BOT_TOKEN, FakeSlackApi

CHANNEL = "C0OPS"


@pytest.fixture
def slack_ctx(tmp_path: Path) -> Iterator[tuple[AppContext, FakeSlackApi]]:
    with FakeSlackApi() as api:
        env = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_API_URL": api.api_url}
        # Jobs run inline; the Slack outbox still drains in the background,
        # as every process that talks to Slack drains it.
        ctx = inline_context(settings_for(tmp_path), env=env)
        assert isinstance(ctx.notifier, ThreadNotifier)
        ctx.notifier.pacer = ChannelPacer(rate=1000.0, burst=1000)
        ctx.start_slack_outbox()
        try:
            yield ctx, api
        finally:
            ctx.close()


def _thread(api: FakeSlackApi) -> tuple[str, list[str]]:
    posts = api.of("chat.postMessage")
    roots = [p for p in posts if "thread_ts" not in p.body]
    assert len(roots) == 1, [p.body.get("text") for p in roots]
    replies = [p for p in posts if p.body.get("thread_ts")]
    return roots[0].body["text"], [str(p.body.get("text")) for p in replies]


def test_a_change_tells_its_story_in_one_thread(slack_ctx: tuple[AppContext, FakeSlackApi]) -> None:
    ctx, api = slack_ctx
    out = request_checkpoint(
        ctx, "WEB01", reason="KB5044284", requester="U0ALICE", channel=CHANNEL, source="slack"
    )
    assert out.job_id is not None and ctx.ledger.get(out.job_id).state == "succeeded"
    rollback(ctx, out.change.ref, requester="U0ALICE")
    done = approve(ctx, out.change.ref, approver="U0BOB")
    assert done.job_id is not None and ctx.ledger.get(done.job_id).state == "succeeded"
    change = show_change(ctx, out.change.ref)

    def every_event_posted(_calls: object) -> bool:
        with session_scope(ctx.engine) as s:
            rows = s.exec(select(ChangeEvent).where(ChangeEvent.change_id == change.id)).all()
        return all(r.slack_ts and not r.slack_ts.startswith("posting") for r in rows)

    api.wait_for(every_event_posted)
    root_text, replies = _thread(api)
    assert "WEB01" in root_text
    # One reply per step that matters: the request is the root, the start of
    # host work is its progress, the approve transition is the approval's.
    said = [r.split(": ", 1)[1].split(" ", 1)[0] for r in replies]
    assert said == ["created", "approval", "approval", "rolled"], replies
    assert "approval needed to roll back" in replies[1]
    with session_scope(ctx.engine) as s:
        root_ts = s.get(Change, change.id).thread_ts  # type: ignore[union-attr]
    threads = {p.body["thread_ts"] for p in api.of("chat.postMessage") if p.body.get("thread_ts")}
    assert threads == {root_ts}
    # The root follows the change: its last update shows the final state.
    assert api.of("chat.update"), "the root message is updated in place"
    assert "rolled back" in str(api.of("chat.update")[-1].body).replace("_", " ")
    # Replies come in the record's order.
    with session_scope(ctx.engine) as s:
        stamps = [
            e.slack_ts
            for e in s.exec(
                select(ChangeEvent)
                .where(ChangeEvent.change_id == change.id)
                .order_by(ChangeEvent.seq)  # type: ignore[arg-type]
            )
            if e.slack_ts != QUIET
        ]
    assert len(stamps) == len(replies)
    assert stamps == sorted(stamps, key=lambda t: float(t or 0))


def test_racing_syncs_never_post_twice(slack_ctx: tuple[AppContext, FakeSlackApi]) -> None:
    ctx, api = slack_ctx
    out = request_checkpoint(
        ctx, "APP01", reason="deploy", requester="U0ALICE", channel=CHANNEL, source="slack"
    )
    assert out.job_id is not None and ctx.ledger.get(out.job_id).state == "succeeded"
    barrier = threading.Barrier(6)

    def sync() -> None:
        barrier.wait(timeout=10)
        ctx.notifier.changed(out.change.id)

    threads = [threading.Thread(target=sync) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert isinstance(ctx.notifier, ThreadNotifier)
    ctx.notifier.flush()
    _root, replies = _thread(api)
    with session_scope(ctx.engine) as s:
        posted = [
            e.slack_ts
            for e in s.exec(select(ChangeEvent).where(ChangeEvent.change_id == out.change.id))
            if e.slack_ts != QUIET
        ]
    assert len(replies) == len(posted) == len(set(posted)) >= 1


@pytest.mark.parametrize(
    ("slack_from", "merged_posted"), [(timedelta(hours=2), True), (timedelta(days=2), False)]
)
def test_a_change_settled_long_before_slack_could_be_told_opens_no_thread(
    tmp_path: Path, slack_from: timedelta, merged_posted: bool
) -> None:
    """A deployment that ran without Slack (or lost it for longer than
    UNPOSTED_HORIZON) and then gets a token: what is still open gets its
    thread, what settled long ago does not, and nothing stays behind."""
    settings = replace(settings_for(tmp_path), slack=SlackConfig(changes_channel=CHANNEL))
    quiet = inline_context(settings)  # no token: the record writes the outbox, nobody posts
    try:
        kept = request_checkpoint(quiet, "WEB01", reason="KB5044284", requester="cli:alice")
        assert kept.job_id is not None and quiet.ledger.get(kept.job_id).state == "succeeded"
        done = merge(quiet, kept.change.ref, requester="cli:alice")
        assert done.job_id is not None and quiet.ledger.get(done.job_id).state == "succeeded"
        still_open = request_checkpoint(quiet, "APP01", reason="deploy", requester="cli:alice")
        assert still_open.job_id is not None
        assert show_change(quiet, kept.change.ref).state == "merged"
    finally:
        quiet.close()

    with FakeSlackApi() as api:
        env = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_API_URL": api.api_url}
        later = inline_context(settings, clock=ScaledClock(600, start=T0 + slack_from), env=env)
        try:
            assert isinstance(later.notifier, ThreadNotifier)
            later.notifier.pacer = ChannelPacer(rate=1000.0, burst=1000)
            # `checkpoint-bot outbox` says beforehand which will get none.
            waiting = outbox_status(later)
            assert waiting.slack_changes == 2
            assert waiting.slack_too_late == (0 if merged_posted else 1)
            assert waiting.to_dict()["slack"]["settled_long_ago"] == waiting.slack_too_late
            drained = later.notifier.outbox
            while drained.drain():
                pass
            assert drained.pending() == 0  # none left behind, posted or not
            roots = [p.body for p in api.of("chat.postMessage") if "thread_ts" not in p.body]
            about = sorted("WEB01" if "WEB01" in str(r) else "APP01" for r in roots)
            assert about == (["APP01", "WEB01"] if merged_posted else ["APP01"])
            with session_scope(later.engine) as s:
                merged_row = s.get(Change, kept.change.id)
                assert merged_row is not None
                assert (merged_row.thread_ts is not None) is merged_posted
        finally:
            later.close()


@pytest.mark.parametrize(
    ("state", "thread_ts", "age", "too_late"),
    [
        ("merged", None, timedelta(days=2), True),
        ("rejected", None, timedelta(days=1, seconds=1), True),
        ("merged", None, timedelta(hours=23), False),  # a short outage: still told
        ("merged", "1733390000.000100", timedelta(days=30), False),  # its thread goes on
        ("active", None, timedelta(days=30), False),  # open: it gets its thread
        ("rolled_back", None, timedelta(days=30), False),  # can still be merged
    ],
)
def test_only_what_settled_long_ago_without_a_thread_is_left_unposted(
    state: str, thread_ts: str | None, age: timedelta, too_late: bool
) -> None:
    change = Change(
        vm_id="v",
        vm_name="WEB01",
        host="HV01",
        requester="cli:alice",
        reason="r",
        state=state,
        thread_ts=thread_ts,
        created_at=T0,
        updated_at=T0,
    )
    assert too_late_for_a_thread(change, T0 + age) is too_late


def test_a_refusal_opens_no_thread(slack_ctx: tuple[AppContext, FakeSlackApi]) -> None:
    ctx, api = slack_ctx
    out = request_checkpoint(
        ctx, "CORP-DC01", reason="patch", requester="U0ALICE", channel=CHANNEL, source="slack"
    )
    assert out.refused
    ctx.notifier.changed(out.change.id)
    assert isinstance(ctx.notifier, ThreadNotifier)
    ctx.notifier.flush()
    assert api.of("chat.postMessage") == []


def test_pacer_allows_a_burst_then_one_per_second() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = ChannelPacer(rate=1.0, burst=3, monotonic=lambda: now[0], sleep=sleep)
    waits = [pacer.wait("C1") for _ in range(5)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3] == pytest.approx(1.0) and waits[4] == pytest.approx(1.0)
    assert pacer.wait("C2") == 0.0  # channels are paced separately


def test_a_post_abandoned_by_a_dead_process_is_taken_over(
    slack_ctx: tuple[AppContext, FakeSlackApi],
) -> None:
    ctx, api = slack_ctx
    out = request_checkpoint(
        ctx, "WEB02", reason="patch", requester="U0ALICE", channel=CHANNEL, source="slack"
    )
    assert out.job_id is not None and ctx.ledger.get(out.job_id).state == "succeeded"
    assert isinstance(ctx.notifier, ThreadNotifier)
    ctx.notifier.flush()
    before = len(api.of("chat.postMessage"))
    # A process claimed the "created" reply, then died before posting it.
    with session_scope(ctx.engine) as s:
        first = s.exec(
            select(ChangeEvent).where(
                ChangeEvent.change_id == out.change.id, ChangeEvent.kind == "created"
            )
        ).one()
        first.slack_ts = "posting:1000:dead"  # claimed in 1970: long stale
        s.add(first)
    ctx.notifier.sync(out.change.id)
    assert len(api.of("chat.postMessage")) == before + 1
    with session_scope(ctx.engine) as s:
        again = s.get(ChangeEvent, first.id)
        assert again is not None and again.slack_ts and not again.slack_ts.startswith("posting")
