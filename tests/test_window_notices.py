"""Change windows: notices at the right local times across daylight-saving
changes (an injected clock walks the weekends minute by minute), each once
however many replicas tick, and scheduled checkpoints that run when their
window opens, re-checked first."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.clock import ManualClock
from bot.config import SlackConfig
from bot.context import AppContext, build_context
from bot.notify import ChannelPacer, ThreadNotifier
from bot.service import request_checkpoint, show_change
from bot.service.window_notices import Phase, WindowNotices, due_notices
from policies import PolicyError, parse_policy
from policies.scopes import Scope
from policies.windows import Window
from tests.helpers import settings_for
from tests.slack_support import BOT_TOKEN, FakeSlackApi

BERLIN = ZoneInfo("Europe/Berlin")
CHANNEL = "C0CHANGES"
POLICY = """
rules:
  change_window: {effect: schedule}
windows:
  - name: weekend
    cron: "0 22 * * 6"
    duration: 6h
    timezone: Europe/Berlin
    scope: {tags: {tier: web}}
    notices: {opening: 30m, closing: 30m}
"""


def weekend(**kw: object) -> Window:
    base: dict[str, object] = {
        "name": "weekend",
        "cron": "0 22 * * 6",
        "duration": timedelta(hours=6),
        "tz": BERLIN,
        "scope": Scope(),
    }
    return Window(**(base | kw))  # type: ignore[arg-type]


def first_seen(window: Window, start: datetime, hours: int) -> dict[Phase, datetime]:
    """Walk the clock minute by minute; when each phase first came due (local time)."""
    seen: dict[Phase, datetime] = {}
    for minute in range(hours * 60):
        now = start + timedelta(minutes=minute)
        for notice in due_notices(window, now):
            seen.setdefault(notice.phase, now.astimezone(BERLIN))
    return seen


def local(text: str) -> datetime:
    """A Berlin wall-clock time; `+01:00`/`+02:00` says which side of DST."""
    return datetime.fromisoformat(text).astimezone(BERLIN)


@pytest.mark.parametrize(
    ("saturday", "expected"),
    [
        # An ordinary November weekend (CET all night).
        (
            datetime(2026, 11, 28, 12, tzinfo=UTC),
            {
                Phase.OPENING_SOON: "2026-11-28T21:30+01:00",
                Phase.OPEN: "2026-11-28T22:00+01:00",
                Phase.CLOSING_SOON: "2026-11-29T03:30+01:00",
                Phase.CLOSED: "2026-11-29T04:00+01:00",
            },
        ),
        # Summer time ends at 03:00 CEST on Sunday 25 Oct 2026: opens 22:00
        # CEST, and six hours later it is 03:00 CET.
        (
            datetime(2026, 10, 24, 12, tzinfo=UTC),
            {
                Phase.OPENING_SOON: "2026-10-24T21:30+02:00",
                Phase.OPEN: "2026-10-24T22:00+02:00",
                Phase.CLOSING_SOON: "2026-10-25T02:30+01:00",
                Phase.CLOSED: "2026-10-25T03:00+01:00",
            },
        ),
        # Summer time starts at 02:00 CET on Sunday 29 Mar 2026: opens 22:00
        # CET, and six hours later it is 05:00 CEST.
        (
            datetime(2026, 3, 28, 12, tzinfo=UTC),
            {
                Phase.OPENING_SOON: "2026-03-28T21:30+01:00",
                Phase.OPEN: "2026-03-28T22:00+01:00",
                Phase.CLOSING_SOON: "2026-03-29T04:30+02:00",
                Phase.CLOSED: "2026-03-29T05:00+02:00",
            },
        ),
        # The weekend after the change: 22:00 local again, now in CET.
        (
            datetime(2026, 10, 31, 12, tzinfo=UTC),
            {
                Phase.OPENING_SOON: "2026-10-31T21:30+01:00",
                Phase.OPEN: "2026-10-31T22:00+01:00",
                Phase.CLOSING_SOON: "2026-11-01T03:30+01:00",
                Phase.CLOSED: "2026-11-01T04:00+01:00",
            },
        ),
    ],
)
def test_notices_come_due_at_the_right_local_times_across_dst(
    saturday: datetime, expected: dict[Phase, str]
) -> None:
    seen = first_seen(weekend(), saturday, hours=20)
    assert {p: t.isoformat(timespec="minutes") for p, t in seen.items()} == {
        p: local(t).isoformat(timespec="minutes") for p, t in expected.items()
    }


def test_an_rrule_window_keeps_local_time_across_dst() -> None:
    window = weekend(cron=None, rrule="FREQ=WEEKLY;BYDAY=SA;BYHOUR=22;BYMINUTE=0")
    summer = window.next_start(datetime(2026, 10, 20, tzinfo=UTC))
    winter = window.next_start(summer + timedelta(hours=1))
    assert summer.astimezone(BERLIN).isoformat() == "2026-10-24T22:00:00+02:00"
    assert winter.astimezone(BERLIN).isoformat() == "2026-10-31T22:00:00+01:00"
    assert window.open_until(summer + timedelta(hours=5)) == summer + timedelta(hours=6)


def test_a_window_needs_exactly_one_schedule_and_an_endless_rrule() -> None:
    with pytest.raises(PolicyError, match="exactly one of `cron` and `rrule`"):
        parse_policy("windows: [{name: w, duration: 1h}]")
    with pytest.raises(PolicyError, match="drop COUNT and UNTIL"):
        parse_policy("windows: [{name: w, duration: 1h, rrule: 'FREQ=DAILY;COUNT=3'}]")
    with pytest.raises(PolicyError, match="is not an RRULE"):
        parse_policy("windows: [{name: w, duration: 1h, rrule: 'FREQ=SOMETIMES'}]")


def test_a_short_window_says_open_before_closing_soon() -> None:
    short = weekend(duration=timedelta(minutes=20), closing_notice=timedelta(minutes=30))
    seen = first_seen(short, datetime(2026, 11, 28, 20, tzinfo=UTC), hours=2)
    assert seen[Phase.OPEN] < seen[Phase.CLOSING_SOON] < seen[Phase.CLOSED]
    assert seen[Phase.CLOSING_SOON] - seen[Phase.OPEN] == timedelta(minutes=10)


def test_a_notice_missed_while_no_process_ran_is_not_sent_late() -> None:
    # The bot comes up at 23:00, an hour into the window: "open" is due,
    # "opening soon" is not.
    now = datetime(2026, 11, 28, 22, 0, tzinfo=UTC)
    assert [n.phase for n in due_notices(weekend(), now)] == [Phase.OPEN]


# --- notices in Slack, once, with the scheduled and active checkpoints --------


@pytest.fixture
def clock() -> ManualClock:
    # Friday 27 Nov 2026, 12:00 UTC: the weekend window opens tomorrow 22:00 CET.
    return ManualClock(datetime(2026, 11, 27, 12, tzinfo=UTC))


@pytest.fixture
def replicas(
    tmp_path: Path, clock: ManualClock
) -> Iterator[tuple[AppContext, AppContext, FakeSlackApi]]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    settings = replace(
        settings_for(tmp_path),
        policy_files=(policy,),
        slack=SlackConfig(changes_channel=CHANNEL),
    )
    with FakeSlackApi() as api:
        env = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_API_URL": api.api_url}
        one = build_context(settings, env=env, clock=clock, huey_kind="memory")
        two = build_context(settings, env=env, clock=clock, huey_kind="memory")
        for ctx in (one, two):
            assert isinstance(ctx.notifier, ThreadNotifier)
            ctx.notifier.pacer = ChannelPacer(rate=1000.0, burst=1000)
        try:
            yield one, two, api
        finally:
            one.close()
            two.close()


def notices(api: FakeSlackApi) -> list[str]:
    return [
        str(c.body["text"])
        for c in api.of("chat.postMessage")
        if c.body.get("channel") == CHANNEL and "Change window" in str(c.body.get("text"))
    ]


def test_each_notice_goes_out_once_with_what_it_is_about(
    replicas: tuple[AppContext, AppContext, FakeSlackApi], clock: ManualClock
) -> None:
    one, two, api = replicas
    out = request_checkpoint(one, "WEB01", reason="KB5044284", requester="U0ALICE")
    assert out.change.state == "scheduled" and out.job_id is not None
    opens = datetime(2026, 11, 28, 21, 0, tzinfo=UTC)  # 22:00 CET
    tasks = [WindowNotices(one), WindowNotices(two)]

    def tick_both(at: datetime) -> None:
        clock.advance(at - clock())
        for task in tasks:
            task.tick(clock())
            task.tick(clock())

    tick_both(opens - timedelta(hours=2))
    assert notices(api) == []
    tick_both(opens - timedelta(minutes=20))
    assert len(notices(api)) == 1 and "opens soon" in notices(api)[0]
    soon = next(c for c in api.of("chat.postMessage") if "opens soon" in str(c.body["text"]))
    assert out.change.ref in str(soon.body["blocks"])
    assert "Sat 2026-11-28 22:00 Europe/Berlin" in str(soon.body["blocks"])
    assert "1 scheduled checkpoint runs when it opens" in str(soon.body["blocks"])

    tick_both(opens)
    assert len(notices(api)) == 2 and "is open" in notices(api)[1]
    # The scheduled checkpoint runs now, checked against the policy once more.
    assert one.runner.run(out.job_id).status == "succeeded"
    active = show_change(one, out.change.ref)
    assert active.state == "active"

    tick_both(opens + timedelta(hours=5, minutes=40))
    assert len(notices(api)) == 3 and "closes soon" in notices(api)[2]
    closing = next(c for c in api.of("chat.postMessage") if "closes soon" in str(c.body["text"]))
    buttons = [
        el["action_id"]
        for block in closing.body["blocks"]
        if block["type"] == "actions"
        for el in block["elements"]
    ]
    assert buttons == ["checkpoint:rollback", "checkpoint:merge", "checkpoint:extend"]
    # Each button says what it is for, on the change as the notice shows it.
    values = [
        el["value"]
        for block in closing.body["blocks"]
        if block["type"] == "actions"
        for el in block["elements"]
    ]
    assert values == [
        f"{active.ref}:{action}:v{active.version}" for action in ("rollback", "merge", "extend")
    ]

    tick_both(opens + timedelta(hours=6, minutes=5))
    assert len(notices(api)) == 4 and "closed" in notices(api)[3]
    closed = next(c for c in api.of("chat.postMessage") if "closed" in str(c.body["text"]))
    text = str(closed.body["blocks"])
    assert "*Checkpoints taken*\\n1" in text and "Still holding a checkpoint" in text

    tick_both(opens + timedelta(hours=8))
    assert len(notices(api)) == 4


def test_a_scheduled_change_that_no_longer_passes_is_refused_when_the_window_opens(
    replicas: tuple[AppContext, AppContext, FakeSlackApi], clock: ManualClock
) -> None:
    one, _two, _api = replicas
    out = request_checkpoint(one, "WEB01", reason="KB5044284", requester="U0ALICE")
    assert out.change.state == "scheduled" and out.job_id is not None
    # Before it opens, someone takes checkpoints of WEB01 by hand: three, the
    # shipped checkpoint_count maximum.
    host = one.host_for(out.change.host)
    for index in range(3):
        host.create_checkpoint(out.change.vm_id, f"by hand {index}")
    clock.advance(datetime(2026, 11, 28, 21, 0, tzinfo=UTC) - clock())
    one.runner.run(out.job_id)
    change = show_change(one, out.change.ref)
    assert change.state == "denied"
    assert "re-checked before running" in change.events[-1].message
