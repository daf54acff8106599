"""The issue's story, told over signed requests into the Bolt app and read
back from the local Web API recorder (tests/slack_support.py): what Slack
would show people, and nothing else.

- The approvers are pinged: a mention token of each (`<@U…>`,
  `<!subteam^S…>`) reaches the Web API in the thread, and by DM where the
  policy says `dm: true`.
- No text a person sees contains a raw user, group or channel id outside a
  mention token.
- The root card shows only what is true after each step.
- App Homes follow the change without being reopened.
- A refusal the policy can make at once is shown inside the create modal.
- The requester withdraws; a reject asks why, and the card says who and why.
- create → approve → create → rollback → approve → restore: at most 8
  replies, no private "done" echo of a click the thread shows.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.slack_support import Call, RunningBot
from tests.test_slack_flow import (
    REF,
    button,
    checked_bot,
    command,
    replies,
    root_button,
    roots,
    shown,
    texts,
    thread_ts_of,
)
from tests.test_slack_http import ACK_LIMIT, change_of, wait_state
from tests.test_slack_modals import create_values, opened_view, submitted

# On prod, a create and a rollback each wait for one approval, from Bob
# (named) or a member of S0APPROVERS (Carol); Bob is also messaged directly.
APPROVERS = """
rules:
  approvals:
    overrides:
      - scope: {tags: {env: prod}}
        params:
          count: 1
          actions: [create, rollback]
          users: [U0BOB]
          groups: [S0APPROVERS]
          dm: true
"""
USERGROUPS = [{"id": "S0APPROVERS", "users": ["U0CAROL"]}]
# Ids in these tests are all written like Slack's, with a 0 after the kind.
RAW_ID = re.compile(r"\b[UWSCG]0[A-Z0-9]{2,}\b")
TOKEN = re.compile(r"<@[UW][A-Z0-9]+>|<!subteam\^S[A-Z0-9]+>|<#[CG][A-Z0-9]+>|<!date\^[^>]*>")
THREAD_BUDGET = 8


# --- reading what people see ------------------------------------------------------


def visible(call: Call) -> list[str]:
    """Every text a person sees in one recorded call: the notification text
    and the blocks' texts of a message, a view's texts."""
    body = call.body
    seen = [str(body["text"])] if body.get("text") else []
    seen += list(texts(body.get("blocks")))
    view = body.get("view")
    if isinstance(view, dict):
        seen += list(texts(view.get("blocks"))) + list(texts(view.get("title")))
    return seen


def raw_ids(calls: list[Call]) -> list[tuple[str, str]]:
    """(method, id) for every raw Slack id shown outside a mention token."""
    found = []
    for call in calls:
        if not (call.method.startswith(("chat.", "views.", "response_url:"))):
            continue
        for text in visible(call):
            for raw in RAW_ID.findall(TOKEN.sub(" ", text)):
                found.append((call.method, raw))
    return found


def ephemeral_of(bot: RunningBot, key: str) -> list[Call]:
    """What was answered to one click's response_url (the private echo)."""
    return [c for c in bot.api.calls if c.method == key]


def published_for(bot: RunningBot, user: str, after: int = 0) -> list[str]:
    """The App Homes published for `user` after call number `after`."""
    return [
        shown(c.body["view"])
        for c in bot.api.calls[after:]
        if c.method == "views.publish" and c.body["user_id"] == user
    ]


def open_home(bot: RunningBot, user: str) -> None:
    event = {"type": "app_home_opened", "user": user, "channel": "D0", "tab": "home"}
    assert bot.slack.event(event, f"Ev-{user}-{len(bot.api.calls)}").status == 200
    bot.api.wait_for(
        lambda cs: any(c.method == "views.publish" and c.body["user_id"] == user for c in cs)
    )


def thread_of(bot: RunningBot, ref: str) -> str:
    """The ts of `ref`'s thread root, once its post is recorded (not claimed)."""
    found: list[str] = []

    def posted(_calls: list[Call]) -> bool:
        ts = thread_ts_of(bot, ref)
        if ts is None or ts.startswith("posting:"):
            return False
        found.append(ts)
        return True

    bot.api.wait_for(posted)
    return found[-1]


def card(bot: RunningBot, ref: str, *, until: str) -> dict[str, Any]:
    """The root card of `ref` once its fallback text ends in state `until`
    and the last post or update of it is that one."""
    root = thread_of(bot, ref)

    def of_root(calls: list[Call]) -> list[Call]:
        # The root's updates carry its ts; a progress reply's updates do not.
        return [
            c for c in roots(calls, ref) if c.method == "chat.postMessage" or c.body["ts"] == root
        ]

    calls = bot.api.wait_for(
        lambda cs: (found := of_root(cs)) and found[-1].body["text"].endswith(until), 20
    )
    body: dict[str, Any] = of_root(calls)[-1].body
    return body


def card_text(body: dict[str, Any]) -> str:
    return "\n".join(texts(body.get("blocks")))


def quiet_click(bot: RunningBot, action_id: str, value: str, user: str) -> str:
    reply, key = bot.slack.click(action_id, value, user=user)
    assert reply.status == 200 and reply.seconds < ACK_LIMIT, action_id
    return key


# --- the story ------------------------------------------------------------------------


def test_the_full_story_pings_keeps_the_card_true_and_stays_within_budget(
    tmp_path: Path,
) -> None:
    with checked_bot(tmp_path, APPROVERS, USERGROUPS) as bot:
        # Alice and Carol look at their Homes once, before anything happens.
        open_home(bot, "U0ALICE")
        open_home(bot, "U0CAROL")
        assert "Your open changes (0)" in published_for(bot, "U0ALICE")[-1]
        mark = len(bot.api.calls)

        asked = command(bot, "create WEB01 --reason KB5044284 <!channel>")
        found = REF.search(asked["text"])
        assert found is not None
        ref = found.group(0)

        # The root waits on the approvers and says whom; nothing else is true yet.
        # Its first post names no approver (the thread's reply pings them);
        # the edit right after it does.
        card(bot, ref, until="awaiting approval")
        first = next(c for c in roots(bot.api.calls, ref) if c.method == "chat.postMessage")
        assert "the approvers are asked in this thread" in card_text(first.body)
        assert "<@U0BOB>" not in shown(first.body)
        root = thread_of(bot, ref)
        edited = bot.api.wait_for(
            lambda cs: any(
                c.method == "chat.update" and c.body["ts"] == root and "<@U0BOB>" in shown(c.body)
                for c in cs
            )
        )
        assert edited
        waiting = card(bot, ref, until="awaiting approval")
        said = card_text(waiting)
        assert "Waiting for approval* to create" in said
        assert "<@U0BOB>" in said and "<!subteam^S0APPROVERS>" in said
        assert "Expires" not in said and "once taken" in said
        assert button(waiting, "checkpoint:approve") and button(waiting, "checkpoint:withdraw")
        assert "&lt;!channel&gt;" in said and "<!channel>" not in said

        # The approvers are pinged once in the thread, and Bob by DM too.
        thread_ts = thread_of(bot, ref)
        calls = bot.api.wait_for(
            lambda cs: any("Approval needed" in shown(c.body) for c in replies(cs, thread_ts))
        )
        pings = [c for c in replies(calls, thread_ts) if "Approval needed" in shown(c.body)]
        assert len(pings) == 1
        assert "<@U0BOB>" in pings[0].body["text"]
        assert "<!subteam^S0APPROVERS>" in pings[0].body["text"]
        calls = bot.api.wait_for(
            lambda cs: any(
                c.method == "chat.postMessage" and c.body["channel"] == "U0BOB" for c in cs
            )
        )
        dm = next(
            c for c in calls if c.method == "chat.postMessage" and c.body["channel"] == "U0BOB"
        )
        assert ref in dm.body["text"] and "<@U0ALICE>" in dm.body["text"]
        # Once: of the new messages in the channel (which Slack notifies), only
        # the "Approval needed" reply names the approvers; the root's first
        # post does not (the edit right after it does, and edits notify nobody).
        naming = [
            c
            for c in bot.api.calls
            if c.method == "chat.postMessage"
            and c.body["channel"] == "C0OPS"
            and "<!subteam^S0APPROVERS>" in shown(c.body)
        ]
        assert naming == pings

        # Homes follow without being reopened: Alice's open change, Carol's approval.
        bot.api.wait_for(lambda _cs: any(ref in h for h in published_for(bot, "U0ALICE", mark)))
        bot.api.wait_for(
            lambda _cs: any(
                "Awaiting your approval (1)" in h and ref in h
                for h in published_for(bot, "U0CAROL", mark)
            )
        )

        # Carol approves from the card: the thread says it, no private echo.
        approve = root_button(bot, ref, "checkpoint:approve")
        key = quiet_click(bot, "checkpoint:approve", approve, "U0CAROL")
        wait_state(bot, "WEB01", "active", timeout=20)
        active = card(bot, ref, until="active")
        said = card_text(active)
        assert "Waiting for approval" not in said and "needs approval" not in said
        assert "Expires" in said and "once taken" not in said
        assert not button(active, "checkpoint:approve") and button(active, "checkpoint:rollback")
        assert "*Last:* created" in said
        mark = len(bot.api.calls)
        bot.api.wait_for(
            lambda _cs: any(
                "Awaiting your approval (0)" in h for h in published_for(bot, "U0CAROL", mark)
            )
        )
        assert ephemeral_of(bot, key) == []

        # Alice asks to roll back: the card now waits for that, and pings again.
        rollback = root_button(bot, ref, "checkpoint:rollback")
        key = quiet_click(bot, "checkpoint:rollback", rollback, "U0ALICE")
        asking = card(bot, ref, until="active")
        bot.api.wait_for(
            lambda cs: "Waiting for approval* to roll back" in card_text(roots(cs, ref)[-1].body)
        )
        bot.api.wait_for(
            lambda cs: (
                len([c for c in replies(cs, thread_ts) if "Approval needed" in shown(c.body)]) == 2
            )
        )
        assert asking is not None and ephemeral_of(bot, key) == []

        # Bob approves it; the restore runs.
        approve = root_button(bot, ref, "checkpoint:approve")
        key = quiet_click(bot, "checkpoint:approve", approve, "U0BOB")
        wait_state(bot, "WEB01", "rolled_back", timeout=20)
        restored = card(bot, ref, until="rolled back")
        said = card_text(restored)
        assert "Waiting for approval" not in said and not button(restored, "checkpoint:approve")
        assert "*Last:* rolled back" in said and "Expires" in said
        assert button(restored, "checkpoint:merge")
        assert ephemeral_of(bot, key) == []
        story_replies = len(
            bot.api.wait_for(
                lambda cs: any("rolled back" in shown(c.body) for c in replies(cs, thread_ts))
            )
        )
        assert story_replies
        thread = replies(bot.api.calls, thread_ts)
        assert len(thread) <= THREAD_BUDGET, [c.body["text"] for c in thread]
        # The demo footer once, on the root; no reply carries it.
        assert not any("Demo mode" in shown(c.body) for c in thread)
        assert "Demo mode" in shown(restored)

        # Kept & merged: no expiry, no window, no live approval, nothing waits.
        merge = root_button(bot, ref, "checkpoint:merge")
        quiet_click(bot, "checkpoint:merge", merge, "U0ALICE")
        wait_state(bot, "WEB01", "merged", timeout=20)
        merged = card(bot, ref, until="merged")
        said = card_text(merged)
        assert "Expires" not in said and "change window" not in said
        assert "Waiting for approval" not in said
        assert not any(e.get("type") == "actions" for e in merged["blocks"]), (
            "a merged change offers no buttons"
        )
    calls = bot.api.calls

    # A ⏳ progress reply, if host work posted one, ended closed.
    progress = [c for c in replies(calls, thread_ts) if ":hourglass_flowing_sand:" in shown(c.body)]
    for posted in progress:
        ts_of = posted.at
        updates = [
            c
            for c in calls
            if c.method == "chat.update" and c.at > ts_of and c.body.get("ts") != thread_ts
        ]
        assert updates and ":white_check_mark:" in shown(updates[-1].body)

    # No raw id anywhere a person looks.
    assert raw_ids(calls) == []


def test_a_raw_id_is_found_where_it_would_show() -> None:
    """The check above finds what it looks for: a raw id in a message or a
    view, and not an id inside a mention or date token."""
    seen = [
        Call("chat.postMessage", {"text": "approved by U0BOB", "blocks": []}, 0.0),
        Call(
            "views.publish",
            {
                "view": {
                    "type": "home",
                    "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "in C0OPS"}}],
                }
            },
            0.0,
        ),
    ]
    assert raw_ids(seen) == [("chat.postMessage", "U0BOB"), ("views.publish", "C0OPS")]
    fine = Call(
        "chat.update",
        {
            "text": "<@U0BOB> in <#C0OPS> for <!subteam^S0APPROVERS> <!date^1^{time}|x>",
            "blocks": [],
        },
        0.0,
    )
    assert raw_ids([fine]) == []


# --- withdraw, and a reject that says why ------------------------------------------


def test_the_requester_withdraws_and_a_reject_says_who_and_why(tmp_path: Path) -> None:
    with checked_bot(tmp_path, APPROVERS, USERGROUPS) as bot:
        first = REF.search(command(bot, "create WEB01 --reason patch")["text"])
        assert first is not None
        ref = first.group(0)
        withdraw = root_button(bot, ref, "checkpoint:withdraw")

        # Only the requester withdraws: Bob is told so, privately, and nothing changes.
        reply, key = bot.slack.click("checkpoint:withdraw", withdraw, user="U0BOB")
        assert reply.status == 200
        told = bot.api.wait_for(lambda cs: any(c.method == key for c in cs))
        refused = shown(next(c for c in told if c.method == key).body)
        assert "only <@U0ALICE>" in refused and "withdraw" in refused
        assert change_of(bot, "WEB01").state == "awaiting_approval"

        quiet_click(bot, "checkpoint:withdraw", withdraw, "U0ALICE")
        assert wait_state(bot, "WEB01", "withdrawn").state == "withdrawn"
        gone = card(bot, ref, until="withdrawn")
        said = card_text(gone)
        assert "*Last:* withdrawn by <@U0ALICE>" in said
        assert not any(b.get("type") == "actions" for b in gone["blocks"])
        thread_ts = thread_of(bot, ref)
        bot.api.wait_for(
            lambda cs: any(
                "withdrawn by <@U0ALICE>" in shown(c.body) for c in replies(cs, thread_ts)
            )
        )

        # The command does the same for the next request.
        second = REF.search(command(bot, "create WEB02 --reason patch")["text"])
        assert second is not None
        answered = command(bot, f"withdraw {second.group(0)}")
        assert "you withdrew your checkpoint request" in shown(answered)
        assert wait_state(bot, "WEB02", "withdrawn").state == "withdrawn"

        # Reject asks why in a modal; the card then says who rejected and why.
        third = REF.search(command(bot, "create APP01 --reason deploy")["text"])
        assert third is not None
        rejected_ref = third.group(0)
        reject = root_button(bot, rejected_ref, "checkpoint:reject")
        reply, key = bot.slack.click("checkpoint:reject", reject, user="U0CAROL")
        assert reply.status == 200
        view = opened_view(bot, "trigger." + key.rsplit(":", 1)[1])
        assert view["callback_id"] == "checkpoint:reject" and view["private_metadata"] == reject
        empty = bot.slack.submit_view(
            submitted(
                view, "V7", {"reason": {"reason": {"type": "plain_text_input", "value": " "}}}
            ),
            user="U0CAROL",
        )
        assert json.loads(empty.body)["response_action"] == "errors"
        assert change_of(bot, "APP01").state == "awaiting_approval"
        why = "quarter-end close <!here>"
        done = bot.slack.submit_view(
            submitted(
                view, "V7", {"reason": {"reason": {"type": "plain_text_input", "value": why}}}
            ),
            user="U0CAROL",
        )
        assert done.status == 200 and done.body == ""
        assert wait_state(bot, "APP01", "rejected").state == "rejected"
        card_said = card_text(card(bot, rejected_ref, until="rejected"))
        assert "*Last:* rejected by <@U0CAROL>" in card_said
        assert "*Reason:* quarter-end close &lt;!here&gt;" in card_said
        assert "<!here>" not in card_said
    assert raw_ids(bot.api.calls) == []


# --- the create modal refuses in place ------------------------------------------------


def test_the_create_modal_marks_and_refuses_what_the_policy_always_refuses(
    tmp_path: Path,
) -> None:
    with checked_bot(tmp_path, APPROVERS, USERGROUPS) as bot:
        reply, key = bot.slack.command("create", channel="C0OPS")
        assert reply.status == 200
        view = opened_view(bot, "trigger." + key.rsplit(":", 1)[1])
        options = {
            o["value"]: o["text"]["text"]
            for group in view["blocks"][0]["element"]["option_groups"]
            for o in group["options"]
        }
        assert "refused: domain controller" in options["CORP-DC01"]
        assert "refused" in options["SQL01"] and "refused" not in options["WEB01"]

        for vm, words in (("CORP-DC01", "domain controller"), ("NOPE99", "NOPE99")):
            answer = bot.slack.submit_view(submitted(view, "V3", create_values(vm, "24h", "patch")))
            assert answer.status == 200 and answer.seconds < ACK_LIMIT
            errors = json.loads(answer.body)
            assert errors["response_action"] == "errors" and set(errors["errors"]) == {"vm"}
            assert words in errors["errors"]["vm"] and len(errors["errors"]["vm"]) <= 300
        bad_ttl = bot.slack.submit_view(
            submitted(view, "V3", create_values("WEB02", "forever", "x"))
        )
        assert set(json.loads(bad_ttl.body)["errors"]) == {"ttl"}
        # Longer than the policy's maximum lifetime: refused under the TTL field.
        too_long = bot.slack.submit_view(submitted(view, "V3", create_values("WEB02", "30d", "x")))
        errors = json.loads(too_long.body)["errors"]
        assert set(errors) == {"ttl"} and "more than the maximum" in errors["ttl"]
        # Refused in place: nothing was recorded, nobody was messaged about it.
        posts = [c for c in bot.api.calls if c.method in ("chat.postMessage", "chat.postEphemeral")]
        assert not any("CORP-DC01" in shown(c.body) for c in posts)
