"""What a click on a wave's card answers (docs/batches.md), driven through
the real Bolt app with signed requests.

Seen in the playground, each twice:

1. Roll back all clicked again while the wave's rollback already waited
   for approval posted ":bell: Approval needed to roll back the wave" in
   its thread (pinging the approvers' group) at every click. As for one
   change (bot/service/requests.py, `already_asked`), a second click asks
   nothing new and says who asked; Keep & merge all alike.
2. Bob's Withdraw on Alice's wave was refused with
   "only &lt;@U0ALICE&gt;, who asked…": the bot's own mention escaped.
3. Approve all in the App Home answered with a DM holding a live-looking
   copy of the wave's card (buttons, "active") that nothing updates. From
   the Home the answer is a short confirmation naming the wave and where
   its card and thread are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.devtools.emulator import Faults
from bot.notify import ThreadNotifier
from bot.service import Selection, approve_batch, create_batch, show_batch
from tests.slack_support import Call, RunningBot, running_bot
from tests.test_slack_flow import (
    CREATE_NEEDS_APPROVAL,
    GROUP_APPROVERS,
    USERGROUPS,
    button,
    card_button,
    checked_bot,
    click,
    command,
    home_of,
    shown,
    wave_replies,
)
from tests.test_slack_http import wait_state

# Production VMs need one approval to be checkpointed and to be rolled back.
CREATE_AND_ROLLBACK_APPROVED = """
rules:
  approvals:
    overrides:
      - scope: {tags: {env: prod}}
        params: {count: 1, actions: [create, rollback]}
"""
# A merge of a production VM waits for one approver (a rollback does not).
MERGE_APPROVED = """
rules:
  approvals:
    overrides:
      - scope: {tags: {env: prod}}
        params: {count: 1, actions: [merge]}
"""


def _wave_taken(bot: RunningBot, vms: list[str], channel: str = "C0TEST") -> None:
    """Alice's wave of `vms`, asked for in `channel`, once each member is taken."""
    out = create_batch(
        bot.ctx, Selection.of(vms), reason="KB5044284 wave", requester="U0ALICE", channel=channel
    )
    for o in out.outcomes:
        if o.job_id is not None:
            assert bot.ctx.ledger.wait(o.job_id, timeout=30).state == "succeeded"


def _answers(bot: RunningBot, key: str, count: int) -> list[dict[str, Any]]:
    calls = bot.api.wait_for(lambda cs: sum(c.method == key for c in cs) >= count, 30)
    return [c.body for c in calls if c.method == key]


def _thread_told(bot: RunningBot) -> list[str]:
    """The wave's milestones in its thread, once the notifier has posted all."""
    assert isinstance(bot.ctx.notifier, ThreadNotifier)
    bot.ctx.notifier.drain()
    bot.ctx.notifier.flush()
    return wave_replies(bot.api.calls)


def _batch_events(bot: RunningBot, kind: str) -> list[str]:
    return [e.actor for e in show_batch(bot.ctx, "BAT-1").events if e.kind == kind]


# --- 1. asked once -----------------------------------------------------------------


def test_roll_back_all_clicked_again_while_it_waits_asks_nobody_again(tmp_path: Path) -> None:
    with checked_bot(tmp_path, GROUP_APPROVERS, USERGROUPS) as bot:
        _wave_taken(bot, ["WEB01", "WEB02"])
        rollback = card_button(bot, "BAT-0001", "checkpoint:wave_rollback", "U0ALICE")

        _reply, key = bot.slack.click(
            "checkpoint:wave_rollback", rollback, user="U0ALICE", ephemeral=True
        )
        first = " ".join(shown(a) for a in _answers(bot, key, 2))
        assert "Rollback waits for approval" in first
        # The card drawn now still offers Roll back all (both VMs are active),
        # bound to the same members: a second click passes its key check.
        assert card_button(bot, "BAT-0001", "checkpoint:wave_rollback", "U0BOB") == rollback

        for user in ("U0ALICE", "U0BOB"):
            _reply, key = bot.slack.click(
                "checkpoint:wave_rollback", rollback, user=user, ephemeral=True
            )
            notice, card = _answers(bot, key, 2)
            said = shown(notice)
            assert "Rollback waits for approval" not in said, said
            assert "already waits for approval, asked by <@U0ALICE>" in said, said
            assert "nothing new was asked" in said
            # The card still answers a click in a channel, as it is now.
            assert button(card, "checkpoint:wave_withdraw") is not None

        told = _thread_told(bot)
        pings = [t for t in told if "Approval needed" in t]
        assert len(pings) == 1, pings
        assert "<!subteam^S0APPROVERS>" in pings[0]
        assert _batch_events(bot, "rollback_awaits_approval") == ["U0ALICE"]
        assert {m.waiting_by for m in show_batch(bot.ctx, "BAT-1").members} == {"U0ALICE"}


def test_keep_and_merge_all_clicked_again_while_it_waits_asks_nobody_again(
    tmp_path: Path,
) -> None:
    with checked_bot(tmp_path, MERGE_APPROVED) as bot:
        _wave_taken(bot, ["WEB01", "WEB02"])
        merge = card_button(bot, "BAT-0001", "checkpoint:wave_merge", "U0ALICE")

        _reply, key = bot.slack.click(
            "checkpoint:wave_merge", merge, user="U0ALICE", ephemeral=True
        )
        assert "Merge waits for approval" in " ".join(shown(a) for a in _answers(bot, key, 2))
        _reply, key = bot.slack.click("checkpoint:wave_merge", merge, user="U0BOB", ephemeral=True)
        said = shown(_answers(bot, key, 2)[0])
        assert "already waits for approval, asked by <@U0ALICE>" in said, said
        assert "nothing new was asked" in said

        pings = [t for t in _thread_told(bot) if "Approval needed" in t]
        assert len(pings) == 1, pings
        assert _batch_events(bot, "merge_awaits_approval") == ["U0ALICE"]


def test_roll_back_all_still_asks_for_the_members_nobody_asked_for(tmp_path: Path) -> None:
    """Carol asked for WEB02's rollback alone; Alice's Roll back all asks
    for WEB01's too: something new was asked, so the wave's thread asks."""
    with checked_bot(tmp_path, "") as bot:
        _wave_taken(bot, ["WEB01", "WEB02"])
        web02 = next(m for m in show_batch(bot.ctx, "BAT-1").members if m.vm_name == "WEB02")
        command(bot, f"rollback {web02.change}", user="U0CAROL")
        rollback = card_button(bot, "BAT-0001", "checkpoint:wave_rollback", "U0ALICE")
        _reply, key = bot.slack.click(
            "checkpoint:wave_rollback", rollback, user="U0ALICE", ephemeral=True
        )
        said = " ".join(shown(a) for a in _answers(bot, key, 2))
        assert "Rollback waits for approval" in said and "nothing new was asked" not in said
        assert _batch_events(bot, "rollback_awaits_approval") == ["U0ALICE"]


# --- 2. the refusal's mention --------------------------------------------------------


def test_withdraw_on_someone_elses_wave_names_its_asker_as_a_mention(tmp_path: Path) -> None:
    with checked_bot(tmp_path, CREATE_NEEDS_APPROVAL) as bot:
        _wave_taken(bot, ["WEB01", "WEB02"])
        assert {m.state for m in show_batch(bot.ctx, "BAT-1").members} == {"awaiting_approval"}
        withdraw = card_button(bot, "BAT-0001", "checkpoint:wave_withdraw", "U0BOB")
        refused = shown(click(bot, "checkpoint:wave_withdraw", withdraw, user="U0BOB"))
        assert "only <@U0ALICE>, who asked for BAT-0001, may withdraw it" in refused, refused
        assert "&lt;@" not in refused
        assert {m.state for m in show_batch(bot.ctx, "BAT-1").members} == {"awaiting_approval"}


def test_an_out_of_date_card_is_still_said_in_escaped_words(tmp_path: Path) -> None:
    """Only the bot's mentions become tokens: the rest stays escaped text."""
    with checked_bot(tmp_path, "rules:\n  approvals: {enabled: false}\n") as bot:
        _wave_taken(bot, ["WEB01", "WEB02"])
        old = card_button(bot, "BAT-0001", "checkpoint:wave_merge", "U0ALICE")
        rollback = card_button(bot, "BAT-0001", "checkpoint:wave_rollback", "U0ALICE")
        bot.slack.click("checkpoint:wave_rollback", rollback, user="U0ALICE", ephemeral=True)
        for vm in ("WEB01", "WEB02"):
            wait_state(bot, vm, "rolled_back", timeout=30)
        _reply, key = bot.slack.click("checkpoint:wave_merge", old, user="U0ALICE", ephemeral=True)
        refused = shown(_answers(bot, key, 2)[0])
        assert "Keep &amp; merge all is out of date: nothing was done" in refused


# --- 3. Approve all in the App Home ----------------------------------------------------


def _home_button(bot: RunningBot, user: str, action_id: str) -> str:
    """The value of `action_id` on `user`'s App Home as last published."""
    published = [c for c in bot.api.of("views.publish") if c.body["user_id"] == user]
    value = button(published[-1].body["view"], action_id)
    assert value is not None, f"{user}'s Home offers no {action_id}"
    return value


def _dms(calls: list[Call], user: str) -> list[dict[str, Any]]:
    return [c.body for c in calls if c.method == "chat.postMessage" and c.body["channel"] == user]


def test_approve_all_in_the_app_home_answers_where_the_wave_is_without_a_card(
    tmp_path: Path,
) -> None:
    with checked_bot(tmp_path, CREATE_AND_ROLLBACK_APPROVED) as bot:
        _wave_taken(bot, ["WEB01", "WEB02"], channel="C0OPS")
        assert "Approve all (2)" in home_of(bot, "U0CAROL")
        approve = _home_button(bot, "U0CAROL", "checkpoint:wave_approve")
        publishes = len(bot.api.of("views.publish"))

        clicked = bot.slack.home_click("checkpoint:wave_approve", approve, user="U0CAROL")
        assert clicked.status == 200
        calls = bot.api.wait_for(lambda cs: _dms(cs, "U0CAROL"), 30)
        for vm in ("WEB01", "WEB02"):
            wait_state(bot, vm, "active", timeout=30)
        answer = _dms(calls, "U0CAROL")
        assert len(answer) == 1, [shown(a)[:120] for a in answer]
        said = shown(answer[0])
        assert "Approved 2 of BAT-0001" in said
        assert "<#C0OPS>" in said  # where its card and its thread are
        # A short answer: no copy of the card, no button on it.
        assert all(b.get("type") != "actions" for b in answer[0]["blocks"]), said
        assert "Roll back all" not in said and "Withdraw" not in said
        assert "BAT-0001 — " not in said  # the card's header

        # The Home itself is published again: no Approve all left for the wave.
        def republished(cs: list[Call]) -> list[Call]:
            return [
                c
                for c in cs[publishes:]
                if c.method == "views.publish"
                and c.body["user_id"] == "U0CAROL"
                and "checkpoint:wave_approve" not in shown(c.body["view"])
            ]

        assert republished(bot.api.wait_for(republished, 30))
        # Nothing else was sent to her DM afterwards (no card to go stale).
        _thread_told(bot)
        assert len(_dms(bot.api.calls, "U0CAROL")) == 1


def test_approve_all_on_a_card_in_a_channel_still_answers_with_the_card(
    tmp_path: Path,
) -> None:
    with checked_bot(tmp_path, CREATE_AND_ROLLBACK_APPROVED) as bot:
        _wave_taken(bot, ["WEB01", "WEB02"], channel="C0OPS")
        approve = card_button(bot, "BAT-0001", "checkpoint:wave_approve", "U0CAROL")
        _reply, key = bot.slack.click(
            "checkpoint:wave_approve", approve, user="U0CAROL", ephemeral=True
        )
        notice, card = _answers(bot, key, 2)
        assert "Approved 2 of BAT-0001" in shown(notice)
        assert "BAT-0001 — " in shown(card)
        assert _dms(bot.api.calls, "U0CAROL") == []


def test_roll_back_all_with_a_host_down_says_which_members_were_left_out(
    tmp_path: Path,
) -> None:
    """Seen on the CLI and in Slack: one host down stopped the whole wave's
    rollback. Now the members whose host answers are decided (here, they
    wait for an approver) and the answer names those left out."""
    with running_bot(
        tmp_path, USERGROUPS, policy_text=CREATE_AND_ROLLBACK_APPROVED, emulated=True
    ) as bot:
        assert bot.fleet is not None
        out = create_batch(
            bot.ctx,
            Selection.of(["WEB01", "STG-WEB01"]),
            reason="KB5044284 wave",
            requester="U0ALICE",
            channel="C0TEST",
        )
        approved = approve_batch(bot.ctx, out.batch.ref, approver="U0CAROL")
        for job_id in approved.job_ids:
            assert bot.ctx.ledger.wait(job_id, timeout=30).state == "succeeded"
        for vm in ("WEB01", "STG-WEB01"):
            wait_state(bot, vm, "active", timeout=30)
        rollback = card_button(bot, "BAT-0001", "checkpoint:wave_rollback", "U0ALICE")
        bot.fleet.server("HV03").faults = Faults(refuse=True)
        _reply, key = bot.slack.click(
            "checkpoint:wave_rollback", rollback, user="U0ALICE", ephemeral=True
        )
        said = shown(_answers(bot, key, 1)[0])
        assert "Rollback waits for approval" in said
        assert "STG-WEB01" in said and "HV03 could not be reached: not rolled back" in said
        assert show_batch(bot.ctx, "BAT-1").members[1].state == "active"
