"""What the bot says in Slack names people as Slack does and says what
happened: mention tokens from the record kept (never a person's own text
made live), no raw user ids, an approval that waits for its window said to
be scheduled, a second Start told who started the VM, and a refusal's
notification text no wider than its blocks. Over signed requests into the
running bot; every message it sent is checked as Slack would (`checked_bot`).
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.notify import ThreadNotifier
from bot.service import Selection, Stale, show_batch
from handlers import messages
from templates import Renderer
from templates.blocks import ActionValue, SlackRenderer
from tests.slack_support import RunningBot
from tests.test_batch_slack import _wave_taken
from tests.test_slack_flow import (
    CREATE_NEEDS_APPROVAL,
    USERGROUPS,
    card_button,
    checked_bot,
    command,
    quiet_click,
    root_button,
    shown,
)
from tests.test_slack_http import answer, change_of, value, wait_state

# The shipped "prod rollback needs 1 approval", its approvers named as a
# person and a Slack group: the record's words then hold both kinds of token.
NAMED_APPROVERS = """
permissions:
  approve: {users: [U0CAROL], groups: [S0APPROVERS], channels: []}
"""
# A create on prod waits for an approver, then for the web tier's window.
APPROVAL_THEN_WINDOW = """
rules:
  change_window: {effect: schedule}
  approvals:
    overrides:
      - scope: {tags: {env: prod}}
        params: {count: 1, actions: [create]}
windows:
  - name: weekend
    rrule: "FREQ=WEEKLY;BYDAY=SA;BYHOUR=22;BYMINUTE=0"
    duration: 6h
    timezone: Europe/Berlin
    scope: {tags: {tier: web}}
"""
ESCAPED_MENTION = re.compile(r"&lt;[@!#]")


def _history(body: dict[str, Any]) -> str:
    """The sections under `*History*` of a `/checkpoint status` answer."""
    texts = [
        b["text"]["text"]
        for b in body["blocks"]
        if b["type"] == "section" and b.get("text", {}).get("text", "").startswith("*History*")
    ]
    assert texts, shown(body)
    return "\n".join(texts)


def _date_token(instant: datetime) -> str:
    """The start of Slack's date token for `instant` (templates/slack_times.py)."""
    at = instant if instant.tzinfo else instant.replace(tzinfo=UTC)
    return f"<!date^{int(at.timestamp())}^"


def _thread_replies(bot: RunningBot) -> list[str]:
    assert isinstance(bot.ctx.notifier, ThreadNotifier)
    bot.ctx.notifier.drain()
    bot.ctx.notifier.flush()
    return [shown(c.body) for c in bot.api.of("chat.postMessage") if c.body.get("thread_ts")]


# --- 1. the history keeps the record's mentions, and escapes the reason -----------------


def test_status_history_shows_the_records_mentions_and_escapes_the_reason(tmp_path: Path) -> None:
    with checked_bot(tmp_path, NAMED_APPROVERS, USERGROUPS) as bot:
        command(bot, "create WEB01 --reason <!channel> KB5044284 <@U0BOB>")
        active = wait_state(bot, "WEB01", "active")
        quiet_click(
            bot,
            "checkpoint:rollback",
            root_button(bot, active.ref, "checkpoint:rollback"),
            "U0ALICE",
        )
        root_button(bot, active.ref, "checkpoint:approve")

        history = _history(command(bot, f"status {active.ref}", user="U0BOB"))
        assert (
            "rollback by <@U0ALICE> needs 1 approval from <@U0CAROL> or a member of "
            "<!subteam^S0APPROVERS>" in history
        ), history
        # The requester's own words stay text: no live @channel, no ping.
        assert "&lt;!channel&gt; KB5044284 &lt;@U0BOB&gt;" in history
        assert "<!channel>" not in history and "<@U0BOB>" not in history


# --- 2. people are mentions, and the words read right -----------------------------------


def test_a_wave_approved_names_its_approver_with_a_mention(tmp_path: Path) -> None:
    with checked_bot(tmp_path, "") as bot:
        _wave_taken(bot, Selection.of(["WEB01", "STG-WEB01"]), "KB5044284 wave", channel="C0TEST")
        reply, key = bot.slack.click(
            "checkpoint:wave_rollback",
            card_button(bot, "BAT-0001", "checkpoint:wave_rollback", "U0ALICE"),
            user="U0ALICE",
            ephemeral=True,  # `/checkpoint batch`'s answer: only its clicker sees it
        )
        assert reply.status == 200
        bot.api.wait_for(lambda cs: sum(c.method == key for c in cs) >= 2, 30)
        reply, key = bot.slack.click(
            "checkpoint:wave_approve",
            card_button(bot, "BAT-0001", "checkpoint:wave_approve", "U0BOB"),
            user="U0BOB",
            ephemeral=True,
        )
        assert reply.status == 200
        bot.api.wait_for(lambda cs: sum(c.method == key for c in cs) >= 2, 30)
        for member in show_batch(bot.ctx, "BAT-1").members:
            for job in bot.ctx.ledger.jobs_of_change(member.change_id):
                bot.ctx.ledger.wait(job.id or 0, timeout=30)

        said = "\n".join(_thread_replies(bot))
        assert "<@U0BOB> approved what 2 members waited for" in said, said
        assert not ESCAPED_MENTION.search(said)


def test_a_reject_form_submitted_after_the_withdrawal_says_so_naming_the_requester(
    tmp_path: Path,
) -> None:
    with checked_bot(tmp_path, CREATE_NEEDS_APPROVAL) as bot:
        asked = command(bot, "create WEB01 --reason KB5044284 patch")
        ref = re.search(r"CHG-\d+", asked["text"])
        assert ref is not None
        reject = root_button(bot, ref.group(0), "checkpoint:reject")
        reply, key = bot.slack.click("checkpoint:reject", reject, user="U0BOB")
        assert reply.status == 200
        trigger = "trigger." + key.rsplit(":", 1)[1]
        calls = bot.api.wait_for(
            lambda cs: any(c.method == "views.open" and c.body["trigger_id"] == trigger for c in cs)
        )
        view = next(c.body["view"] for c in calls if c.method == "views.open")
        # Meanwhile Alice takes her request back.
        assert "withdrew" in shown(command(bot, f"withdraw {ref.group(0)}"))

        values = {"reason": {"reason": {"type": "plain_text_input", "value": "not now"}}}
        submitted = {**view, "id": "V0REJECT", "state": {"values": values}}
        assert bot.slack.submit_view(submitted, user="U0BOB").status == 200
        # No channel was remembered for this view id: the answer is Bob's DM.
        calls = bot.api.wait_for(
            lambda cs: any(
                c.method == "chat.postMessage" and c.body.get("channel") == "U0BOB" for c in cs
            )
        )
        told = shown(next(c.body for c in calls if c.body.get("channel") == "U0BOB"))
        assert (
            "This form was for *the create approval*, withdrawn by its requester, <@U0ALICE> "
            in told
        )
        assert "by its requester by" not in told and "button" not in told
        assert "this form is out of date" in told


def test_a_lost_race_in_approve_all_names_who_approved_first() -> None:
    """The wave's Approve all lists, per member, why it could not approve:
    the service's words (a Stale's message) with mention tokens, which
    `messages.member_line` keeps (handlers/waves.py builds those lines)."""
    lost = Stale(
        12,
        was_for="the rollback approval",
        seen_version=None,
        now_version=7,
        settled_state="approved",
        settled_by="U0CAROL",
        settled_at=datetime(2026, 11, 24, 9, 0, tzinfo=UTC),
    )
    assert "approved by <@U0CAROL> at 2026-11-24 09:00 UTC; nothing was done" in lost.message
    line = messages.member_line("WEB01 <!here>", lost.message)
    assert line.startswith("WEB01 &lt;!here&gt;: CHG-0012: this button was for the rollback")
    assert "approved by <@U0CAROL>" in line
    notice = SlackRenderer(Renderer()).payload("notice_ephemeral", title="Approved 0", lines=[line])
    assert "approved by <@U0CAROL>" in shown(notice) and "&lt;@" not in shown(notice)


# --- 3. an approval that waits for its window is said to be scheduled -------------------


def test_approving_a_create_outside_its_window_says_it_is_scheduled_and_when(
    tmp_path: Path,
) -> None:
    with checked_bot(tmp_path, APPROVAL_THEN_WINDOW) as bot:
        asked = command(bot, "create WEB01 --reason KB5044284 patch")
        assert "waits for approval" in shown(asked)
        ref = change_of(bot, "WEB01").ref
        told = command(bot, f"approve {ref}", user="U0BOB")
        scheduled = wait_state(bot, "WEB01", "scheduled")
        job = bot.ctx.ledger.jobs_of_change(scheduled.id)[-1]
        assert job.not_before is not None
        text = shown(told)
        assert "goes ahead" not in text
        assert f"{ref}: checkpoint approved and scheduled" in told["text"]
        assert (
            "you approved the checkpoint: it is scheduled for its change window, which opens "
            in text
        )
        assert _date_token(job.not_before) in text


# --- 4. two clicks on one Start: one start, and the second is told who -------------------


def test_two_people_clicking_start_start_the_vm_once_and_the_second_is_told_who(
    tmp_path: Path,
) -> None:
    with checked_bot(tmp_path, "") as bot:
        command(bot, "create STG-APP01 --type standard --reason KB5044284")
        active = wait_state(bot, "STG-APP01", "active")
        quiet_click(
            bot,
            "checkpoint:rollback",
            root_button(bot, active.ref, "checkpoint:rollback"),
            "U0ALICE",
        )
        left = wait_state(bot, "STG-APP01", "rolled_back", timeout=30)
        assert left.needs_start, left.vm_state_after
        start = str(ActionValue(left.ref, left.version, "start"))

        with ThreadPoolExecutor(2) as pool:
            sent = list(
                pool.map(
                    lambda user: bot.slack.click("checkpoint:start", start, user=user),
                    ("U0ALICE", "U0BOB"),
                )
            )
        told = {
            user: shown(answer(bot, key))
            for user, (_, key) in zip(("U0ALICE", "U0BOB"), sent, strict=True)
        }
        starting = [
            u for u, t in told.items() if "the thread says when it runs" in t and "already" not in t
        ]
        assert len(starting) == 1, told
        first = starting[0]
        second = "U0BOB" if first == "U0ALICE" else "U0ALICE"
        assert "already" in told[second] and f"<@{first}>" in told[second], told[second]
        assert "STG-APP01" in told[second]
        starts = [j for j in bot.ctx.ledger.jobs_of_change(left.id) if j.kind == "start"]
        assert len(starts) == 1
        bot.ctx.ledger.wait(starts[0].id or 0, timeout=30)

        # Clicked again once it ran: who started it, and nothing is done.
        again = shown(_click(bot, "checkpoint:start", start, "U0CAROL"))
        assert f"was already started by <@{first}>" in again, again
        assert [j.id for j in bot.ctx.ledger.jobs_of_change(left.id) if j.kind == "start"] == [
            starts[0].id
        ]


def _click(bot: RunningBot, action_id: str, value: str, user: str) -> dict[str, Any]:
    reply, key = bot.slack.click(action_id, value, user=user)
    assert reply.status == 200
    return answer(bot, key)


# --- 5. a refusal's notification says only what its blocks say --------------------------


def test_a_refusals_fallback_text_names_only_the_refusing_rules(tmp_path: Path) -> None:
    # A create on prod also needs an approver: a rule that fired, but refuses nothing.
    with checked_bot(tmp_path, CREATE_NEEDS_APPROVAL) as bot:
        refused = command(bot, "create CORP-DC01 --reason patch")
        assert "USN rollback" in refused["text"]
        assert "approval" not in refused["text"], refused["text"]
        blocks = json.dumps(refused["blocks"])
        assert "approval" not in blocks


# --- 6. a refused merge and an out-of-date click keep the bot's own tokens --------------


def test_a_merge_while_a_rollback_waits_names_the_asker_and_every_way_to_settle_it(
    tmp_path: Path,
) -> None:
    # The shipped policy: a create on prod needs nobody, its rollback one approver.
    with checked_bot(tmp_path, "") as bot:
        command(bot, "create WEB01 --reason KB5044284")
        active = wait_state(bot, "WEB01", "active")
        ref = active.ref
        drawn = root_button(bot, ref, "checkpoint:merge")  # Keep & merge as first drawn
        assert "extended" in shown(command(bot, f"extend {ref} 24h"))
        quiet_click(
            bot, "checkpoint:rollback", value(change_of(bot, "WEB01"), "rollback"), "U0ALICE"
        )
        root_button(bot, ref, "checkpoint:approve")  # the rollback waits for approval
        words = (
            f"{ref} is not merged: a rollback asked by <@U0ALICE> waits for approval, and a "
            "merge deletes the checkpoint it would restore. An approver approves it "
            f"(`/checkpoint approve {ref} rollback`) or rejects it (`/checkpoint reject {ref} "
            f'rollback --reason "…"`), or <@U0ALICE> withdraws it (`/checkpoint withdraw {ref} '
            "rollback`); then merge."
        )

        typed = shown(command(bot, f"merge {ref}", user="U0BOB"))
        # In the blocks (JSON here, so the reason's quotes read escaped).
        in_blocks = json.dumps(words, ensure_ascii=False)[1:-1]
        assert in_blocks in typed, typed
        assert not ESCAPED_MENTION.search(typed), typed

        # The older copy of the card: the same refusal, and what happened
        # since it was drawn, with its date as a date token.
        clicked = shown(_click(bot, "checkpoint:merge", drawn, "U0BOB"))
        assert in_blocks in clicked, clicked
        since = re.search(r"Since it was drawn: (.*?)\.\"", clicked)
        assert since is not None, clicked
        assert "extended by <@U0ALICE> <!date^" in since.group(1), clicked
        assert "rollback awaits approval by policy <!date^" in since.group(1), clicked
        assert not ESCAPED_MENTION.search(clicked), clicked
        assert change_of(bot, "WEB01").state == "active"


def test_a_double_click_on_keep_and_merge_says_who_started_the_merge_with_a_mention(
    tmp_path: Path,
) -> None:
    # Staging: a rollback needs no approver, so the card offers Keep & merge after it.
    with checked_bot(tmp_path, "") as bot:
        command(bot, "create STG-APP01 --reason KB5044284")
        active = wait_state(bot, "STG-APP01", "active")
        quiet_click(
            bot,
            "checkpoint:rollback",
            root_button(bot, active.ref, "checkpoint:rollback"),
            "U0ALICE",
        )
        left = wait_state(bot, "STG-APP01", "rolled_back", timeout=30)
        keep = str(ActionValue(left.ref, left.version, "merge"))
        # The second click of a double-click is refused by the merge itself
        # (a Conflict, with what happened since as its hint) when both passed
        # the card's check before either merged, else by that check (Stale);
        # either says who started the merge, as a mention, and when.
        with ThreadPoolExecutor(2) as pool:
            sent = list(
                pool.map(
                    lambda _: bot.slack.click("checkpoint:merge", keep, user="U0ALICE"), (1, 2)
                )
            )
        keys = [key for _reply, key in sent]
        bot.api.wait_for(lambda cs: any(c.method in keys for c in cs))
        told = next(shown(c.body) for c in bot.api.calls if c.method in keys)
        assert "start merge by <@U0ALICE> <!date^" in told, told
        assert not ESCAPED_MENTION.search(told), told


# --- 7. the Reject… form asks for a rejection's reason -----------------------------------


def test_the_reject_form_refuses_an_empty_reason_with_a_rejections_example(
    tmp_path: Path,
) -> None:
    with checked_bot(tmp_path, CREATE_NEEDS_APPROVAL) as bot:
        asked = command(bot, "create WEB01 --reason KB5044284 patch")
        ref = re.search(r"CHG-\d+", asked["text"])
        assert ref is not None
        reject = root_button(bot, ref.group(0), "checkpoint:reject")
        reply, key = bot.slack.click("checkpoint:reject", reject, user="U0BOB")
        assert reply.status == 200
        trigger = "trigger." + key.rsplit(":", 1)[1]
        calls = bot.api.wait_for(
            lambda cs: any(c.method == "views.open" and c.body["trigger_id"] == trigger for c in cs)
        )
        view = next(c.body["view"] for c in calls if c.method == "views.open")
        field = next(b for b in view["blocks"] if b.get("block_id") == "reason")
        example = field["element"]["placeholder"]["text"]
        assert example == "Not during the quarter-end close"

        values = {"reason": {"reason": {"type": "plain_text_input", "value": "  "}}}
        answered = bot.slack.submit_view(
            {**view, "id": "V0REJECT", "state": {"values": values}}, user="U0BOB"
        )
        assert answered.status == 200
        # The example is the form's own (seen: "e.g. KB5044284 patch", a create's).
        assert json.loads(answered.body) == {
            "response_action": "errors",
            "errors": {"reason": f"a reason is required: say why, e.g. {example}"},
        }
        assert change_of(bot, "WEB01").state == "awaiting_approval"


# --- 8. a rejection's reply says who rejected it once ------------------------------------


def test_a_rejections_reply_names_the_rejecter_once_and_the_card_says_via_slack(
    tmp_path: Path,
) -> None:
    with checked_bot(tmp_path, CREATE_NEEDS_APPROVAL) as bot:
        asked = command(bot, "create WEB01 --reason KB5044284 patch")
        created = re.search(r"CHG-\d+", asked["text"])
        assert created is not None
        command(bot, f'reject {created.group(0)} --reason "not now"', user="U0BOB")
        wait_state(bot, "WEB01", "rejected")

        # Staging needs no approver for a create; an extension past the
        # maximum waits for one, and is rejected.
        command(bot, "create STG-APP01 --reason KB5044284")
        extended = wait_state(bot, "STG-APP01", "active").ref
        assert "waits for approval" in shown(command(bot, f"extend {extended} 30d"))
        command(bot, f'reject {extended} extend --reason "too long"', user="U0BOB")
        bot.api.wait_for(
            lambda _cs: any(e.kind == "extend_rejected" for e in change_of(bot, "STG-APP01").events)
        )

        assert isinstance(bot.ctx.notifier, ThreadNotifier)
        bot.ctx.notifier.drain()
        bot.ctx.notifier.flush()
        said = [
            str(c.body["text"]) for c in bot.api.of("chat.postMessage") if c.body.get("thread_ts")
        ]
        # The notification says it once (seen: "CHG-0001: reject by <@U0BOB>
        # — create rejected by <@U0BOB>").
        # The reason follows, once (the record's message quotes it).
        assert f"{created.group(0)}: create rejected by <@U0BOB>: not now" in said, said
        assert f"{extended}: extend rejected by <@U0BOB>: too long" in said, said
        assert not any(s.count("<@U0BOB>") > 1 for s in said), said
        roots = [shown(c.body) for c in bot.api.calls if c.method == "chat.update"]
        assert any("via Slack" in r for r in roots) and not any("via slack" in r for r in roots)
