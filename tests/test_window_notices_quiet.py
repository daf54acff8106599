"""Change-window notices that concern something (issue #17 item 8): a
window with nothing scheduled, held or done in its scope stays quiet unless
its config says `notices: {always: true}`, and the "open" notice lists the
checkpoints scheduled for the opening even once their jobs have started.
Two replicas tick over the Web API recorder (tests/slack_support.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.clock import ManualClock
from bot.config import SlackConfig
from bot.context import AppContext, build_context
from bot.notify import ChannelPacer, ThreadNotifier
from bot.service import request_checkpoint
from bot.service.window_notices import Phase, WindowNotices, worth_posting
from tests.helpers import settings_for
from tests.slack_support import BOT_TOKEN, FakeSlackApi
from tests.test_window_notices import CHANNEL, POLICY, notices

OPENS = datetime(2026, 11, 28, 21, 0, tzinfo=UTC)  # Saturday 22:00 Berlin


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 11, 27, 12, tzinfo=UTC))


def _context(tmp_path: Path, clock: ManualClock, api: FakeSlackApi, policy: str) -> AppContext:
    path = tmp_path / "policy.yaml"
    path.write_text(policy, encoding="utf-8")
    settings = replace(
        settings_for(tmp_path), policy_files=(path,), slack=SlackConfig(changes_channel=CHANNEL)
    )
    env = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_API_URL": api.api_url}
    ctx = build_context(settings, env=env, clock=clock, huey_kind="memory")
    assert isinstance(ctx.notifier, ThreadNotifier)
    ctx.notifier.pacer = ChannelPacer(rate=1000.0, burst=1000)
    return ctx


@pytest.fixture
def api() -> Iterator[FakeSlackApi]:
    with FakeSlackApi() as recorder:
        yield recorder


def _walk_one_opening(ctx: AppContext, clock: ManualClock) -> None:
    task = WindowNotices(ctx)
    for at in (
        OPENS - timedelta(minutes=20),
        OPENS,
        OPENS + timedelta(hours=5, minutes=40),
        OPENS + timedelta(hours=6, minutes=5),
    ):
        clock.advance(at - clock())
        task.tick(clock())


def test_a_window_with_nothing_in_scope_posts_nothing(
    tmp_path: Path, clock: ManualClock, api: FakeSlackApi
) -> None:
    ctx = _context(tmp_path, clock, api, POLICY)
    try:
        _walk_one_opening(ctx, clock)
    finally:
        ctx.close()
    assert notices(api) == []


def test_notices_always_posts_every_notice(
    tmp_path: Path, clock: ManualClock, api: FakeSlackApi
) -> None:
    policy = POLICY.replace("closing: 30m}", "closing: 30m, always: true}")
    assert "always: true" in policy
    ctx = _context(tmp_path, clock, api, policy)
    try:
        _walk_one_opening(ctx, clock)
    finally:
        ctx.close()
    texts = notices(api)
    assert [t.split(" (")[0].split("weekend ")[1] for t in texts] == [
        "opens soon",
        "is open",
        "closes soon",
        "closed",
    ]


def test_the_open_notice_lists_a_scheduled_checkpoint_already_started(
    tmp_path: Path, clock: ManualClock, api: FakeSlackApi
) -> None:
    ctx = _context(tmp_path, clock, api, POLICY)
    try:
        out = request_checkpoint(ctx, "WEB01", reason="KB5044284", requester="U0ALICE")
        assert out.change.state == "scheduled" and out.job_id is not None
        clock.advance(OPENS - clock())
        # A worker took the job the moment the window opened, before the notice.
        assert ctx.runner.run(out.job_id).status == "succeeded"
        WindowNotices(ctx).tick(clock())
    finally:
        ctx.close()
    (opened,) = [c for c in api.of("chat.postMessage") if "is open" in str(c.body["text"])]
    text = str(opened.body["blocks"])
    assert "No checkpoints are scheduled" not in text
    assert out.change.ref in text and "1 scheduled checkpoint for this opening" in text
    assert "_active_" in text
    # Times are Slack date tokens; the window's own zone only in its definition.
    assert f"<!date^{int(OPENS.timestamp())}^" in text
    assert "cron 0 22 * * 6 in Europe/Berlin" in text


@pytest.mark.parametrize(
    ("phase", "scheduled", "active", "happened", "expected"),
    [
        (Phase.OPENING_SOON, 0, 3, 0, False),
        (Phase.OPENING_SOON, 1, 0, 0, True),
        (Phase.OPEN, 0, 0, 0, False),
        (Phase.OPEN, 0, 1, 0, True),
        (Phase.CLOSING_SOON, 2, 0, 0, False),
        (Phase.CLOSING_SOON, 0, 1, 0, True),
        (Phase.CLOSED, 0, 0, 0, False),
        (Phase.CLOSED, 0, 0, 1, True),
        (Phase.CLOSED, 0, 1, 0, True),
    ],
)
def test_worth_posting_says_when_a_notice_concerns_something(
    phase: Phase, scheduled: int, active: int, happened: int, expected: bool
) -> None:
    assert (
        worth_posting(phase, scheduled=scheduled, active=active, happened=happened, always=False)
        is expected
    )
    assert worth_posting(phase, scheduled=scheduled, active=active, happened=happened, always=True)
