"""Each change window lists only the scheduled checkpoints that wait for it:
two windows opening at the same instant, each over its own VM, do not list
each other's creates (`checkpoint-bot windows`, its --json, and the Slack
notices of `WindowNotices`)."""

from __future__ import annotations

import json
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
from bot.service.window_notices import WindowNotices
from tests.cli_support import invoke
from tests.helpers import settings_for
from tests.slack_support import BOT_TOKEN, FakeSlackApi

CHANNEL = "C0CHANGES"
TWO_NIGHTLIES = """
rules:
  change_window: {effect: schedule}
windows:
  - name: nightly
    cron: "0 23 * * *"
    duration: 3h
    timezone: Europe/Berlin
    scope: {names: [APP01]}
  - name: nightly-web
    cron: "0 23 * * *"
    duration: 3h
    timezone: Europe/Berlin
    scope: {names: [WEB01]}
"""
# Friday 27 Nov 2026, 23:00 CET: both windows open.
OPENS = datetime(2026, 11, 27, 22, 0, tzinfo=UTC)


def test_the_cli_lists_each_windows_own_scheduled_checkpoints(tmp_path: Path) -> None:
    # The CLI runs on the real clock: windows that open twelve hours from
    # now, so neither is open whenever the test runs (at 23:00 Berlin time
    # the nightly ones were, and the creates were approved, not scheduled).
    opens = (datetime.now(UTC).hour + 12) % 24
    policy = TWO_NIGHTLIES.replace('cron: "0 23 * * *"', f'cron: "0 {opens} * * *"')
    policy = policy.replace("timezone: Europe/Berlin", "timezone: UTC")
    (tmp_path / "policy.yaml").write_text(policy, encoding="utf-8")
    inventory = Path(__file__).parents[1] / "deploy/examples/demo-inventory.yaml"
    config = tmp_path / "config.yaml"
    config.write_text(
        f"inventory: {inventory}\npolicy: policy.yaml\nhyperv: {{backend: simulator}}\n",
        encoding="utf-8",
    )
    cli = ("--config", str(config))
    assert invoke(tmp_path, *cli, "db", "upgrade").returncode == 0
    for vm, ref in (("APP01", "CHG-0001"), ("WEB01", "CHG-0002")):
        made = invoke(tmp_path, *cli, "checkpoint", "create", vm, "-r", "a", "--no-wait")
        assert made.returncode == 0, made.stderr
        shown = json.loads(invoke(tmp_path, *cli, "change", "show", ref, "--json").stdout)
        assert shown["state"] == "scheduled", shown
    text = invoke(tmp_path, *cli, "windows")
    assert text.returncode == 0, text.stderr
    blocks = text.stdout.split("\nnightly-web: ")
    assert len(blocks) == 2, text.stdout
    assert "  scheduled: CHG-0001\n" in blocks[0] + "\n" and "CHG-0002" not in blocks[0]
    assert "  scheduled: CHG-0002" in blocks[1] and "CHG-0001" not in blocks[1]
    data = json.loads(invoke(tmp_path, *cli, "windows", "--json").stdout)["windows"]
    assert {w["name"]: w["scheduled"] for w in data} == {
        "nightly": ["CHG-0001"],
        "nightly-web": ["CHG-0002"],
    }


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(OPENS - timedelta(hours=2))


@pytest.fixture
def app(tmp_path: Path, clock: ManualClock) -> Iterator[tuple[AppContext, FakeSlackApi]]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(TWO_NIGHTLIES, encoding="utf-8")
    settings = replace(
        settings_for(tmp_path), policy_files=(policy,), slack=SlackConfig(changes_channel=CHANNEL)
    )
    with FakeSlackApi() as api:
        env = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_API_URL": api.api_url}
        ctx = build_context(settings, env=env, clock=clock, huey_kind="memory")
        assert isinstance(ctx.notifier, ThreadNotifier)
        ctx.notifier.pacer = ChannelPacer(rate=1000.0, burst=1000)
        try:
            yield ctx, api
        finally:
            ctx.close()


def _notice_blocks(api: FakeSlackApi, title: str) -> str:
    """The blocks of the one notice whose text is `title`, as text."""
    found = [
        str(c.body["blocks"])
        for c in api.of("chat.postMessage")
        if c.body.get("channel") == CHANNEL and title in str(c.body.get("text"))
    ]
    assert len(found) == 1, (title, [c.body.get("text") for c in api.of("chat.postMessage")])
    return found[0]


def test_each_notice_lists_only_its_own_windows_scheduled_checkpoints(
    app: tuple[AppContext, FakeSlackApi], clock: ManualClock
) -> None:
    ctx, api = app
    app01 = request_checkpoint(ctx, "APP01", reason="a", requester="U0ALICE")
    web01 = request_checkpoint(ctx, "WEB01", reason="b", requester="U0ALICE")
    assert app01.change.state == web01.change.state == "scheduled"
    task = WindowNotices(ctx)
    for at, phase in ((OPENS - timedelta(minutes=20), "opens soon"), (OPENS, "is open")):
        clock.advance(at - clock())
        task.tick(clock())
        mine = _notice_blocks(api, f"Change window nightly {phase}")
        web = _notice_blocks(api, f"Change window nightly-web {phase}")
        assert f"*{app01.change.ref}* APP01" in mine and web01.change.ref not in mine, mine
        assert f"*{web01.change.ref}* WEB01" in web and app01.change.ref not in web, web
        assert "1 scheduled checkpoint" in mine and "1 scheduled checkpoint" in web
