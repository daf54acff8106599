"""What a change window says it waits for, and to whom it applies: the
listing (`/checkpoint windows`, `checkpoint-bot windows`) counts only what
still waits (not the creates that ran when it opened) and those waiting for
their approver; the notices name a create that waits for its approver in
every phase; a scope reads as plain words ("applies to APP01", "VMs tagged
env=prod"), not as the policy file's keys."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from bot.clock import ManualClock
from bot.config import SlackConfig
from bot.context import AppContext, build_context
from bot.notify import ChannelPacer, ThreadNotifier
from bot.service import request_checkpoint
from bot.service.at_time import AtTime
from bot.service.window_notices import WindowNotices
from bot.store.db import session_scope
from bot.store.tables.jobs import Job
from policies.schema import Scope
from policies.windows import describe_scope
from tests.cli_support import invoke
from tests.helpers import settings_for
from tests.slack_support import BOT_TOKEN, FakeSlackApi
from tests.test_slack_flow import checked_bot, command, shown
from tests.test_slack_http import wait_state

CHANNEL = "C0CHANGES"
# WEB01 is env=prod: its creates wait for an approver (STG-WEB01's do not).
CREATE_NEEDS_APPROVAL = """
  approvals:
    overrides:
      - scope: {tags: {env: prod}}
        params: {count: 1, actions: [create]}
"""
WEEKEND = (
    """
rules:
  change_window: {effect: schedule}"""
    + CREATE_NEEDS_APPROVAL
    + """
windows:
  - name: weekend
    cron: "0 22 * * 6"
    duration: 6h
    timezone: Europe/Berlin
    scope: {tags: {tier: web}}
    notices: {opening: 30m, closing: 30m}
"""
)
ALWAYS_OPEN = (
    """
rules:
  change_window: {effect: schedule}"""
    + CREATE_NEEDS_APPROVAL
    + """
windows:
  - name: all-day
    cron: "0 0 * * *"
    duration: 24h
    timezone: UTC
    scope: {names: [STG-WEB01, WEB01]}
"""
)
# Saturday 28 Nov 2026, 22:00 CET: the weekend window opens.
OPENS = datetime(2026, 11, 28, 21, 0, tzinfo=UTC)


# --- a scope in plain words ------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "words"),
    [
        (Scope(), "every VM"),
        (Scope(names=["APP01"]), "APP01"),
        (Scope(names=["APP01", "WEB01", "DB01"]), "APP01, WEB01 and DB01"),
        (Scope(tags={"env": "prod"}), "VMs tagged env=prod"),
        (Scope(tags={"env": "prod", "tier": "web"}), "VMs tagged env=prod and tier=web"),
        (Scope(names=["WEB*"]), "VMs named WEB*"),
        (Scope(host_groups=["prod-cluster"]), "VMs on host group prod-cluster"),
        (
            Scope(domains=["corp.example", "lab.example"]),
            "VMs in domain corp.example or lab.example",
        ),
        (Scope(tags={"env": "prod"}, roles=["web"]), "VMs tagged env=prod with role web"),
    ],
)
def test_a_scope_reads_as_plain_words(scope: Scope, words: str) -> None:
    assert describe_scope(scope) == words


# --- /checkpoint windows and checkpoint-bot windows --------------------------------


def _ran_when_it_opened(ctx: AppContext) -> None:
    """Make the create look as if it was scheduled for the window's current
    opening and ran when it opened (the bot's clock cannot be set to it)."""
    opens = ctx.policy.windows[0].last_start(ctx.clock())
    with session_scope(ctx.engine) as s:
        for job in s.exec(select(Job).where(col(Job.kind) == "create")).all():
            job.not_before = opens
            s.add(job)


def test_the_slack_listing_counts_what_still_waits_in_plain_words(tmp_path: Path) -> None:
    with checked_bot(tmp_path, ALWAYS_OPEN) as bot:
        command(bot, "create STG-WEB01 --reason patching")
        wait_state(bot, "STG-WEB01", "active")
        _ran_when_it_opened(bot.ctx)
        command(bot, "create WEB01 --reason KB5044284")
        wait_state(bot, "WEB01", "awaiting_approval")

        windows = shown(command(bot, "windows"))
        assert "*all-day* · *open now* until <!date^" in windows
        # Its create ran: nothing is scheduled any more; WEB01's waits for its approver.
        assert "scheduled" not in windows, windows
        assert "· applies to STG-WEB01 and WEB01 · 1 waiting for approval · " in windows
        assert "name STG-WEB01" not in windows
        # The definition stays: it is where a reader sees the window's own zone.
        assert "cron 0 0 * * * in UTC" in windows


def test_the_cli_listing_agrees(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(WEEKEND, encoding="utf-8")
    inventory = Path(__file__).parents[1] / "deploy/examples/demo-inventory.yaml"
    config = tmp_path / "config.yaml"
    config.write_text(
        f"inventory: {inventory}\npolicy: policy.yaml\nhyperv: {{backend: simulator}}\n",
        encoding="utf-8",
    )
    cli = ("--config", str(config))
    assert invoke(tmp_path, *cli, "db", "upgrade").returncode == 0
    for vm in ("WEB01", "STG-WEB01"):
        made = invoke(tmp_path, *cli, "checkpoint", "create", vm, "-r", "KB1", "--no-wait")
        assert made.returncode == 0, made.stderr
    shown_text = invoke(tmp_path, *cli, "windows").stdout
    assert "applies to VMs tagged tier=web)" in shown_text, shown_text
    data = json.loads(invoke(tmp_path, *cli, "windows", "--json").stdout)["windows"][0]
    assert data["applies_to"] == "VMs tagged tier=web"
    assert data["awaiting_approval"] == ["CHG-0001"]
    assert "  waiting for approval: CHG-0001" in shown_text


# --- the notices ------------------------------------------------------------------


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(OPENS - timedelta(minutes=2))


@pytest.fixture
def ctx(tmp_path: Path, clock: ManualClock) -> Iterator[tuple[AppContext, FakeSlackApi]]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(WEEKEND, encoding="utf-8")
    settings = replace(
        settings_for(tmp_path), policy_files=(policy,), slack=SlackConfig(changes_channel=CHANNEL)
    )
    with FakeSlackApi() as api:
        env = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_API_URL": api.api_url}
        app = build_context(settings, env=env, clock=clock, huey_kind="memory")
        assert isinstance(app.notifier, ThreadNotifier)
        app.notifier.pacer = ChannelPacer(rate=1000.0, burst=1000)
        try:
            yield app, api
        finally:
            app.close()


def _notice(api: FakeSlackApi, words: str) -> dict[str, Any] | None:
    for call in api.of("chat.postMessage"):
        if call.body.get("channel") == CHANNEL and words in str(call.body.get("text")):
            return call.body
    return None


def test_each_notice_names_a_create_waiting_for_its_approver(
    ctx: tuple[AppContext, FakeSlackApi], clock: ManualClock
) -> None:
    app, api = ctx
    # Asked two minutes before the opening; nobody approves it.
    out = request_checkpoint(app, "WEB01", reason="KB5044284", requester="U0ALICE")
    assert out.change.state == "awaiting_approval"
    task = WindowNotices(app)
    stages = (
        (OPENS, "is open", "approved before it closes, each runs at once"),
        (OPENS + timedelta(hours=5, minutes=40), "closes soon", "after that, at the next opening"),
        (OPENS + timedelta(hours=6, minutes=5), "closed", "approved now, each runs at the next"),
    )
    for at, title, when in stages:
        clock.advance(at - clock())
        task.tick(clock())
        notice = _notice(api, title)
        assert notice is not None, f"no {title!r} notice"
        text = shown(notice)
        assert f"*{out.change.ref}* WEB01 on HV01 for <@U0ALICE>" in text, text
        assert "1 checkpoint for this window still waits for an approver" in text
        assert when in text
        assert "Applies to VMs tagged tier=web" in text and "Applies to:" not in text


def test_a_create_asked_for_a_later_opening_does_not_wait_for_this_one(
    ctx: tuple[AppContext, FakeSlackApi], clock: ManualClock
) -> None:
    app, _api = ctx
    later = AtTime(OPENS + timedelta(days=7, hours=1), "UTC", "typed")  # next weekend
    out = request_checkpoint(app, "WEB01", reason="KB1", requester="U0ALICE", at=later)
    assert out.change.state == "awaiting_approval"
    window = app.policy.windows[0]
    assert WindowNotices(app).waiting_for(window, OPENS).awaiting_approval == ()
    # STG-WEB01 needs no approver: it is scheduled, not waiting for approval.
    staged = request_checkpoint(app, "STG-WEB01", reason="KB1", requester="U0ALICE")
    waiting = WindowNotices(app).waiting_for(window, OPENS)
    assert [c.ref for c in waiting.scheduled] == [staged.change.ref]


def test_what_ran_when_the_window_opened_no_longer_waits_for_it(
    ctx: tuple[AppContext, FakeSlackApi], clock: ManualClock
) -> None:
    app, _api = ctx
    out = request_checkpoint(app, "STG-WEB01", reason="KB1", requester="U0ALICE")
    assert out.change.state == "scheduled" and out.job_id is not None
    window = app.policy.windows[0]
    clock.advance(OPENS + timedelta(minutes=1) - clock())
    assert app.runner.run(out.job_id).status == "succeeded"
    assert WindowNotices(app).waiting_for(window, OPENS).scheduled == ()
    # The "open" notice still shows how each of its creates is doing.
    assert [c.ref for c in WindowNotices(app).scheduled_for(window, OPENS, started=True)] == [
        out.change.ref
    ]
