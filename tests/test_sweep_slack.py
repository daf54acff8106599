"""The sweep on Slack: one digest per channel however many checkpoints,
each digest once across racing replicas, every digest valid Block Kit at
its longest, and its buttons clicked over signed requests into the Bolt app.
The Web API is the recording fake (tests/slack_support.py)."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from bot.changes.views import ChangeView, HostProblem
from bot.clock import ManualClock
from bot.config import SweepConfig
from bot.context import AppContext, build_context
from bot.notify.channel import SlackChannelNotices
from bot.service import Selection, create_batch, request_checkpoint, show_batch, show_change
from bot.service.sweep import SweepTask, run_sweep
from bot.service.sweep_views import ChannelDigest, Finding, SweepItem, SweepReport, WaveRow
from bot.store.db import session_scope
from bot.store.models import Change
from bot.wave_keys import merge_item, value_of
from templates import Renderer
from templates.blocks import SlackRenderer, parse_action_value
from tests.helpers import settings_for
from tests.slack_support import BOT_TOKEN, Call, FakeSlackApi, running_bot
from tests.sweep_support import (
    checkpointable,
    clean_sweep_tables,
    record_change,
    seed_stale,
    take_orphan,
)
from tests.test_slack_flow import shown, slack_problems
from tests.test_slack_http import answer, texts

CHANNELS = ("C0A", "C0B", "C0C")
MORE = re.compile(r":scissors: …and (\d+) more")


def _context(
    tmp_path: Path, api: FakeSlackApi, clock: ManualClock, db_url: str | None = None
) -> AppContext:
    settings = replace(settings_for(tmp_path, db_url), sweep=SweepConfig(channel="C0A"))
    env = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_API_URL": api.api_url}
    ctx = build_context(settings, env=env, clock=clock, huey_kind="memory")
    assert isinstance(ctx.channels, SlackChannelNotices)
    return ctx


@pytest.fixture
def api() -> Iterator[FakeSlackApi]:
    with FakeSlackApi() as fake:
        yield fake


def _seed(ctx: AppContext, stale: int, orphans: int) -> None:
    vms = checkpointable(ctx)
    seed_stale(ctx, stale, CHANNELS, vms)
    for vm in vms[:orphans]:
        take_orphan(ctx, vm, age=timedelta(days=3))


def _buttons(call: Call) -> list[dict[str, Any]]:
    return [
        element
        for block in call.body["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
    ]


def test_one_digest_per_channel_whatever_the_count(
    tmp_path: Path, api: FakeSlackApi, clock: ManualClock
) -> None:
    ctx = _context(tmp_path, api, clock)
    try:
        _seed(ctx, stale=90, orphans=6)
        task = SweepTask(ctx)
        task.tick(clock())
        posts = api.of("chat.postMessage")
        assert sorted(p.body["channel"] for p in posts) == list(CHANNELS)
        assert [problem for p in posts for problem in slack_problems(p)] == []
        for post in posts:
            body = shown(post.body)
            rows = body.count(":hourglass:") + body.count(":ghost:")
            listed = 30 + (6 if post.body["channel"] == "C0A" else 0)
            more = MORE.search(body)
            assert more is not None and rows + int(more.group(1)) == listed
            for button in _buttons(post):
                if button["action_id"].startswith("sweep:"):
                    assert post.body["channel"] == "C0A"  # orphans go to sweep.channel
                    continue
                value = parse_action_value(button["value"])
                assert value.fits(button["action_id"]) and not value.legacy
                assert show_change(ctx, value.ref).version == value.version
            # Merging is destructive: every merge button asks first.
            assert all(b.get("confirm") for b in _buttons(post) if "merge" in b["action_id"])
        c0a = next(p for p in posts if p.body["channel"] == "C0A")
        assert "*30 stale*" in texts(c0a.body) and "*6 orphans*" in texts(c0a.body)

        task.tick(clock() + timedelta(hours=1))  # same slot: nothing again
        assert len(api.of("chat.postMessage")) == 3
        clock.advance(timedelta(hours=6))
        task.tick(clock())  # the next slot found nothing new: no digest again
        assert len(api.of("chat.postMessage")) == 3
        take_orphan(ctx, checkpointable(ctx)[-1], age=timedelta(days=3))
        clock.advance(timedelta(hours=6))
        task.tick(clock())  # a new orphan: its channel hears the whole picture again
        again = api.of("chat.postMessage")[3:]
        assert [p.body["channel"] for p in again] == ["C0A"]
        assert "*7 orphans*" in texts(again[0].body)
    finally:
        ctx.close()


def test_a_digest_slack_refused_is_tried_again_at_the_next_slot(
    tmp_path: Path, api: FakeSlackApi, clock: ManualClock
) -> None:
    ctx = _context(tmp_path, api, clock)
    try:
        _seed(ctx, stale=0, orphans=2)
        api.failing["chat.postMessage"] = "channel_not_found"
        SweepTask(ctx).tick(clock())
        assert [c.body["channel"] for c in api.of("chat.postMessage")] == ["C0A"]
        del api.failing["chat.postMessage"]
        clock.advance(timedelta(hours=6))
        SweepTask(ctx).tick(clock())  # nothing new, but nobody was told yet
        assert [c.body["channel"] for c in api.of("chat.postMessage")] == ["C0A", "C0A"]
        clock.advance(timedelta(hours=6))
        SweepTask(ctx).tick(clock())  # told now: quiet
        assert len(api.of("chat.postMessage")) == 2
    finally:
        ctx.close()


def test_racing_replicas_post_each_digest_once(
    tmp_path: Path, api: FakeSlackApi, clock: ManualClock, db_url: str
) -> None:
    clean_sweep_tables(db_url)
    replicas = [_context(tmp_path, api, clock, db_url) for _ in range(4)]
    try:
        _seed(replicas[0], stale=12, orphans=2)
        barrier = threading.Barrier(len(replicas))

        def tick(ctx: AppContext) -> None:
            barrier.wait(timeout=10)
            SweepTask(ctx).tick(clock())

        threads = [threading.Thread(target=tick, args=(r,)) for r in replicas]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert sorted(p.body["channel"] for p in api.of("chat.postMessage")) == list(CHANNELS)
    finally:
        for ctx in replicas:
            ctx.close()


def test_the_digest_fits_slack_at_its_longest() -> None:
    """200 rows with the longest names, twelve unreachable hosts with long
    errors: still one valid message of at most 50 blocks."""
    now = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)
    long = "X" * 300
    items = tuple(
        SweepItem(
            finding=[Finding.ORPHAN, Finding.STALE, Finding.MISMATCH][n % 3],
            host=f"HV{n:02d}-" + "H" * 200,
            vm_name=f"VM{n:03d}-" + long,
            vm_id=str(uuid.uuid4()),
            checkpoint_id=str(uuid.uuid4()),
            name="<!channel> & " + long,
            kind="production",
            created_at=now - timedelta(days=9),
            age_seconds=9 * 86400,
            size_bytes=(200 - n) * 1024**3,
            growth_bytes=-(1024**2) if n % 2 else 5 * 1024**3,
            channel="C0A",
            change_ref=None if n % 3 == 0 else f"CHG-{n:04d}",
            change_state=None if n % 3 == 0 else "active",
            change_version=7,
            requester="U0ALICE" + "Z" * 200,
            expires_at=now - timedelta(days=2),
        )
        for n in range(200)
    )
    problems = tuple(HostProblem(f"HV-DOWN-{n}-" + long, "WinRM: " + long) for n in range(12))
    digest = ChannelDigest("C0A", items, problems, now - timedelta(hours=6))
    report = SweepReport(now, "s", 40, 500, items, problems, (digest,))
    payload = SlackRenderer(Renderer()).payload(
        "sweep_digest", demo=True, digest=digest, report=report
    )
    assert len(payload["blocks"]) <= 50
    text = shown(payload)
    assert "&lt;!channel&gt;" in text and "<!channel>" not in text
    more = MORE.search(text)
    assert more is not None and int(more.group(1)) > 100


def test_the_digest_buttons_over_signed_requests(tmp_path: Path) -> None:
    # The sweep run here is the only one: the periodic one is off from the
    # start. (Turned off once the bot ran, a tick begun at its start could
    # still find the orphans made below and post a second digest.)
    with running_bot(tmp_path, sweep={"channel": "C0OPS", "enabled": False}) as bot:
        ctx = bot.ctx
        first_vm, second_vm, stale_vm = checkpointable(ctx)[:3]
        first = take_orphan(ctx, first_vm, age=timedelta(days=3))
        second = take_orphan(ctx, second_vm, age=timedelta(days=3))
        taken = ctx.host_for(stale_vm.host).create_checkpoint(stale_vm.vm_id, "patching")
        stale = show_change(ctx, f"CHG-{record_change(ctx, stale_vm, taken, channel='C0OPS')}")

        report = run_sweep(ctx, post=True)
        assert report.posted["C0OPS"] is not None
        [post] = [c for c in bot.api.of("chat.postMessage") if "sweep" in c.body["text"]]
        buttons = {(b["action_id"], b["value"]): b for b in _buttons(post)}
        adopt_first = f"{first.host}/{first.vm_id}/{first.id}"
        merge_second = f"{second.host}/{second.vm_id}/{second.id}"
        keep_stale = f"{stale.ref}:merge:v{stale.version}"
        assert ("sweep:adopt", adopt_first) in buttons
        assert buttons[("sweep:merge", merge_second)]["confirm"]
        assert buttons[("checkpoint:merge", keep_stale)]["confirm"]

        digest = {
            "ts": "1700000099.000100",
            "text": post.body["text"],
            "blocks": post.body["blocks"],
        }
        reply, key = bot.slack.click("sweep:adopt", adopt_first, user="U0BOB", message=digest)
        assert reply.status == 200
        assert "now owns checkpoint" in texts(answer(bot, key))
        [adopted] = _owners(ctx, first.id)
        assert (adopted.state, adopted.requester) == ("active", "U0BOB")
        # The digest is edited: that orphan's buttons give way to who adopted it.
        [edit] = bot.api.wait_for(
            lambda calls: any(
                c.method == "chat.update" and c.body.get("ts") == digest["ts"] for c in calls
            )
        ) and [c for c in bot.api.of("chat.update") if c.body.get("ts") == digest["ts"]]
        assert f"adopted by <@U0BOB> as *{adopted.ref}*" in json.dumps(edit.body["blocks"])
        left = [b["value"] for b in _buttons(edit)]
        assert adopt_first not in left and merge_second in left
        # The adopted change gets its thread where the digest was clicked.
        bot.api.wait_for(
            lambda calls: any(
                c.method == "chat.postMessage"
                and c.body.get("channel") == "C0OPS"
                and str(c.body.get("text", "")).startswith(adopted.ref)
                for c in calls
            )
        )
        # A second click (anyone's) is told who won; nothing is adopted twice.
        _, key = bot.slack.click("sweep:adopt", adopt_first, user="U0CAROL")
        assert f"{adopted.ref} already owns" in texts(answer(bot, key))

        _, key = bot.slack.click("sweep:merge", merge_second, user="U0BOB")
        assert "The merge started" in texts(answer(bot, key))
        # The card shows the merge started: no private echo of it.
        bot.slack.click("checkpoint:merge", keep_stale, user="U0BOB")
        for checkpoint_id in (second.id, taken.id):
            _wait_merged(ctx, checkpoint_id)
        remaining = {
            c.id for vm in (second_vm, stale_vm) for c in ctx.host_for(vm.host).list_checkpoints()
        }
        assert second.id not in remaining and taken.id not in remaining
        assert [p for c in bot.api.calls for p in slack_problems(c)] == []


def _owners(ctx: AppContext, checkpoint_id: str) -> list[ChangeView]:
    with session_scope(ctx.engine) as s:
        ids = [c.id for c in s.exec(select(Change).where(Change.checkpoint_id == checkpoint_id))]
    return [show_change(ctx, f"CHG-{i}") for i in ids]


def _wait_merged(ctx: AppContext, checkpoint_id: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if [c.state for c in _owners(ctx, checkpoint_id)] == ["merged"]:
            return
        time.sleep(0.05)
    raise AssertionError(f"{checkpoint_id}: {[c.state for c in _owners(ctx, checkpoint_id)]}")


def test_a_stale_wave_is_one_line_of_the_digest_with_one_keep_all(
    tmp_path: Path, api: FakeSlackApi, clock: ManualClock
) -> None:
    """Three stale checkpoints of one wave and one of a change asked for
    alone: the digest counts 4 stale, and lists the wave once (docs/batches.md
    "Lifetimes"), its button the wave card's own Keep & merge all."""
    ctx = _context(tmp_path, api, clock)
    try:
        out = create_batch(
            ctx,
            Selection.of(groups=["web-tier"]),
            reason="KB5044284 wave",
            requester="U0ALICE",
            channel="C0B",
            source="slack",
            ttl="2h",
        )
        alone = request_checkpoint(
            ctx, "STG-WEB01", reason="IIS", requester="U0ALICE", channel="C0B", ttl="2h"
        )
        for job_id in [*(o.job_id for o in out.outcomes), alone.job_id]:
            assert job_id is not None
            ctx.runner.run(job_id)
        clock.advance(timedelta(hours=3))
        report = run_sweep(ctx, post=True)
        digest = next(d for d in report.digests if d.channel == "C0B")
        assert digest.stale == 4
        waves = [r for r in digest.rows if r.is_wave]
        assert len(digest.rows) == 2 and len(waves) == 1
        assert isinstance(waves[0], WaveRow)
        assert sorted(waves[0].vms) == ["APP01", "WEB01", "WEB02"]  # biggest first
        post = next(
            p
            for p in api.of("chat.postMessage")
            if p.body["channel"] == "C0B" and ":broom:" in shown(p.body)
        )
        assert slack_problems(post) == []
        body = shown(post.body)
        listed = ", ".join(waves[0].vms)
        assert body.count(":hourglass:") == 2 and f"*BAT-0001* · 3 VMs: {listed}" in body
        assert "a wave of <@U0ALICE>, expired <!date^" in body
        wave_buttons = [b for b in _buttons(post) if b["action_id"] == "checkpoint:wave_merge"]
        # Bound to the members the line lists, as the wave's card binds its
        # own Keep & merge all (every member holding one is listed here).
        drawn = value_of(
            "BAT-0001", "merge", [merge_item(i.change_ref, i.change_state) for i in waves[0].items]
        )
        assert [b["value"] for b in wave_buttons] == [drawn]
        assert drawn == show_batch(ctx, "BAT-1").button_value("merge")
        assert wave_buttons[0].get("confirm")
        assert "*4 stale*" in texts(post.body)
    finally:
        ctx.close()
