"""TTL chasing: reminders before expiry to the requester and the thread,
a notice at expiry, auto-merge only where the scope allows it, never an
automatic rollback, each notice once across replicas."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlmodel import select

from bot.clock import ManualClock
from bot.config import SlackConfig
from bot.context import AppContext, build_context
from bot.notify import ChannelPacer, ThreadNotifier
from bot.service import (
    Selection,
    create_batch,
    extend,
    request_checkpoint,
    show_batch,
    show_change,
)
from bot.service.ttl_chase import TTLChaser, due_reminder
from bot.store.db import session_scope
from bot.store.models import Job
from tests.helpers import T0, settings_for
from tests.slack_support import BOT_TOKEN, FakeSlackApi

CHANNEL = "C0OPS"
STAGING_AUTO_MERGE = """
rules:
  ttl:
    overrides:
      - scope: {tags: {env: staging}}
        params: {auto_merge: true, auto_merge_grace: 30m}
"""

durations = st.integers(min_value=1, max_value=30 * 24 * 3600).map(lambda s: timedelta(seconds=s))


@given(
    ttl=durations,
    points=st.lists(durations, max_size=5),
    elapsed=st.integers(min_value=0, max_value=31 * 24 * 3600),
)
def test_the_due_reminder_is_the_closest_point_reached(
    ttl: timedelta, points: list[timedelta], elapsed: int
) -> None:
    expires = T0 + ttl
    now = T0 + timedelta(seconds=elapsed)
    point = due_reminder(expires, ttl, points, now)
    if point is None:
        assert now >= expires or not [p for p in points if p < ttl and now >= expires - p]
        return
    assert point in points and point < ttl and expires - point <= now < expires
    assert all(p >= point for p in points if p < ttl and now >= expires - p)


def _contexts(
    tmp_path: Path, clock: ManualClock, api: FakeSlackApi, policy: str | None
) -> tuple[AppContext, AppContext]:
    settings = replace(settings_for(tmp_path), slack=SlackConfig(changes_channel=CHANNEL))
    if policy is not None:
        path = tmp_path / "policy.yaml"
        path.write_text(policy, encoding="utf-8")
        settings = replace(settings, policy_files=(path,))
    env = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_API_URL": api.api_url}
    pair = tuple(build_context(settings, env=env, clock=clock, huey_kind="memory") for _ in "ab")
    for ctx in pair:
        assert isinstance(ctx.notifier, ThreadNotifier)
        ctx.notifier.pacer = ChannelPacer(rate=1000.0, burst=1000)
    return pair[0], pair[1]


@pytest.fixture
def slack(
    tmp_path: Path, clock: ManualClock
) -> Iterator[tuple[AppContext, AppContext, FakeSlackApi]]:
    with FakeSlackApi() as api:
        one, two = _contexts(tmp_path, clock, api, None)
        try:
            yield one, two, api
        finally:
            one.close()
            two.close()


def _active(ctx: AppContext, vm: str, ttl: str) -> str:
    out = request_checkpoint(
        ctx, vm, reason="KB5044284", requester="U0ALICE", channel=CHANNEL, source="slack", ttl=ttl
    )
    assert out.job_id is not None
    ctx.runner.run(out.job_id)
    assert show_change(ctx, out.change.ref).state == "active"
    return out.change.ref


def _dms(api: FakeSlackApi) -> list[str]:
    return [
        str(c.body["text"]) for c in api.of("chat.postMessage") if c.body["channel"] == "U0ALICE"
    ]


def _channel_notices(api: FakeSlackApi) -> list[str]:
    """Top-level posts in the channel about an expiry (not thread replies)."""
    return [
        str(c.body)
        for c in api.of("chat.postMessage")
        if c.body["channel"] == CHANNEL
        and "thread_ts" not in c.body
        and "has expired" in str(c.body["text"])
    ]


def test_reminders_then_an_expiry_notice_each_once_and_never_a_rollback(
    slack: tuple[AppContext, AppContext, FakeSlackApi], clock: ManualClock
) -> None:
    one, two, api = slack
    ref = _active(one, "WEB01", "48h")
    expires = show_change(one, ref).expires_at
    assert expires is not None
    chasers = [TTLChaser(one), TTLChaser(two)]

    def at(moment: datetime) -> None:
        clock.advance(moment - clock())
        for chaser in chasers:
            chaser.tick(clock())
            chaser.tick(clock())

    at(expires - timedelta(hours=30))
    assert _dms(api) == []
    at(expires - timedelta(hours=23))
    assert len(_dms(api)) == 1 and "expires in 23h" in _dms(api)[0]
    at(expires - timedelta(minutes=40))
    assert len(_dms(api)) == 2 and "expires in 40m" in _dms(api)[1]
    dm = [c for c in api.of("chat.postMessage") if c.body["channel"] == "U0ALICE"][-1]
    actions = [
        el["action_id"] for b in dm.body["blocks"] if b["type"] == "actions" for el in b["elements"]
    ]
    assert actions == ["checkpoint:rollback", "checkpoint:merge", "checkpoint:extend"]

    at(expires + timedelta(minutes=1))
    assert len(_channel_notices(api)) == 1
    assert "never rolled back on its own" in _channel_notices(api)[0]
    at(expires + timedelta(days=3))
    assert len(_channel_notices(api)) == 1 and len(_dms(api)) == 2

    change = show_change(one, ref)
    assert change.state == "active"
    kinds = [e.kind for e in change.events]
    assert kinds.count("ttl_reminder") == 2 and kinds.count("ttl_expired") == 1
    with session_scope(one.engine) as s:
        assert [j.kind for j in s.exec(select(Job).where(Job.change_id == change.id))] == ["create"]


def test_an_extension_starts_the_reminders_again(
    slack: tuple[AppContext, AppContext, FakeSlackApi], clock: ManualClock
) -> None:
    one, _two, api = slack
    ref = _active(one, "WEB01", "24h")
    first = show_change(one, ref).expires_at
    assert first is not None
    clock.advance(first - timedelta(minutes=30) - clock())
    TTLChaser(one).tick(clock())
    assert len(_dms(api)) == 1
    extended = extend(one, ref, "12h", requester="U0ALICE")
    assert extended.change.expires_at == first + timedelta(hours=12)
    clock.advance(timedelta(hours=12))
    TTLChaser(one).tick(clock())
    assert len(_dms(api)) == 2


def test_auto_merge_only_where_the_scope_allows_it(tmp_path: Path, clock: ManualClock) -> None:
    with FakeSlackApi() as api:
        one, two = _contexts(tmp_path, clock, api, STAGING_AUTO_MERGE)
        try:
            staging = _active(one, "STG-WEB01", "24h")
            prod = _active(one, "WEB01", "24h")
            expires = show_change(one, staging).expires_at
            assert expires is not None
            clock.advance(expires + timedelta(minutes=10) - clock())
            TTLChaser(one).tick(clock())
            assert "automatically in 30m" in str(api.of("chat.postMessage"))
            assert show_change(one, staging).state == "active"  # still within the grace
            clock.advance(timedelta(minutes=25))
            for chaser in (TTLChaser(one), TTLChaser(two)):
                chaser.tick(clock())
            merging = show_change(one, staging)
            assert merging.state == "merging"
            assert merging.events[-1].actor == "checkpoint-bot"
            assert show_change(one, prod).state == "active"  # prod: never on its own
            with session_scope(one.engine) as s:
                removes = s.exec(select(Job).where(Job.kind == "merge")).all()
            # One merge job on the ledger, whose runner is the ordinary one.
            assert len(removes) == 1 and removes[0].state == "queued"
            assert removes[0].destructive
        finally:
            one.close()
            two.close()


def test_a_vm_gone_from_the_inventory_is_still_chased_by_the_base_settings(
    slack: tuple[AppContext, AppContext, FakeSlackApi], clock: ManualClock
) -> None:
    from sqlalchemy import update

    from bot.store.models import Change

    one, _two, api = slack
    ref = _active(one, "WEB01", "24h")
    change = show_change(one, ref)
    with session_scope(one.engine) as s:
        s.execute(
            update(Change)
            .where(Change.id == change.id)  # type: ignore[arg-type]
            .values(vm_id="00000000-0000-4000-8000-000000000000")
        )
    assert change.expires_at is not None
    clock.advance(change.expires_at - timedelta(minutes=30) - clock())
    TTLChaser(one).tick(clock())
    assert len(_dms(api)) == 1


def test_a_wave_is_chased_as_one_thing_one_reminder_and_one_expiry_notice(
    slack: tuple[AppContext, AppContext, FakeSlackApi], clock: ManualClock
) -> None:
    """Three VMs of one wave, two replicas ticking: one DM per reminder
    point and one channel notice at expiry for the whole wave (docs/batches.md
    "Lifetimes"), each member's record noting each."""
    one, two, api = slack
    out = create_batch(
        one,
        Selection.of(groups=["web-tier"]),
        reason="KB5044284 wave",
        requester="U0ALICE",
        channel=CHANNEL,
        source="slack",
        ttl="48h",
    )
    for o in out.outcomes:
        assert o.job_id is not None
        one.runner.run(o.job_id)
    wave = show_batch(one, out.batch.ref)
    assert wave.state.value == "active"
    expiries = {show_change(one, m.change).expires_at for m in wave.members}
    assert len(expiries) == 1
    expires = expiries.pop()
    assert expires is not None
    chasers = [TTLChaser(one), TTLChaser(two)]

    def at(moment: datetime) -> None:
        clock.advance(moment - clock())
        for chaser in chasers:
            chaser.tick(clock())
            chaser.tick(clock())

    at(expires - timedelta(hours=23))
    at(expires - timedelta(minutes=40))
    dms = _dms(api)
    assert dms == [
        ":alarm_clock: BAT-0001: the checkpoints of 3 VMs expire in 23h",
        ":alarm_clock: BAT-0001: the checkpoints of 3 VMs expire in 40m",
    ]
    dm = [c for c in api.of("chat.postMessage") if c.body["channel"] == "U0ALICE"][-1]
    actions = [
        el["action_id"] for b in dm.body["blocks"] if b["type"] == "actions" for el in b["elements"]
    ]
    assert actions == ["checkpoint:wave_merge", "checkpoint:wave_rollback"]
    assert all(vm in str(dm.body["blocks"]) for vm in ("WEB01", "WEB02", "APP01"))

    at(expires + timedelta(minutes=1))
    at(expires + timedelta(days=3))
    notices = [
        c.body
        for c in api.of("chat.postMessage")
        if c.body["channel"] == CHANNEL
        and "thread_ts" not in c.body
        and "expired" in str(c.body["text"])
    ]
    assert len(notices) == 1 and "BAT-0001" in str(notices[0]["text"])
    assert "none is rolled back on its own" in str(notices[0]["blocks"])
    assert len(_dms(api)) == 2
    for member in wave.members:
        change = show_change(one, member.change)
        kinds = [e.kind for e in change.events]
        assert change.state == "active"
        assert kinds.count("ttl_reminder") == 2 and kinds.count("ttl_expired") == 1


def test_the_expiry_notice_says_the_checkpoint_stays_once(
    slack: tuple[AppContext, AppContext, FakeSlackApi], clock: ManualClock
) -> None:
    """Seen in Slack: "A checkpoint that stays grows its disk and slows the
    VM: it stays until someone decides"."""
    one, _, api = slack
    ref = _active(one, "WEB01", "2h")
    expires = show_change(one, ref).expires_at
    assert expires is not None
    clock.advance(expires + timedelta(minutes=1) - clock())
    TTLChaser(one).tick(clock())
    [notice] = [
        c.body
        for c in api.of("chat.postMessage")
        if c.body["channel"] == CHANNEL and "has expired" in str(c.body["text"])
    ]
    body = notice["blocks"][1]["text"]["text"]
    assert "grows its disk and slows the VM" in body and "it stays until someone decides" in body
    assert body.count("stays") == 1, body
