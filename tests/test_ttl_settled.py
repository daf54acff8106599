"""A TTL notice follows what it is about: once the checkpoint a reminder
DM (or an expiry notice) offered buttons for is kept & merged, rolled
back, merged automatically or extended, by whoever and from wherever, the
message is updated in place (chat.update on the channel and ts Slack
answered the post with) to say what happened, with no buttons left to
click. The notices are posted by the real TTL chaser on a running bot;
every click is a signed request, every message is checked as Slack would
(`checked_bot`). Migration 0017 adds and drops the table that remembers
where each notice was posted."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel, select

from bot.changes.batch_views import BatchEventView
from bot.changes.record import events_of, get_change
from bot.changes.views import ChangeView
from bot.notify.ttl_notices import Outcome, digest
from bot.service import Selection, create_batch, show_batch, show_change
from bot.service.ttl_chase import TTLChaser
from bot.store.db import session_scope
from bot.store.migrate import downgrade, upgrade
from bot.store.tables.ttl_notices import TTLNotice
from templates import Renderer
from templates.blocks import SlackRenderer
from tests.migration_support import BACKENDS, engine_at
from tests.slack_support import Call, RunningBot
from tests.test_slack_flow import (
    button,
    checked_bot,
    command,
    quiet_click,
    root_button,
    roots,
    shown,
)
from tests.test_slack_http import wait_state
from tests.test_ttl_chase import STAGING_AUTO_MERGE

ALICE, BOB = "U0ALICE", "U0BOB"
# Where the fake Web API says a message posted to U0ALICE landed: her DM.
ALICES_DM = "D0ALICE"


def _token(instant: datetime) -> str:
    """Slack's date token for `instant`, as the bot writes it (templates/slack_times.py)."""
    fallback = f"{instant:%Y-%m-%d %H:%M} UTC"
    return f"<!date^{int(instant.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def _active(bot: RunningBot, vm: str) -> str:
    """`vm`'s checkpoint asked for by alice in #ops, once it is taken: its ref."""
    command(bot, f"create {vm} --ttl 24h --reason KB5044284 patch")
    return wait_state(bot, vm, "active", timeout=30).ref


def _expiry(bot: RunningBot, ref: str) -> datetime:
    expires = show_change(bot.ctx, ref).expires_at
    assert expires is not None
    return expires


def _posts_to(calls: list[Call], user: str) -> list[Call]:
    return [c for c in calls if c.method == "chat.postMessage" and c.body["channel"] == user]


def _remind(bot: RunningBot, expires: datetime) -> Call:
    """The chaser's tick half an hour before `expires`: alice's reminder DM."""
    before = len(_posts_to(bot.api.calls, ALICE))
    TTLChaser(bot.ctx).tick(expires - timedelta(minutes=30))
    calls = bot.api.wait_for(lambda cs: len(_posts_to(cs, ALICE)) > before, 30)
    dm = _posts_to(calls, ALICE)[-1]
    assert dm.answer is not None and dm.answer["channel"] == ALICES_DM
    return dm


def _updates_of(calls: list[Call], posted: Call) -> list[Call]:
    """The chat.update calls on the message `posted` landed as."""
    assert posted.answer is not None
    where = (posted.answer["channel"], posted.answer["ts"])
    return [
        c
        for c in calls
        if c.method == "chat.update" and (c.body.get("channel"), c.body.get("ts")) == where
    ]


def _updated(bot: RunningBot, posted: Call, words: str, timeout: float = 30) -> dict[str, Any]:
    """Wait for an update of `posted` that says `words`; that update."""
    calls = bot.api.wait_for(
        lambda cs: any(words in shown(c.body) for c in _updates_of(cs, posted)), timeout
    )
    return next(c.body for c in _updates_of(calls, posted) if words in shown(c.body))


def _actions(body: dict[str, Any]) -> list[str]:
    return [
        str(el.get("action_id"))
        for b in body.get("blocks", [])
        if b.get("type") == "actions"
        for el in b.get("elements", [])
    ]


def _settle_threads(bot: RunningBot) -> None:
    """Every sync the record implies, done (the outbox drained and flushed)."""
    notifier: Any = bot.ctx.notifier
    notifier.drain()
    notifier.flush()


def _wave_taken(bot: RunningBot) -> Any:
    """Alice's wave of STG-WEB01 and WEB02 (24h), both checkpoints taken."""
    out = create_batch(
        bot.ctx,
        Selection.of(["STG-WEB01", "WEB02"]),
        reason="KB5044284 wave",
        requester=ALICE,
        channel="C0OPS",
        ttl="24h",
    )
    for o in out.outcomes:
        assert o.job_id is not None
        assert bot.ctx.ledger.wait(o.job_id, timeout=30).state == "succeeded"
    return out


def test_a_reminder_dm_says_who_kept_and_merged_it_and_keeps_no_buttons(tmp_path: Path) -> None:
    with checked_bot(tmp_path, "") as bot:
        ref = _active(bot, "STG-WEB01")
        dm = _remind(bot, _expiry(bot, ref))
        assert _actions(dm.body) == [
            "checkpoint:rollback",
            "checkpoint:merge",
            "checkpoint:extend",
        ]
        # The reminder's own note moved the record, not the checkpoint: the
        # DM is left as it is.
        _settle_threads(bot)
        assert _updates_of(bot.api.calls, dm) == []

        # bob keeps it, from the thread's card.
        keep = root_button(bot, ref, "checkpoint:merge")
        quiet_click(bot, "checkpoint:merge", keep, BOB)
        wait_state(bot, "STG-WEB01", "merged", timeout=30)
        after = _updated(bot, dm, f"{ref} was kept & merged by <@{BOB}>")
        assert _actions(after) == []
        assert after["text"].startswith(f"{ref} was kept & merged by")
        assert "STG-WEB01" in shown(after)


def _expire(bot: RunningBot, expires: datetime) -> Call:
    """The chaser's tick a minute after `expires`: the channel's notice."""
    TTLChaser(bot.ctx).tick(expires + timedelta(minutes=1))
    calls = bot.api.wait_for(
        lambda cs: [c for c in _posts_to(cs, "C0OPS") if "expired" in str(c.body["text"])], 30
    )
    return next(c for c in _posts_to(calls, "C0OPS") if "expired" in str(c.body["text"]))


def test_a_reminder_dm_says_it_has_expired_once_it_has_and_keeps_its_buttons(
    tmp_path: Path,
) -> None:
    """Seen: "CHG-0002: the checkpoint of STG-APP01 expires in 45m … Decide
    before it expires" stayed in alice's DM after the channel was told it
    had expired. Nobody decided, so the buttons stay; the words follow."""
    with checked_bot(tmp_path, "") as bot:
        ref = _active(bot, "STG-WEB01")
        expires = _expiry(bot, ref)
        dm = _remind(bot, expires)
        assert "expires in 30m" in str(dm.body["text"])
        notice = _expire(bot, expires)
        overdue = _updated(bot, dm, f"{ref}: the checkpoint of STG-WEB01 has expired")
        assert "expires in" not in shown(overdue) and _token(expires) in shown(overdue)
        assert _actions(overdue) == _actions(dm.body)
        # Its buttons act: they are drawn for the change as it is now.
        keep = button(overdue, "checkpoint:merge")
        assert keep is not None
        reply, _key = bot.slack.click("checkpoint:merge", keep, user=ALICE, channel=ALICES_DM)
        assert reply.status == 200
        wait_state(bot, "STG-WEB01", "merged", timeout=30)
        merged = _updated(bot, dm, f"{ref} was kept & merged by <@{ALICE}>")
        assert _actions(merged) == []
        # The channel's own notice said "has expired" from the start: it was
        # updated only for the merge.
        _updated(bot, notice, f"{ref} was kept & merged by <@{ALICE}>")
        _settle_threads(bot)
        updates = [str(u.body["text"]) for u in _updates_of(bot.api.calls, notice)]
        assert updates and all("kept & merged" in text for text in updates), updates


def test_a_notice_remembered_by_an_earlier_release_is_not_redrawn_for_nothing(
    tmp_path: Path,
) -> None:
    """Its key and snapshot did not cover the expiry: the first sync after
    the upgrade brings the key up to date without touching the message."""
    with checked_bot(tmp_path, "") as bot:
        ref = _active(bot, "STG-WEB01")
        expires = _expiry(bot, ref)
        dm = _remind(bot, expires)
        _settle_threads(bot)
        change = show_change(bot.ctx, ref)
        with session_scope(bot.ctx.engine) as s:
            notice = s.exec(select(TTLNotice)).one()
            old = [(change.id, change.state, expires.astimezone(UTC).isoformat())]
            notice.shown = hashlib.sha256(json.dumps(old).encode()).hexdigest()
            notice.about = {str(change.id): {"state": change.state, "expires_at": old[0][2]}}
            s.add(notice)
        bot.ctx.notifier.changed(change.id)
        _settle_threads(bot)
        assert _updates_of(bot.api.calls, dm) == []
        expected = digest([_with_events(bot, ref)])
        with session_scope(bot.ctx.engine) as s:
            assert s.exec(select(TTLNotice)).one().shown == expected


def _with_events(bot: RunningBot, ref: str) -> ChangeView:
    change_id = show_change(bot.ctx, ref).id
    with session_scope(bot.ctx.engine) as s:
        return ChangeView.of(get_change(s, change_id), events_of(s, change_id))


def test_a_wave_reminder_says_its_checkpoints_have_expired_with_its_buttons(
    tmp_path: Path,
) -> None:
    with checked_bot(tmp_path, "") as bot:
        out = _wave_taken(bot)
        members = show_batch(bot.ctx, out.batch.ref).members
        soonest = min(_expiry(bot, m.change) for m in members)
        dm = _remind(bot, soonest)
        _expire(bot, soonest)
        overdue = _updated(bot, dm, f"{out.batch.ref}: the checkpoints of 2 VMs have expired")
        assert _actions(overdue) == ["checkpoint:wave_merge", "checkpoint:wave_rollback"]
        assert button(overdue, "checkpoint:wave_merge") == button(dm.body, "checkpoint:wave_merge")


def test_a_reminder_dm_says_the_new_expiry_when_someone_else_extends_it(tmp_path: Path) -> None:
    with checked_bot(tmp_path, "") as bot:
        ref = _active(bot, "STG-WEB01")
        first = _expiry(bot, ref)
        dm = _remind(bot, first)
        said = shown(command(bot, f"extend {ref} 12h", user=BOB))
        assert "CHG-0001" in said
        later = _expiry(bot, ref)
        assert later > first
        after = _updated(bot, dm, f"{ref} was extended to {_token(later)} by <@{BOB}>")
        assert _actions(after) == []
        assert show_change(bot.ctx, ref).state == "active"
        # The thread's card says so too: its last step is the extension,
        # not the create before it.
        bot.api.wait_for(
            lambda cs: f"*Last:* extended by <@{BOB}>" in shown(roots(cs, ref)[-1].body), 30
        )


def test_a_rollback_from_the_dm_then_a_merge_from_the_thread_each_update_it(
    tmp_path: Path,
) -> None:
    """The DM's own Roll back (clicked in alice's DM) settles the reminder
    it is on; it says so, and again once the checkpoint is kept & merged."""
    with checked_bot(tmp_path, "") as bot:
        ref = _active(bot, "STG-WEB01")
        dm = _remind(bot, _expiry(bot, ref))
        back = button(dm.body, "checkpoint:rollback")
        assert back is not None
        reply, _key = bot.slack.click("checkpoint:rollback", back, user=ALICE, channel=ALICES_DM)
        assert reply.status == 200
        wait_state(bot, "STG-WEB01", "rolled_back", timeout=30)
        rolled = _updated(bot, dm, f"{ref} was rolled back by <@{ALICE}>")
        assert _actions(rolled) == []
        assert "still holds its checkpoint" in shown(rolled)

        # The root's Keep & merge as drawn once rolled back: the active
        # root's is out of date, and a click on it is refused.
        bot.api.wait_for(lambda cs: str(roots(cs, ref)[-1].body["text"]).endswith("— rolled back"))
        keep = root_button(bot, ref, "checkpoint:merge")
        quiet_click(bot, "checkpoint:merge", keep, ALICE)
        wait_state(bot, "STG-WEB01", "merged", timeout=30)
        merged = _updated(bot, dm, f"{ref} was kept & merged by <@{ALICE}>")
        assert _actions(merged) == []


def test_an_automatic_merge_updates_the_reminder_and_the_expiry_notice(tmp_path: Path) -> None:
    with checked_bot(tmp_path, STAGING_AUTO_MERGE) as bot:
        ref = _active(bot, "STG-WEB01")
        expires = _expiry(bot, ref)
        dm = _remind(bot, expires)
        # Past the expiry and its 30-minute grace: the channel is told, and
        # the checkpoint nobody decided on is kept & merged.
        TTLChaser(bot.ctx).tick(expires + timedelta(hours=1))
        calls = bot.api.wait_for(
            lambda cs: [c for c in _posts_to(cs, "C0OPS") if "has expired" in str(c.body["text"])]
        )
        notice = next(c for c in _posts_to(calls, "C0OPS") if "has expired" in str(c.body["text"]))
        assert "checkpoint:merge" in _actions(notice.body)
        wait_state(bot, "STG-WEB01", "merged", timeout=30)
        words = f"{ref} was kept & merged automatically"
        for message in (dm, notice):
            assert _actions(_updated(bot, message, words)) == []


def test_a_wave_reminder_says_what_became_of_each_vm_and_keeps_no_buttons_once_all_are(
    tmp_path: Path,
) -> None:
    with checked_bot(tmp_path, "") as bot:
        out = _wave_taken(bot)
        members = show_batch(bot.ctx, out.batch.ref).members
        dm = _remind(bot, min(_expiry(bot, m.change) for m in members))
        assert _actions(dm.body) == ["checkpoint:wave_merge", "checkpoint:wave_rollback"]

        keep_all = button(dm.body, "checkpoint:wave_merge")
        assert keep_all is not None
        reply, _key = bot.slack.click(
            "checkpoint:wave_merge", keep_all, user=ALICE, channel=ALICES_DM
        )
        assert reply.status == 200
        for m in members:
            wait_state(bot, m.vm_name, "merged", timeout=30)
        settled = [f"{m.change} was kept & merged by <@{ALICE}>" for m in members]
        after = _updated(bot, dm, settled[-1])
        # The last update says every member's end (whichever was last).
        calls = bot.api.wait_for(
            lambda cs: all(w in shown(_updates_of(cs, dm)[-1].body) for w in settled)
        )
        last = _updates_of(calls, dm)[-1].body
        assert _actions(after) == [] and _actions(last) == []
        assert "BAT-0001" in last["text"]


def test_a_wave_reminder_keeps_its_buttons_for_the_members_still_held(tmp_path: Path) -> None:
    """Seen: one member merged from its own thread, and the wave's reminder
    lost Keep & merge all and Roll back all, though the other member still
    held its checkpoint and expired as soon; the requester had to find the
    card. The update now keeps the wave's buttons, counted for what the
    wave still holds, until every member is settled."""
    with checked_bot(tmp_path, "") as bot:
        out = _wave_taken(bot)
        members = {m.vm_name: m for m in show_batch(bot.ctx, out.batch.ref).members}
        dm = _remind(bot, min(_expiry(bot, m.change) for m in members.values()))

        first = members["STG-WEB01"].change
        command(bot, f"merge {first}")
        wait_state(bot, "STG-WEB01", "merged", timeout=30)
        partly = _updated(bot, dm, f"{first} was kept & merged by <@{ALICE}>")
        assert "1 of 2 checkpoints settled" in partly["text"]
        assert _actions(partly) == ["checkpoint:wave_merge", "checkpoint:wave_rollback"]
        assert "Keep & merge all (1)" in shown(partly) and "Roll back all (1)" in shown(partly)
        assert "are gone" not in shown(partly)

        # Its Keep & merge all as updated: drawn for WEB02 alone.
        keep_rest = button(partly, "checkpoint:wave_merge")
        assert keep_rest is not None
        reply, _key = bot.slack.click(
            "checkpoint:wave_merge", keep_rest, user=ALICE, channel=ALICES_DM
        )
        assert reply.status == 200
        wait_state(bot, "WEB02", "merged", timeout=30)
        last = _updated(bot, dm, "every checkpoint of this reminder is settled")
        assert _actions(last) == []


# --- a big wave fits one message ---------------------------------------------------------


def test_a_wave_of_sixty_vms_is_told_within_slacks_limits() -> None:
    """The settled reminder of a 60-VM wave and its "Scheduled" reply, each
    VM at its own time, render as Block Kit Slack takes (the renderer checks
    the blocks, their texts and the message's budget)."""
    slack = SlackRenderer(Renderer())
    at = datetime(2026, 11, 28, 22, 0, tzinfo=UTC)
    names = [f"VERY-LONG-VM-NAME-{n:02d}-" + "X" * 40 for n in range(60)]
    outcomes = [
        Outcome(_member(n, name, "merged" if n % 2 else "active", at),
            "merged" if n % 2 else "unchanged", by="U0BOB")
        for n, name in enumerate(names)
    ]  # fmt: skip
    settled = slack.payload(
        "ttl_notice_settled", ref="BAT-0001", phase="reminder", outcomes=outcomes, wave=True
    )
    assert settled["text"] == "BAT-0001: 30 of 60 checkpoints settled since this reminder"
    # The 30 still held keep the wave's buttons, counted for them.
    assert _actions(settled) == ["checkpoint:wave_merge", "checkpoint:wave_rollback"]
    assert "Keep & merge all (30)" in shown(settled)
    members = [
        {"change_id": n, "ref": f"CHG-{n:04d}", "vm": name, "asked": False,
         "at": (at + timedelta(hours=n)).isoformat()}
        for n, name in enumerate(names)
    ]  # fmt: skip
    event = BatchEventView(9, at, "bot", "members_scheduled", "…", {"members": members})
    scheduled = slack.payload("batch_event", b=_Wave("BAT-0001"), e=event)
    assert scheduled["text"] == "BAT-0001: Scheduled"


def _member(n: int, name: str, state: str, at: datetime) -> ChangeView:
    return ChangeView(
        id=n, ref=f"CHG-{n:04d}", action="create", state=state, vm_name=name,
        vm_id=f"00000000-0000-4000-8000-{n:012d}", host="HV01", checkpoint_type="production",
        reason="KB5044284 wave", requester=ALICE, source="slack", created_at=at,
        updated_at=at, ttl_seconds=86400, expires_at=at, checkpoint_id=None,
        checkpoint_name=None, decision={},
    )  # fmt: skip


@dataclass(frozen=True)
class _Wave:
    """What the batch_event template reads of a wave: its ref."""

    ref: str


# --- migration 0017 -------------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def engine_before_0017(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A database at schema 0016 (before the table), on each backend."""
    with engine_at(request, tmp_path, "0016") as engine:
        yield engine


def test_0017_adds_the_ttl_notice_table_as_the_model_has_it_and_goes_back(
    engine_before_0017: Engine,
) -> None:
    engine = engine_before_0017
    assert "ttl_notice" not in inspect(engine).get_table_names()
    upgrade(engine, "0017")
    assert "ttl_notice" in inspect(engine).get_table_names()
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert [d for d in diff if "ttl_notice" in repr(d)] == []
    downgrade(engine, "0016")
    assert "ttl_notice" not in inspect(engine).get_table_names()
    upgrade(engine, "0017")
    assert "ttl_notice" in inspect(engine).get_table_names()
