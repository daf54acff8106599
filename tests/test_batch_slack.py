"""`/checkpoint batch BAT-n` through Bolt: a signed slash command to the
running bot answers with the wave's compact card, Block Kit checked against
slack_sdk's models and Slack's limits (tests/slack_support.py)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from bot.notify import ThreadNotifier
from bot.service import Selection, create_batch, list_batches, show_batch
from bot.store.db import session_scope
from bot.store.models import Change
from handlers.grammar import BatchRequest, CreateRequest, GrammarError, WaveRequest, parse
from handlers.grammar.requests import WithdrawRequest
from tests.slack_support import RunningBot
from tests.test_slack_flow import (
    button,
    card_button,
    checked_bot,
    click,
    command,
    home_of,
    quiet_click,
    roots,
    shown,
    wave_replies,
)
from tests.test_slack_http import wait_state


def _wave_taken(
    bot: RunningBot, selection: Selection, reason: str, channel: str | None = None
) -> None:
    """A wave asked for by U0ALICE, once each member it could take is taken."""
    out = create_batch(bot.ctx, selection, reason=reason, requester="U0ALICE", channel=channel)
    for o in out.outcomes:
        if o.job_id is not None:
            assert bot.ctx.ledger.wait(o.job_id, timeout=30).state == "succeeded"


def test_the_grammar_takes_a_batch_id() -> None:
    assert parse("batch bat-7") == BatchRequest("BAT-0007")
    assert parse("withdraw bat-7") == WithdrawRequest("BAT-0007")
    assert parse("withdraw chg-7") == WithdrawRequest("CHG-0007")
    try:
        parse("batch CHG-1")
    except GrammarError as exc:
        assert exc.message == (
            "CHG-0001 is one change, not a patch wave; /checkpoint status CHG-0001 shows it"
        )
    else:
        raise AssertionError("CHG-1 is not a batch")
    try:
        parse("batch web01")
    except GrammarError as exc:
        assert "'web01' is not a batch id" in exc.message and "BAT-0007" in exc.message
    else:
        raise AssertionError("web01 is not a batch")


def test_the_batch_card_shows_each_vm_its_state_and_why_one_was_refused(tmp_path: Path) -> None:
    with checked_bot(tmp_path, "") as bot:
        _wave_taken(bot, Selection.of(["CORP-DC01"], groups=["web-tier"]), "KB5044284 web wave")
        card = command(bot, "batch BAT-1")
        text = shown(card)
        assert "BAT-0001 — active" in text
        assert "3 of 3 done, 1 refused" in text
        assert "<@U0ALICE>" in text  # a person is a mention, not a bare id
        for vm in ("WEB01", "WEB02", "APP01"):
            assert f"*{vm}*" in text
        assert "USN rollback" in text  # CORP-DC01's refusal, in the policy's words
        assert "production taken" in text

        missing = command(bot, "batch BAT-9")
        assert "no batch BAT-0009" in shown(missing)

        # A member's own status names its wave: its steps are in the wave's
        # thread, not in a thread of its own.
        members = show_batch(bot.ctx, "BAT-1").members
        taken = next(m for m in members if m.state == "active")
        status = shown(command(bot, f"status {taken.change}"))
        assert "a member of the patch wave BAT-0001" in status
        assert "`/checkpoint batch BAT-0001` shows every member" in status
        assert "every step is a reply in this thread" not in status


def _replaced(bot: RunningBot, key: str) -> dict[str, Any]:
    """The answer that replaced the preview (its response_url, replace_original)."""
    calls = bot.api.wait_for(lambda cs: any(c.method == key for c in cs), 30)
    body = next(c.body for c in calls if c.method == key)
    assert body["replace_original"] is True and body["response_type"] == "ephemeral"
    return body


def test_the_grammar_makes_a_wave_of_several_vms_or_a_group() -> None:
    assert parse('create WEB01 WEB02 --reason "KB1"') == WaveRequest(("WEB01", "WEB02"), "KB1")
    assert parse("create --group web-tier --reason KB1 --ttl 6h") == WaveRequest(
        (), "KB1", group="web-tier", ttl_text="6h"
    )
    assert parse("create --cluster prod-cluster --tag tier=web --reason KB1") == WaveRequest(
        (), "KB1", tag="tier=web", cluster="prod-cluster"
    )
    # Words after one VM are still its reason.
    assert parse("create WEB01 patching KB1") == CreateRequest("WEB01", "patching KB1")
    try:
        parse("create --group web-tier")
    except GrammarError as exc:
        assert "a reason is required" in exc.message
    else:
        raise AssertionError("a wave needs a reason")


def test_a_wave_from_slack_preview_take_once_and_cancel(tmp_path: Path) -> None:
    with checked_bot(tmp_path, "") as bot:
        preview = command(bot, 'create CORP-DC01 --group web-tier --reason "KB5044284 web wave"')
        text = shown(preview)
        assert "4 VMs: 3 can be checkpointed, 1 is refused (CORP-DC01: " in text
        take = button(preview, "checkpoint:wave_take")
        assert take is not None and "Take 3 checkpoints" in text
        assert list_batches(bot.ctx) == []  # a preview records nothing

        reply, key = bot.slack.click("checkpoint:wave_take", take, user="U0ALICE")
        assert reply.status == 200
        card = shown(_replaced(bot, key))
        assert "BAT-0001" in card and "<@U0ALICE>" in card
        batch = show_batch(bot.ctx, "BAT-1")
        assert [m.vm_name for m in batch.members] == ["CORP-DC01", "WEB01", "WEB02", "APP01"]
        assert batch.source == "slack"

        # The same button again (a double click, a second tab): the same batch.
        reply, key = bot.slack.click("checkpoint:wave_take", take, user="U0ALICE")
        assert "BAT-0001" in shown(_replaced(bot, key))
        assert [b.ref for b in list_batches(bot.ctx)] == ["BAT-0001"]
        assert len(show_batch(bot.ctx, "BAT-1").members) == 4

        again = command(bot, "create --tag env=staging --reason staging")
        cancel = button(again, "checkpoint:wave_cancel")
        assert cancel is not None
        reply, key = bot.slack.click("checkpoint:wave_cancel", cancel, user="U0ALICE")
        assert "Nothing was recorded" in shown(_replaced(bot, key))
        assert [b.ref for b in list_batches(bot.ctx)] == ["BAT-0001"]


def test_a_wave_previewed_again_in_slack_names_the_changes_open_on_its_vms(
    tmp_path: Path,
) -> None:
    """A wave asked for again (after a timeout, say) would take a second
    checkpoint of each VM: its preview says which already have a change."""
    with checked_bot(tmp_path, "") as bot:
        _wave_taken(bot, Selection.of(["STG-WEB01", "STG-APP01"]), "KB5044284 staging")
        preview = command(bot, 'create WEB01 --group staging --reason "KB5044284 staging"')
        text = shown(preview)
        assert "Take 3 checkpoints" in text
        for vm, ref in (("STG-WEB01", "CHG-0001"), ("STG-APP01", "CHG-0002")):
            assert (
                f"*{vm}* on HV03 · can be checkpointed\\n      :warning: already open on it: "
                f"{ref} (active): this wave adds another checkpoint"
            ) in text, text
        assert text.count(":warning: already open on it") == 2


def test_the_requesters_own_card_of_a_wave_offers_no_approve_all(tmp_path: Path) -> None:
    """Take replaces the requester's private preview with the wave's card:
    it offered "Approve all", which only refuses them (seen in the
    playground). Everyone else's card offers it."""
    from tests.test_slack_flow import CREATE_NEEDS_APPROVAL

    with checked_bot(tmp_path, CREATE_NEEDS_APPROVAL) as bot:
        preview = command(bot, 'create --group web-tier --reason "KB5044284 web wave"')
        take = button(preview, "checkpoint:wave_take")
        assert take is not None
        reply, key = bot.slack.click("checkpoint:wave_take", take, user="U0ALICE")
        assert reply.status == 200
        own = _replaced(bot, key)
        assert "waits for approval" in shown(own)
        assert button(own, "checkpoint:wave_approve") is None
        approve_all = button(command(bot, "batch BAT-1", user="U0BOB"), "checkpoint:wave_approve")
        assert approve_all is not None and approve_all.startswith("BAT-0001:approve:")


def test_roll_back_all_from_the_card_waits_for_one_approver_then_keep_all(
    tmp_path: Path,
) -> None:
    with checked_bot(tmp_path, "") as bot:
        _wave_taken(bot, Selection.of(["WEB01", "STG-WEB01", "CORP-DC01"]), "KB5044284 wave")
        card = command(bot, "batch BAT-1")
        rollback = button(card, "checkpoint:wave_rollback")
        assert (
            rollback is not None
            and rollback.startswith("BAT-0001:rollback:")
            and "Roll back all (2)" in shown(card)
        )
        assert button(card, "checkpoint:wave_approve") is None  # nothing waits yet

        reply, key = bot.slack.click(
            "checkpoint:wave_rollback", rollback, user="U0ALICE", ephemeral=True
        )
        assert reply.status == 200
        asked = bot.api.wait_for(lambda cs: sum(c.method == key for c in cs) >= 2, 30)
        said = " ".join(shown(c.body) for c in asked if c.method == key)
        assert "Rollback waits for approval" in said
        assert "the most that any one of its members needs" in said

        # An approver's card (the asker's own offers no Approve all).
        card = command(bot, "batch BAT-1", user="U0BOB")
        approve_all = button(card, "checkpoint:wave_approve")
        assert (
            approve_all is not None
            and approve_all.startswith("BAT-0001:approve:")
            and "Approve all (2)" in shown(card)
        )
        # Approvers see the list before approving: on the card and in the confirm.
        assert "its rollback waits for approval" in shown(card)
        assert "You approve: WEB01 (rollback), STG-WEB01 (rollback)" in json.dumps(card)
        reply, key = bot.slack.click(
            "checkpoint:wave_approve", approve_all, user="U0BOB", ephemeral=True
        )
        assert reply.status == 200
        bot.api.wait_for(lambda cs: sum(c.method == key for c in cs) >= 2, 30)
        for member in show_batch(bot.ctx, "BAT-1").members:
            if member.state == "rolling_back":
                jobs = bot.ctx.ledger.jobs_of_change(member.change_id)
                bot.ctx.ledger.wait(jobs[-1].id or 0, timeout=30)
        assert show_batch(bot.ctx, "BAT-1").state.value == "rolled_back"

        card = command(bot, "batch BAT-1")
        keep = button(card, "checkpoint:wave_merge")
        assert (
            keep is not None
            and keep.startswith("BAT-0001:merge:")
            and button(card, "checkpoint:wave_rollback") is None
        )
        reply, key = bot.slack.click("checkpoint:wave_merge", keep, user="U0ALICE", ephemeral=True)
        assert reply.status == 200
        answers = bot.api.wait_for(lambda cs: sum(c.method == key for c in cs) >= 2, 30)
        assert "Merge of 2 VMs started" in " ".join(shown(c.body) for c in answers)


def test_the_wave_rollback_its_asker_takes_back_from_the_card_or_by_id(tmp_path: Path) -> None:
    """A wave's rollback waiting for an approver is its asker's to withdraw,
    as one change's is: the card offers Withdraw, saying what is then not
    rolled back; nobody else may; `/checkpoint withdraw BAT-n merge` takes
    back only a merge (none waits)."""
    with checked_bot(tmp_path, "") as bot:
        _wave_taken(bot, Selection.of(["WEB01", "STG-WEB01", "CORP-DC01"]), "KB5044284 wave")
        assert button(command(bot, "batch BAT-1"), "checkpoint:wave_withdraw") is None
        reply, key = bot.slack.click(
            "checkpoint:wave_rollback",
            card_button(bot, "BAT-0001", "checkpoint:wave_rollback", "U0ALICE"),
            user="U0ALICE",
            ephemeral=True,
        )
        assert reply.status == 200
        bot.api.wait_for(lambda cs: sum(c.method == key for c in cs) >= 2, 30)

        card = command(bot, "batch BAT-1")
        assert (button(card, "checkpoint:wave_withdraw") or "").startswith("BAT-0001:withdraw:")
        assert "Withdraw (2)" in shown(card)
        assert (
            "WEB01, STG-WEB01 are not rolled back; only whoever asked for it may withdraw it."
            in json.dumps(card)
        )
        none_waits = shown(command(bot, "withdraw BAT-1 merge"))
        assert "BAT-0001 has no merge waiting to withdraw" in none_waits
        refused = shown(
            click(
                bot,
                "checkpoint:wave_withdraw",
                card_button(bot, "BAT-0001", "checkpoint:wave_withdraw", "U0BOB"),
                user="U0BOB",
            )
        )
        assert "who asked for BAT-0001's rollback, may withdraw it" in refused

        reply, key = bot.slack.click(
            "checkpoint:wave_withdraw",
            card_button(bot, "BAT-0001", "checkpoint:wave_withdraw", "U0ALICE"),
            user="U0ALICE",
            ephemeral=True,
        )
        notice, after = _answers(bot, key, 2)
        assert "Withdrew 2 of BAT-0001: nothing runs for them" in shown(notice)
        assert button(after, "checkpoint:wave_withdraw") is None
        assert button(after, "checkpoint:wave_approve") is None
        assert (button(after, "checkpoint:wave_rollback") or "").startswith("BAT-0001:rollback:")
        members = show_batch(bot.ctx, "BAT-1").members
        assert sorted((m.vm_name, m.state, m.waiting) for m in members) == [
            ("CORP-DC01", "denied", None),
            ("STG-WEB01", "active", None),
            ("WEB01", "active", None),
        ]


def test_a_wave_has_one_thread_whose_root_is_its_card(tmp_path: Path) -> None:
    with checked_bot(tmp_path, "") as bot:
        _wave_taken(
            bot,
            Selection.of(["CORP-DC01"], groups=["web-tier"]),
            "KB5044284 web wave",
            channel="C0TEST",
        )
        assert isinstance(bot.ctx.notifier, ThreadNotifier)
        bot.ctx.notifier.drain()
        bot.ctx.notifier.flush()
        posts = bot.api.of("chat.postMessage")
        roots = [c for c in posts if not c.body.get("thread_ts")]
        # One root, the batch's card; no member posts a root or a reply of
        # its own (nothing failed), and the card is brought up to date. The
        # one reply is the wave's milestone: all its checkpoints taken.
        assert len(roots) == 1 and "BAT-0001" in shown(roots[0].body), [
            shown(c.body)[:80] for c in roots
        ]
        replies = [shown(c.body) for c in posts if c.body.get("thread_ts")]
        assert len(replies) == 1, replies
        assert ":checkered_flag: *Checkpoints of the wave finished*" in replies[0]
        assert "3 of 3 taken, 1 refused (asked by <@U0ALICE>)" in replies[0]
        # The card as it stands: its last update, or its root when every
        # member had ended before it was posted (nothing left to update).
        updates = [shown(c.body) for c in bot.api.of("chat.update")]
        card = updates[-1] if updates else shown(roots[0].body)
        assert "3 of 3 done, 1 refused" in card
        assert "BAT-0001 — active" in card


def test_a_members_failure_is_a_reply_in_the_waves_thread(tmp_path: Path) -> None:
    with checked_bot(tmp_path, "") as bot:
        # STG-APP01's VSS writers are broken (the demo's host model): a
        # production-only checkpoint of it fails; STG-WEB01's is taken.
        out = create_batch(
            bot.ctx,
            Selection.of(groups=["staging"]),
            reason="staging wave",
            requester="U0ALICE",
            checkpoint_type="production-only",
            channel="C0TEST",
        )
        for o in out.outcomes:
            if o.job_id is not None:
                bot.ctx.ledger.wait(o.job_id, timeout=30)
        batch = show_batch(bot.ctx, out.batch.ref)
        assert batch.state.value == "partly_failed", batch.members
        assert isinstance(bot.ctx.notifier, ThreadNotifier)
        bot.ctx.notifier.drain()
        bot.ctx.notifier.flush()
        posts = bot.api.of("chat.postMessage")
        roots = [c for c in posts if not c.body.get("thread_ts")]
        assert len(roots) == 1 and "BAT-0001" in shown(roots[0].body)
        replies = [c for c in posts if c.body.get("thread_ts")]
        # The failure once, then the milestone naming it and why.
        assert len(replies) == 2, [shown(c.body)[:80] for c in replies]
        assert "CHG-0002: create failed" in shown(replies[0].body)
        said = shown(replies[1].body)
        assert ":warning: *Checkpoints of the wave finished*" in said
        assert "1 of 2 taken, 1 failed: STG-APP01 — " in said
        # The card as it stands: its last update, or its root when both
        # members had ended before it was posted (nothing left to update).
        updates = [c.body for c in bot.api.of("chat.update")]
        card = shown(updates[-1] if updates else roots[0].body)
        # The failed member is not done (it was "2 of 2 done" until 2026-12-05).
        assert "partly failed" in card and "1 of 2 done, 1 failed" in card


def test_a_members_own_rollback_pings_its_approvers_in_the_waves_thread(tmp_path: Path) -> None:
    """A member has no thread of its own: a rollback asked for that VM
    alone is an "Approval needed" reply in its wave's thread (seen: the
    requester was told approvers were asked in the thread, and nothing was
    posted). Its Roll back on the card gives way to what waits, and a click
    on an older card's Roll back is answered: nothing new was asked."""
    with checked_bot(tmp_path, "") as bot:
        _wave_taken(bot, Selection.of(["WEB01", "WEB02"]), "KB5044284 wave", channel="C0TEST")
        web02 = next(m for m in show_batch(bot.ctx, "BAT-1").members if m.vm_name == "WEB02")
        before = command(bot, "batch BAT-1")
        assert button(before, "checkpoint:rollback") is not None

        asked = shown(command(bot, f"rollback {web02.change}", user="U0CAROL"))
        assert "approvers are asked in the thread of its wave, BAT-0001" in asked
        assert isinstance(bot.ctx.notifier, ThreadNotifier)
        bot.ctx.notifier.drain()
        bot.ctx.notifier.flush()
        replies = [c for c in bot.api.of("chat.postMessage") if c.body.get("thread_ts")]
        pings = [shown(c.body) for c in replies if "Approval needed" in shown(c.body)]
        assert len(pings) == 1 and "to roll back WEB02" in pings[0]

        card = command(bot, "batch BAT-1")
        text = shown(card)
        assert f"*WEB02* alone ({web02.change}): its rollback waits for approval" in text
        assert "asked by <@U0CAROL>" in text
        stale = next(
            el["value"]
            for b in before["blocks"]
            if b.get("type") == "actions"
            for el in b["elements"]
            if el.get("action_id") == "checkpoint:rollback" and web02.change in el["value"]
        )
        again = shown(click(bot, "checkpoint:rollback", stale, user="U0ALICE"))
        assert "its rollback already waits for approval, asked by <@U0CAROL>" in again
        assert "nothing new was asked" in again


def _token(instant: datetime) -> str:
    """Slack's date token for `instant`, as the bot writes it (templates/slack_times.py)."""
    fallback = f"{instant:%Y-%m-%d %H:%M} UTC"
    return f"<!date^{int(instant.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def _answers(bot: RunningBot, key: str, count: int) -> list[dict[str, Any]]:
    calls = bot.api.wait_for(lambda cs: len([c for c in cs if c.method == key]) >= count, 30)
    return [c.body for c in calls if c.method == key]


def test_a_wave_at_a_time_is_read_in_the_requesters_zone_shown_as_a_date_and_withdrawn(
    tmp_path: Path,
) -> None:
    """`--at` in Slack is read in the requester's own time zone (users.info
    says Europe/Berlin), and every time shown back is Slack's date token,
    so each reader sees it in theirs."""
    tonight = datetime(2026, 12, 10, 21, 0, tzinfo=UTC)  # 22:00 in Berlin
    with checked_bot(tmp_path, "") as bot:
        bot.api.user_tz["U0ALICE"] = "Europe/Berlin"
        preview = command(
            bot, 'create --group web-tier --at "2026-12-10 22:00" --reason "KB5044284 web wave"'
        )
        text = shown(preview)
        assert f"Taken at *{_token(tonight)}* (2026-12-10 22:00 Europe/Berlin, your Slack " in text
        assert list_batches(bot.ctx) == []
        take = button(preview, "checkpoint:wave_take")
        assert take is not None
        reply, key = bot.slack.click("checkpoint:wave_take", take, user="U0ALICE")
        assert reply.status == 200
        card = _replaced(bot, key)
        assert "BAT-0001 — scheduled" in shown(card) and _token(tonight) in shown(card)
        batch = show_batch(bot.ctx, "BAT-1")
        assert batch.run_at == tonight and {m.state for m in batch.members} == {"scheduled"}
        assert (button(card, "checkpoint:wave_withdraw") or "").startswith("BAT-0001:withdraw:")

        single = shown(command(bot, "create STG-WEB01 IIS upgrade --at 2026-12-10 23:30"))
        later = datetime(2026, 12, 10, 22, 30, tzinfo=UTC)
        assert f"scheduled for {_token(later)}, as you asked" in single
        assert "`/checkpoint withdraw CHG-0004` cancels it" in single
        # Its thread's root says when, too (the wave's members post no roots).
        posted = roots(bot.api.wait_for(lambda cs: roots(cs, "CHG-0004")), "CHG-0004")
        assert f":alarm_clock: runs at {_token(later)}, as its requester asked" in shown(
            posted[-1].body
        )

        windows = shown(command(bot, "windows"))
        assert f":alarm_clock: *BAT-0001* · WEB01, WEB02, APP01 · runs {_token(tonight)}" in windows
        assert f"*CHG-0004* · STG-WEB01 · runs {_token(later)} · asked by <@U0ALICE>" in windows
        home = home_of(bot, "U0ALICE")
        assert "Asked for at a time" in home and f"runs {_token(tonight)}" in home
        assert "Asked for at a time" not in home_of(bot, "U0BOB")

        refused = shown(
            click(
                bot,
                "checkpoint:wave_withdraw",
                card_button(bot, "BAT-0001", "checkpoint:wave_withdraw", "U0BOB"),
                user="U0BOB",
            )
        )
        assert "who asked for BAT-0001, may withdraw it" in refused
        reply, key = bot.slack.click(
            "checkpoint:wave_withdraw",
            card_button(bot, "BAT-0001", "checkpoint:wave_withdraw", "U0ALICE"),
            user="U0ALICE",
            ephemeral=True,
        )
        notice, after = _answers(bot, key, 2)
        assert "Withdrew 3 of BAT-0001: nothing runs for them" in shown(notice)
        # Withdrawn, as it is ("refused" until 2026-12-05: nobody refused it).
        assert "BAT-0001 — withdrawn" in shown(after) and "3 withdrawn" in shown(after)
        assert {m.state for m in show_batch(bot.ctx, "BAT-1").members} == {"withdrawn"}
        # The single change's root offers its requester a Withdraw.
        unschedule = button(posted[-1].body, "checkpoint:unschedule")
        assert unschedule is not None and unschedule.startswith("CHG-0004:unschedule:v")
        not_bobs = shown(click(bot, "checkpoint:unschedule", unschedule, user="U0BOB"))
        assert "who asked for it, may withdraw the scheduled checkpoint of CHG-0004" in not_bobs
        quiet_click(bot, "checkpoint:unschedule", unschedule, "U0ALICE")
        wait_state(bot, "STG-WEB01", "withdrawn")
        gone = shown(command(bot, "withdraw CHG-4"))
        assert "CHG-0004 is already withdrawn: there is nothing left to withdraw" in gone
        assert ":alarm_clock:" not in shown(command(bot, "windows"))

        # A wave is withdrawn by its id too.
        again = command(bot, 'create --tag env=staging --at "2026-12-11 22:00" --reason later')
        again_take = button(again, "checkpoint:wave_take")
        assert again_take is not None
        # Its card replaces the preview once every member is recorded.
        _replaced(bot, bot.slack.click("checkpoint:wave_take", again_take, user="U0ALICE")[1])
        wave2 = shown(command(bot, "withdraw bat-2"))
        assert "*BAT-0002*: you withdrew STG-WEB01, STG-APP01; nothing runs for them." in wave2
        assert {m.state for m in show_batch(bot.ctx, "BAT-2").members} == {"withdrawn"}


def test_an_at_outside_the_window_names_the_opening_in_the_readers_zone(tmp_path: Path) -> None:
    window = """
rules:
  change_window: {effect: schedule}
windows:
  - name: nightly
    rrule: "FREQ=DAILY;BYHOUR=22;BYMINUTE=0"
    duration: 4h
    timezone: Europe/Berlin
    scope: {tags: {env: prod}}
"""
    with checked_bot(tmp_path, window) as bot:
        bot.api.user_tz["U0ALICE"] = "Europe/Berlin"
        said = shown(command(bot, "create WEB01 KB1 --at 2026-12-10 12:00"))
        assert "--at 2026-12-10 12:00 Europe/Berlin is outside a change window" in said
        opening = datetime(2026, 12, 10, 21, 0, tzinfo=UTC)
        # (The quotes are JSON-escaped in the blocks, so the time is matched alone.)
        assert 'ask for --at "2026-12-10 22:00 Europe/Berlin"' in said
        assert f'2026-12-10 22:00 Europe/Berlin\\" ({_token(opening)}) or later' in said
        assert "nothing was recorded" in said
        bad = shown(command(bot, "create WEB01 KB1 --at soon"))
        assert "is not a date and time" in bad
        with session_scope(bot.ctx.engine) as s:
            assert s.exec(select(Change)).all() == []


def test_an_approver_sees_one_wave_with_its_vms_and_approves_all_from_the_app_home(
    tmp_path: Path,
) -> None:
    """Creating WEB01 needs an approver, STG-WEB01 nobody: the wave waits
    for one approval; an approver's App Home lists it once, with its VMs,
    one Approve all and the card to look at first."""
    policy = """
rules:
  approvals:
    overrides:
      - scope: {names: [WEB01]}
        params: {count: 1, actions: [create, rollback]}
"""
    with checked_bot(tmp_path, policy) as bot:
        preview = command(bot, 'create WEB01 STG-WEB01 --reason "KB5044284 web wave"')
        assert "2 VMs: 2 can be checkpointed after 1 approval from anyone" in shown(preview)
        assert "for the whole wave" in shown(preview)
        take = button(preview, "checkpoint:wave_take")
        assert take is not None
        _reply, key = bot.slack.click("checkpoint:wave_take", take, user="U0ALICE")
        card = _replaced(bot, key)
        assert "BAT-0001 — awaiting approval" in shown(card)
        # The requester's own copy: they never approve their wave.
        assert button(card, "checkpoint:wave_approve") is None

        home = home_of(bot, "U0BOB")
        assert "Awaiting your approval (1)" in home
        assert ":ocean: *BAT-0001* · a wave of 2 VMs: WEB01, STG-WEB01" in home
        assert "what its strictest member needs (0 of 1 so far)" in home
        assert '"checkpoint:approve"' not in home  # no per-VM approvals of the wave
        assert "You approve the create of: WEB01, STG-WEB01" in home
        assert "Awaiting your approval (0)" in home_of(bot, "U0ALICE")  # never the requester

        look = shown(click(bot, "checkpoint:wave_show", "BAT-0001", user="U0BOB"))
        assert "BAT-0001 — awaiting approval" in look and "*STG-WEB01*" in look
        bot.slack.click(
            "checkpoint:wave_approve",
            card_button(bot, "BAT-0001", "checkpoint:wave_approve", "U0BOB"),
            user="U0BOB",
            ephemeral=True,
        )
        for member in ("WEB01", "STG-WEB01"):
            wait_state(bot, member, "active")
        assert show_batch(bot.ctx, "BAT-1").state.value == "active"

        # The wave's milestones are replies in its one thread, each once.
        def milestones(calls: list[Any]) -> list[str]:
            return [
                shown(c.body)
                for c in calls
                if c.method == "chat.postMessage"
                and c.body.get("thread_ts")
                and str(c.body.get("text", "")).startswith("BAT-0001: ")
            ]

        said = milestones(bot.api.wait_for(lambda cs: len(milestones(cs)) >= 3, 30))
        assert ":bell: *Approval needed for the wave*" in said[0]
        assert "need 1 approval from anyone (not the requester)" in said[0]
        assert "WEB01, STG-WEB01" in said[0]
        assert ":+1: *Approved* · <@U0BOB>" in said[1]
        assert "2 of 2 taken (asked by <@U0ALICE>)" in said[2]
        time.sleep(0.5)
        assert len(milestones(bot.api.calls)) == 3


def _member_buttons(card: dict[str, Any], ref: str) -> dict[str, dict[str, Any]]:
    """The card's per-VM buttons of one member (by action_id)."""
    return {
        el["action_id"]: el
        for block in card.get("blocks", [])
        if block.get("type") == "actions"
        for el in block["elements"]
        if str(el.get("value", "")).startswith(f"{ref}:")
    }


def test_one_vm_of_a_wave_is_rolled_back_from_the_card_its_confirm_saying_what_is_lost(
    tmp_path: Path,
) -> None:
    with checked_bot(tmp_path, "") as bot:
        _wave_taken(
            bot,
            Selection.of(["WEB01", "STG-WEB01", "CORP-DC01"]),
            "KB5044284 wave",
            channel="C0TEST",
        )
        card = command(bot, "batch BAT-1")
        staging = show_batch(bot.ctx, "BAT-1").members[1]
        assert staging.vm_name == "STG-WEB01"
        mine = _member_buttons(card, staging.change)
        assert set(mine) == {"checkpoint:rollback", "checkpoint:merge", "checkpoint:extend"}
        confirm = mine["checkpoint:rollback"]["confirm"]
        assert confirm["title"]["text"] == "Roll back STG-WEB01?"
        assert (
            "Everything written to STG-WEB01 since the checkpoint was taken is lost"
            in (confirm["text"]["text"])
        )
        # The refused DC has no buttons of its own; WEB01 has its own too.
        assert _member_buttons(card, show_batch(bot.ctx, "BAT-1").members[2].change) == {}
        assert _member_buttons(card, show_batch(bot.ctx, "BAT-1").members[0].change)

        quiet_click(bot, "checkpoint:rollback", mine["checkpoint:rollback"]["value"], "U0ALICE")
        wait_state(bot, "STG-WEB01", "rolled_back")
        after = show_batch(bot.ctx, "BAT-1")
        assert [m.state for m in after.members] == ["active", "rolled_back", "denied"]
        assert after.state.value == "mixed"
        # The wave's root card, in its channel, follows: STG-WEB01's Roll back is gone.
        posted = bot.api.wait_for(
            lambda cs: any(
                c.method == "chat.update" and "rolled back" in shown(c.body) for c in cs
            ),
            30,
        )
        root = [c for c in posted if c.method == "chat.update"][-1].body
        assert "checkpoint:rollback" not in _member_buttons(root, staging.change)


def test_the_requesters_home_follows_the_wave_without_being_reopened(tmp_path: Path) -> None:
    """#17: a member's job ending re-publishes the Home of everyone its
    change concerns, as a lone change's does; the requester's shows the
    wave with its progress, though she never opened it."""
    with checked_bot(tmp_path, "") as bot:
        _wave_taken(
            bot,
            Selection.of(["CORP-DC01", "STG-WEB01", "WEB01"]),
            "KB5044284 wave",
            channel="C0TEST",
        )
        line = ":ocean: *BAT-0001* · a wave of 3 VMs · active — 2 of 2 done, 1 refused"

        def alices(calls: list[Any]) -> list[str]:
            return [
                shown(c.body["view"])
                for c in calls
                if c.method == "views.publish" and c.body.get("user_id") == "U0ALICE"
            ]

        homes = alices(bot.api.wait_for(lambda cs: any(line in h for h in alices(cs)), 30))
        current = next(h for h in homes if line in h)
        assert "Your open changes (2)" in current
        assert "WEB01 on HV01 · active" in current and "STG-WEB01 on HV03 · active" in current
        # Never opened: every publish was the refresher's.
        assert not [c for c in bot.api.calls if c.method == "views.open"]


# A prod create waits for one approver; APP01 (prod) is taken only in its
# window, which opens on Saturday 22:00 UTC (T0 is the Tuesday before).
APP01_WINDOW = """
rules:
  approvals:
    overrides:
      - scope: {tags: {env: prod}}
        params: {count: 1, actions: [create, rollback]}
  change_window: {effect: schedule}
windows:
  - name: app-maintenance
    cron: "0 22 * * 6"
    duration: 4h
    timezone: UTC
    scope: {names: [APP01]}
"""


def test_a_waves_thread_says_once_which_members_wait_for_their_window_and_until_when(
    tmp_path: Path,
) -> None:
    """Approved, WEB01 and WEB02 are taken at once and APP01 waits for its
    change window: the wave's thread says so, once, with the time as a
    Slack date token (the card alone said "scheduled", with no time)."""
    opening = datetime(2026, 11, 28, 22, 0, tzinfo=UTC)
    with checked_bot(tmp_path, APP01_WINDOW) as bot:
        preview = command(bot, 'create --group web-tier --reason "KB5044284 web wave"')
        take = button(preview, "checkpoint:wave_take")
        assert take is not None
        _reply, key = bot.slack.click("checkpoint:wave_take", take, user="U0ALICE")
        assert "BAT-0001 — awaiting approval" in shown(_replaced(bot, key))
        bot.slack.click(
            "checkpoint:wave_approve",
            card_button(bot, "BAT-0001", "checkpoint:wave_approve", "U0BOB"),
            user="U0BOB",
            ephemeral=True,
        )
        for vm in ("WEB01", "WEB02"):
            wait_state(bot, vm, "active", timeout=30)
        app01 = wait_state(bot, "APP01", "scheduled")

        def scheduled(calls: list[Any]) -> list[str]:
            return [
                shown(c.body)
                for c in calls
                if c.method == "chat.postMessage"
                and c.body.get("thread_ts")
                and str(c.body.get("text", "")).startswith("BAT-0001: ")
                and "APP01" in shown(c.body)
                # The approval asked for names every member.
                and "Approval needed" not in shown(c.body)
            ]

        said = scheduled(bot.api.wait_for(scheduled, 30))
        assert len(said) == 1
        assert app01.ref in said[0] and _token(opening) in said[0]
        assert "change window" in said[0]
        # Only who waits: the members taken at once are not named.
        assert "WEB01" not in said[0] and "WEB02" not in said[0]

        # Whatever syncs the wave's members after (their creates, the card),
        # it is said once.
        assert isinstance(bot.ctx.notifier, ThreadNotifier)
        bot.ctx.notifier.drain()
        bot.ctx.notifier.flush()
        time.sleep(0.5)
        assert len(scheduled(bot.api.calls)) == 1


def _element(body: dict[str, Any], action_id: str) -> dict[str, Any]:
    """The button `action_id` of a message (its confirm dialog included)."""
    return next(
        el
        for block in body.get("blocks", [])
        if block.get("type") == "actions"
        for el in block["elements"]
        if el.get("action_id") == action_id
    )


def test_a_waves_root_is_posted_once_every_member_is_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen: Take posted the wave's root as soon as its first member (the
    refused CORP-DC01) was recorded: "BAT-0001: refused — …", "1 VMs", then
    updated it as the others came. A root's fallback text is what
    notifications show, and it is fixed when posted: everyone was told
    "refused". Each member's commit reaches the notifier before the next
    is recorded here, as it did there (a host slow to answer the policy)."""
    import bot.service.batches as batches
    from bot.service.requests import request_checkpoint as recorded

    with checked_bot(tmp_path, "") as bot:
        notifier = bot.ctx.notifier
        assert isinstance(notifier, ThreadNotifier)

        def one_at_a_time(*args: Any, **kwargs: Any) -> Any:
            out = recorded(*args, **kwargs)
            notifier.flush()
            return out

        monkeypatch.setattr(batches, "request_checkpoint", one_at_a_time)
        preview = command(bot, 'create CORP-DC01 --group web-tier --reason "KB5044284 web wave"')
        take = button(preview, "checkpoint:wave_take")
        assert take is not None
        _reply, key = bot.slack.click("checkpoint:wave_take", take, user="U0ALICE")
        _replaced(bot, key)

        def posted(calls: list[Any]) -> list[dict[str, Any]]:
            return [c.body for c in roots(calls, "BAT-0001") if c.method == "chat.postMessage"]

        first = posted(bot.api.wait_for(posted, 30))[0]
        assert "refused —" not in first["text"], first["text"]
        assert "*4 VMs*" in shown(first)
        for vm in ("CORP-DC01", "WEB01", "WEB02", "APP01"):
            assert f"*{vm}*" in shown(first)
        notifier.drain()
        notifier.flush()
        assert len(posted(bot.api.calls)) == 1


def test_a_wave_whose_create_never_recorded_its_members_is_posted_after_a_while(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hold has an end: a process that dies while recording a wave's
    members leaves no `members_recorded`; its root is posted with what was
    recorded once the wave is older than the hold, never lost."""
    import bot.notify.thread as thread
    import bot.service.batches as batches
    from bot.service.requests import request_checkpoint as recorded

    calls = 0

    def dies_after_one(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise SystemExit("killed while recording the wave")
        return recorded(*args, **kwargs)

    with checked_bot(tmp_path, "") as bot:
        notifier = bot.ctx.notifier
        assert isinstance(notifier, ThreadNotifier)
        monkeypatch.setattr(batches, "request_checkpoint", dies_after_one)
        with pytest.raises(SystemExit):
            create_batch(
                bot.ctx,
                Selection.of(["WEB01", "WEB02"]),
                reason="KB5044284 wave",
                requester="U0ALICE",
                channel="C0TEST",
            )
        notifier.drain()
        notifier.flush()
        assert roots(bot.api.calls, "BAT-0001") == []
        monkeypatch.setattr(thread, "WAVE_HOLD", timedelta(0))
        notifier.drain()
        posted = roots(bot.api.wait_for(lambda cs: roots(cs, "BAT-0001"), 30), "BAT-0001")
        assert "*WEB01*" in shown(posted[0].body)


def test_vms_a_wave_could_not_record_are_named_to_the_requester_on_its_card_and_at_its_end(
    tmp_path: Path,
) -> None:
    """Seen: HV03 stopped answering between the preview (3 VMs) and Take;
    its two VMs vanished from the wave without a word, and the thread's end
    said "1 of 1 taken". The CLI said "! STG-WEB01 could not be recorded"."""
    from bot.devtools.emulator.faults import Faults
    from tests.slack_support import running_bot
    from tests.test_slack_flow import checked_calls, slack_problems

    with running_bot(tmp_path, policy_text="", emulated=True) as bot:
        preview = command(bot, 'create WEB01 --group staging --reason "KB5044284 wave"')
        assert "3 VMs: 3 can be checkpointed" in shown(preview)
        take = button(preview, "checkpoint:wave_take")
        assert take is not None and bot.fleet is not None
        hv03 = bot.fleet.servers["HV03"]
        hv03.faults = Faults(refuse=True)
        try:
            _reply, key = bot.slack.click("checkpoint:wave_take", take, user="U0ALICE")
            own = shown(_replaced(bot, key))
            assert "*2 could not be recorded*" in own, own
            assert "*STG-WEB01*, *STG-APP01*" in own
            assert "HV03 could not be reached" in own
            assert "nothing was asked of them" in own

            def ended(calls: list[Any]) -> list[str]:
                return [r for r in wave_replies(calls) if "Checkpoints of the wave finished" in r]

            said = ended(bot.api.wait_for(ended, 60))[0]
            assert ":warning: *Checkpoints of the wave finished*" in said
            assert "1 of 1 taken" in said
            assert "2 could not be recorded" in said and "*STG-WEB01*, *STG-APP01*" in said
            card = roots(bot.api.calls, "BAT-0001")[-1].body
            assert "2 could not be recorded" in card["text"]
            assert "HV03 could not be reached" in shown(card)
        finally:
            hv03.faults = Faults()
    problems = [p for call in checked_calls(bot.api.calls) for p in slack_problems(call)]
    assert problems == []


def test_the_requesters_own_card_offers_no_approve_all_of_the_rollback_she_asked_for(
    tmp_path: Path,
) -> None:
    """Seen: after Roll back all, the asker's own copy of the card offered
    "Approve all (3)", which only refused her ("<@U0ALICE> asked for this
    rollback and cannot approve it"). What waits on someone else's word is
    still hers to approve; an approver's card offers it all."""
    with checked_bot(tmp_path, "") as bot:
        _wave_taken(bot, Selection.of(["WEB01", "STG-WEB01", "CORP-DC01"]), "KB5044284 wave")
        _reply, key = bot.slack.click(
            "checkpoint:wave_rollback",
            card_button(bot, "BAT-0001", "checkpoint:wave_rollback", "U0ALICE"),
            user="U0ALICE",
            ephemeral=True,
        )
        notice, own = _answers(bot, key, 2)
        assert "Rollback waits for approval" in shown(notice)
        assert "its rollback waits for approval" in shown(own)
        assert button(own, "checkpoint:wave_approve") is None
        assert button(command(bot, "batch BAT-1"), "checkpoint:wave_approve") is None
        bobs = command(bot, "batch BAT-1", user="U0BOB")
        assert (button(bobs, "checkpoint:wave_approve") or "").startswith("BAT-0001:approve:")
        assert "Approve all (2)" in shown(bobs)

        # Bob's own rollback of one VM waits on someone else: Alice may approve it.
        _reply, key = bot.slack.click(
            "checkpoint:wave_withdraw",
            card_button(bot, "BAT-0001", "checkpoint:wave_withdraw", "U0ALICE"),
            user="U0ALICE",
            ephemeral=True,
        )
        _answers(bot, key, 2)
        assert show_batch(bot.ctx, "BAT-1").awaiting == 0
        web01 = next(m for m in show_batch(bot.ctx, "BAT-1").members if m.vm_name == "WEB01")
        command(bot, f"rollback {web01.change}", user="U0BOB")
        assert [
            (m.vm_name, m.waiting, m.waiting_by)
            for m in show_batch(bot.ctx, "BAT-1").members
            if m.waiting
        ] == [("WEB01", "rollback", "U0BOB")]
        assert button(command(bot, "batch BAT-1", user="U0BOB"), "checkpoint:wave_approve") is None
        alices = command(bot, "batch BAT-1")
        assert (button(alices, "checkpoint:wave_approve") or "").startswith("BAT-0001:approve:")
        assert "Approve all (1)" in shown(alices)


def _web_tier_taken_but_app01(bot: RunningBot) -> Any:
    """Alice's web-tier wave with WEB01 and WEB02 taken and APP01 scheduled
    for its window, its thread told so: APP01's change."""
    create_batch(
        bot.ctx,
        Selection.of(groups=["web-tier"]),
        reason="KB5044284 web wave",
        requester="U0ALICE",
        channel="C0TEST",
    )
    for vm in ("WEB01", "WEB02"):
        wait_state(bot, vm, "active", timeout=30)
    app01 = wait_state(bot, "APP01", "scheduled")
    bot.api.wait_for(lambda cs: any("*Scheduled*" in r for r in wave_replies(cs)), 30)
    return app01


# No approvals; APP01 is taken only in its window, which opens on Saturday
# 22:00 UTC (T0 is the Tuesday before).
APP01_WINDOW_ONLY = """
rules:
  approvals:
    overrides:
      - scope: {tags: {env: prod}}
        params: {count: 0}
  change_window: {effect: schedule}
windows:
  - name: app-maintenance
    cron: "0 22 * * 6"
    duration: 4h
    timezone: UTC
    scope: {names: [APP01]}
"""


def test_roll_back_all_and_keep_all_say_which_member_is_still_scheduled_and_how_to_stop_it(
    tmp_path: Path,
) -> None:
    """Seen: "Roll back all finished … 3 of 3 rolled back" and "Keep &
    merge all finished … 3 of 3 merged" while APP01 still waited for its
    window: it would be checkpointed on Saturday, after the patch was
    rolled back and the wave merged, and nothing said so."""
    opening = datetime(2026, 11, 28, 22, 0, tzinfo=UTC)
    with checked_bot(tmp_path, APP01_WINDOW_ONLY) as bot:
        app01 = _web_tier_taken_but_app01(bot)

        card = command(bot, "batch BAT-1", user="U0BOB")
        line = f"*APP01* on HV01 · scheduled · runs {_token(opening)}, when its change window opens"
        assert line in shown(card)
        waits = (
            f"APP01 ({app01.ref}) is still scheduled: it is taken 2026-11-28 22:00 UTC, "
            "when its change window opens"
        )
        for action_id in ("checkpoint:wave_rollback", "checkpoint:wave_merge"):
            confirm = _element(card, action_id)["confirm"]["text"]["text"]
            assert waits in confirm, confirm
            assert "/checkpoint withdraw BAT-0001 create" in confirm, confirm

        _reply, key = bot.slack.click(
            "checkpoint:wave_rollback",
            card_button(bot, "BAT-0001", "checkpoint:wave_rollback", "U0ALICE"),
            user="U0ALICE",
            ephemeral=True,
        )
        notice, _card = _answers(bot, key, 2)
        assert "Rollback of 2 VMs started" in shown(notice)
        assert f"*APP01* ({app01.ref}) is still scheduled" in shown(notice)

        def ended(kind: str) -> Any:
            def found(calls: list[Any]) -> list[str]:
                return [r for r in wave_replies(calls) if f"{kind} finished" in r]

            return found

        said = ended("Roll back all")(bot.api.wait_for(ended("Roll back all"), 30))[0]
        assert "2 of 2 rolled back" in said
        assert f"*APP01* ({app01.ref}) is still scheduled: it is taken {_token(opening)}" in said
        assert "after the rest of the wave was rolled back" in said
        assert "`/checkpoint withdraw BAT-0001 create`" in said

        bot.slack.click(
            "checkpoint:wave_merge",
            card_button(bot, "BAT-0001", "checkpoint:wave_merge", "U0ALICE"),
            user="U0ALICE",
            ephemeral=True,
        )
        said = ended("Keep & merge all")(bot.api.wait_for(ended("Keep & merge all"), 30))[0]
        assert "2 of 2 merged" in said
        assert f"*APP01* ({app01.ref}) is still scheduled: it is taken {_token(opening)}" in said
        assert "after the rest of the wave was merged" in said

        # What it says to do does it.
        done = shown(command(bot, "withdraw BAT-1 create"))
        assert "you withdrew APP01" in done
        assert wait_state(bot, "APP01", "withdrawn")


def test_a_members_job_past_its_deadline_is_told_in_words_in_the_waves_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen in a wave's thread: "checkpoint: outcome unknown
    (JobDeadlineExceeded: job 3 passed its deadline
    2026-11-24T11:40:54.548969+00:00)". The deadline is checked just before
    Checkpoint-VM is asked for: past it, nothing was asked of the host."""
    import bot.service.execution as execution

    seen_on = execution._seen_on
    running: dict[str, int] = {}

    with checked_bot(tmp_path, "") as bot:

        def slow(host: Any, vm_id: str, seen: Any) -> Any:
            # The host answers STG-WEB01's re-check only after its job's deadline.
            if host.name == "HV03":
                while "change" not in running:
                    time.sleep(0.05)
                jobs = bot.ctx.ledger.jobs_of_change(running["change"])
                deadline = max(j.deadline_at for j in jobs if j.deadline_at is not None)
                while bot.ctx.clock() <= deadline:
                    time.sleep(0.05)
            return seen_on(host, vm_id, seen)

        monkeypatch.setattr(execution, "_seen_on", slow)
        out = create_batch(
            bot.ctx,
            Selection.of(["WEB01", "STG-WEB01"]),
            reason="KB5044284 wave",
            requester="U0ALICE",
            channel="C0TEST",
        )
        staging = next(o for o in out.outcomes if o.change.vm_name == "STG-WEB01")
        running["change"] = staging.change.id
        job = bot.ctx.ledger.jobs_of_change(staging.change.id)[-1]
        assert job.deadline_at is not None
        failed = wait_state(bot, "STG-WEB01", "failed", timeout=60)

        def told(calls: list[Any]) -> list[str]:
            return [
                shown(c.body)
                for c in calls
                if c.method == "chat.postMessage"
                and c.body.get("thread_ts")
                and str(c.body.get("text", "")).startswith(f"{failed.ref}: ")
            ]

        said = told(bot.api.wait_for(told, 30))[0]
        assert "JobDeadlineExceeded" not in said and "+00:00" not in said, said
        deadline = job.deadline_at.replace(tzinfo=UTC).replace(second=0, microsecond=0)
        assert f"its job's deadline ({_token(deadline)}) passed" in said, said
        assert "nothing was asked of the host" in said


# APP01 is taken only in its window (Saturday 22:00 UTC); the default
# approvals stay, so rolling back production VMs needs an approver.
APP01_WINDOW_ROLLBACK_APPROVED = """
rules:
  change_window: {effect: schedule}
windows:
  - name: app-maintenance
    cron: "0 22 * * 6"
    duration: 4h
    timezone: UTC
    scope: {names: [APP01]}
"""


def test_the_approval_asked_for_roll_back_all_names_the_member_still_scheduled(
    tmp_path: Path,
) -> None:
    """Seen: "Approval needed to roll back the wave" asked the approvers
    about WEB01 and WEB02 and said nothing of APP01, still waiting for its
    window: approved, the patch is rolled back, and on Saturday APP01 is
    checkpointed all the same. The approver learnt it only from the
    thread's last reply. The ask, and Approve all's confirm, now name it."""
    opening = datetime(2026, 11, 28, 22, 0, tzinfo=UTC)
    with checked_bot(tmp_path, APP01_WINDOW_ROLLBACK_APPROVED) as bot:
        app01 = _web_tier_taken_but_app01(bot)

        _reply, key = bot.slack.click(
            "checkpoint:wave_rollback",
            card_button(bot, "BAT-0001", "checkpoint:wave_rollback", "U0ALICE"),
            user="U0ALICE",
            ephemeral=True,
        )
        _answers(bot, key, 2)

        def asked(calls: list[Any]) -> list[str]:
            return [r for r in wave_replies(calls) if "Approval needed to roll back" in r]

        said = asked(bot.api.wait_for(asked, 30))[0]
        assert f"*APP01* ({app01.ref}) is still scheduled: it is taken {_token(opening)}" in said
        assert "not part of this rollback" in said
        assert "`/checkpoint withdraw BAT-0001 create`" in said

        card = command(bot, "batch BAT-1", user="U0BOB")
        confirm = _element(card, "checkpoint:wave_approve")["confirm"]["text"]["text"]
        assert "You approve: WEB01 (rollback), WEB02 (rollback)" in confirm, confirm
        assert f"APP01 ({app01.ref}) is still scheduled" in confirm, confirm


def test_a_click_on_the_waves_own_card_leaves_no_private_copy_behind(tmp_path: Path) -> None:
    """Seen: every click on the wave's card in #ops (Approve all, a refused
    one, an old Withdraw) left its clicker a private notice and a private
    copy of the card, whose buttons went stale as the wave moved
    (docs/slack-setup.md, "A quiet thread": a click whose effect the card
    shows gets no private "done"). The wave's own card is redrawn for
    everyone; a click on it is answered privately only with what the card
    cannot show."""
    with checked_bot(tmp_path, "") as bot:
        _wave_taken(
            bot,
            Selection.of(["WEB01", "STG-WEB01", "CORP-DC01"]),
            "KB5044284 wave",
            channel="C0TEST",
        )
        _asked, key = bot.slack.click(
            "checkpoint:wave_rollback",
            card_button(bot, "BAT-0001", "checkpoint:wave_rollback", "U0ALICE"),
            user="U0ALICE",
            ephemeral=True,
        )
        _answers(bot, key, 2)
        assert isinstance(bot.ctx.notifier, ThreadNotifier)
        bot.ctx.notifier.drain()
        bot.ctx.notifier.flush()

        # Bob approves from the wave's card in the channel, as everyone sees it.
        shared = [c.body for c in bot.api.calls if c.method in ("chat.postMessage", "chat.update")]
        cards = [
            b for b in shared if "BAT-0001" in shown(b) and button(b, "checkpoint:wave_approve")
        ]
        approve_all = button(cards[-1], "checkpoint:wave_approve")
        assert approve_all is not None
        updates_before = len(bot.api.of("chat.update"))
        reply, key = bot.slack.click("checkpoint:wave_approve", approve_all, user="U0BOB")
        assert reply.status == 200
        for member in ("WEB01", "STG-WEB01"):
            wait_state(bot, member, "rolled_back", timeout=30)
        bot.ctx.notifier.drain()
        bot.ctx.notifier.flush()
        assert [c for c in bot.api.calls if c.method == key] == []
        # The card everyone sees says it instead.
        assert len(bot.api.of("chat.update")) > updates_before
        assert "BAT-0001 — rolled back" in shown(bot.api.of("chat.update")[-1].body)

        # A click that did nothing is still answered, to its clicker alone.
        _reply, again = bot.slack.click("checkpoint:wave_approve", approve_all, user="U0BOB")
        (said,) = _answers(bot, again, 1)
        assert "nothing was done" in shown(said) or "Nothing of BAT-0001" in shown(said)
