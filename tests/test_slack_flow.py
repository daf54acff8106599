"""The issue's full flow over signed requests, literally: a policy file that
makes a prod create wait for one approver, the thread that tells the whole
story in order, group-based approvers resolved through `usergroups.list`,
`/checkpoint status` showing what waits, and checkpoint settings changed by
an admin through the policy. After each test, every message and view the
bot sent is checked the way Slack would (`slack_sdk.models`, block limits).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View
from sqlmodel import select

from bot.hyperv import CheckpointType
from bot.notify import ThreadNotifier
from bot.store.db import session_scope
from bot.store.models import Change
from templates.blocks import FALLBACK_TEXT, MESSAGE_TEXT_BUDGET
from tests.slack_support import Call, RunningBot, block_problem, running_bot
from tests.test_slack_http import ACK_LIMIT, answer, change_of, wait_state

# Lists replace whole when a policy file is merged over the default, so this
# override also drops the shipped "prod rollback needs 1 approval": on prod,
# a create waits for an approver and a rollback does not.
CREATE_NEEDS_APPROVAL = """
rules:
  approvals:
    overrides:
      - scope: {tags: {env: prod}}
        params: {count: 1, actions: [create]}
"""
# The shipped approvals rule (prod rollback needs 1), approvers by Slack group.
GROUP_APPROVERS = """
permissions:
  approve: {users: [], groups: [S0APPROVERS], channels: []}
"""
USERGROUPS = [{"id": "S0APPROVERS", "users": ["U0CAROL"]}]
ADMIN = """
admins: {users: [U0ADMIN]}
"""

MESSAGE_METHODS = ("chat.postMessage", "chat.update", "chat.postEphemeral")
VIEW_METHODS = ("views.open", "views.update", "views.push", "views.publish")
REF = re.compile(r"CHG-\d+")


# --- every message the bot produced is valid ----------------------------------------


def texts(node: Any) -> Iterator[str]:
    """Every text a reader sees in blocks (text objects' `text`)."""
    if isinstance(node, dict):
        if node.get("type") in ("plain_text", "mrkdwn") and isinstance(node.get("text"), str):
            yield node["text"]
        for value in node.values():
            yield from texts(value)
    elif isinstance(node, list):
        for item in node:
            yield from texts(item)


def block_kit_problems(where: str, blocks: Any, limit: int) -> list[str]:
    if not isinstance(blocks, list) or not 0 < len(blocks) <= limit:
        return [f"{where}: {len(blocks or [])} blocks (Slack takes 1..{limit})"]
    problems = []
    parsed = cast(list[Block | None], Block.parse_all(blocks))
    for index, (raw, block) in enumerate(zip(blocks, parsed, strict=True)):
        if block is None:
            problems.append(f"{where}: block {index}: unknown type {raw.get('type')!r}")
            continue
        try:
            block.to_dict()  # validates nested elements, which validate_json() does not
        except SlackObjectFormationError as exc:
            problems.append(f"{where}: block {index}: {exc}")
    return problems


def slack_problems(call: Call) -> list[str]:
    """What Slack would reject in one recorded call ([] when nothing)."""
    body, where = call.body, call.method
    problems = []
    if where in MESSAGE_METHODS or where.startswith("response_url:"):
        text = str(body.get("text") or "")
        if not text.strip() or len(text) > FALLBACK_TEXT:
            problems.append(f"{where}: fallback text of {len(text)} characters")
        problems += block_kit_problems(where, body.get("blocks"), 50)
        size = sum(len(t) for t in texts(body.get("blocks")))
        if size > MESSAGE_TEXT_BUDGET:
            problems.append(f"{where}: {size} characters of text (msg_blocks_too_long)")
    elif where in VIEW_METHODS:
        view = body.get("view") or {}
        try:
            View(**view).to_dict()
        except (SlackObjectFormationError, TypeError) as exc:
            problems.append(f"{where}: view: {exc}")
        problems += block_kit_problems(where, view.get("blocks"), 100)
    found = block_problem(body)  # what the fake Web API answered invalid_blocks for
    if found:
        problems.append(f"{where}: rejected by the fake Web API: {found}")
    return problems


def checked_calls(calls: list[Call]) -> list[Call]:
    return [
        c
        for c in calls
        if c.method in MESSAGE_METHODS + VIEW_METHODS or c.method.startswith("response_url:")
    ]


@contextmanager
def checked_bot(
    workdir: Path, policy_text: str, usergroups: list[dict[str, Any]] | None = None
) -> Iterator[RunningBot]:
    """A running bot whose every message and view is checked once it stops
    (after its notifier flushed, so the thread's last posts count too)."""
    with running_bot(workdir, usergroups, policy_text=policy_text) as bot:
        yield bot
    sent = checked_calls(bot.api.calls)
    assert sent, "the bot sent nothing to check"
    problems = [p for call in sent for p in slack_problems(call)]
    assert problems == []


# --- reading the thread ------------------------------------------------------------


def shown(body: dict[str, Any]) -> str:
    """A message's fallback text and every text in its blocks."""
    return str(body.get("text", "")) + json.dumps(body.get("blocks", []), ensure_ascii=False)


def roots(calls: list[Call], ref: str) -> list[Call]:
    """The root post of `ref`'s thread and every update of it, in order."""
    return [
        c
        for c in calls
        if c.method in ("chat.postMessage", "chat.update")
        and "thread_ts" not in c.body
        and str(c.body.get("text", "")).startswith(f"{ref}:")
    ]


def replies(calls: list[Call], thread_ts: str) -> list[Call]:
    return [
        c for c in calls if c.method == "chat.postMessage" and c.body.get("thread_ts") == thread_ts
    ]


def wave_replies(calls: list[Call], ref: str = "BAT-0001") -> list[str]:
    """What a wave's thread says of its own milestones (its replies that
    begin with the wave's ref), as shown."""
    return [
        shown(c.body)
        for c in calls
        if c.method == "chat.postMessage"
        and c.body.get("thread_ts")
        and str(c.body.get("text", "")).startswith(f"{ref}: ")
    ]


def button(body: dict[str, Any], action_id: str) -> str | None:
    """The value of the root's button `action_id` (what a click sends), or None."""
    for block in body.get("blocks", []):
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            if element.get("action_id") == action_id:
                return str(element["value"])
    return None


def card_button(bot: RunningBot, ref: str, action_id: str, user: str = "U0ALICE") -> str:
    """The value of `action_id` on wave `ref`'s card as `user` has it now
    (`/checkpoint batch`): a wave's buttons are bound to what they were
    drawn for (bot/wave_keys.py), so a click sends the card's own value."""
    value = button(command(bot, f"batch {ref}", user=user), action_id)
    assert value is not None, f"{ref}'s card offers {user} no {action_id}"
    return value


def root_button(bot: RunningBot, ref: str, action_id: str) -> str:
    """Wait until the root of `ref`'s thread offers `action_id`; its value."""
    calls = bot.api.wait_for(
        lambda cs: (found := roots(cs, ref)) and button(found[-1].body, action_id)
    )
    value = button(roots(calls, ref)[-1].body, action_id)
    assert value is not None
    return value


def thread_ts_of(bot: RunningBot, ref: str) -> str | None:
    with session_scope(bot.ctx.engine) as s:
        change = s.exec(select(Change).where(Change.id == int(ref.split("-")[1]))).one()
        return change.thread_ts


def home_of(bot: RunningBot, user: str) -> str:
    """What `user`'s App Home shows once they open it."""
    event = {"type": "app_home_opened", "user": user, "channel": "D0", "tab": "home"}
    assert bot.slack.event(event, f"Ev-{user}").status == 200

    def published(calls: list[Call]) -> list[Call]:
        return [c for c in calls if c.method == "views.publish" and c.body["user_id"] == user]

    return shown(published(bot.api.wait_for(published))[-1].body["view"])


def command(bot: RunningBot, text: str, user: str = "U0ALICE") -> dict[str, Any]:
    reply, key = bot.slack.command(text, user=user)
    assert reply.status == 200 and reply.seconds < ACK_LIMIT, text
    return answer(bot, key)


def click(bot: RunningBot, action_id: str, value: str, user: str) -> dict[str, Any]:
    reply, key = bot.slack.click(action_id, value, user=user)
    assert reply.status == 200 and reply.seconds < ACK_LIMIT, action_id
    return answer(bot, key)


def quiet_click(bot: RunningBot, action_id: str, value: str, user: str) -> str:
    """A click whose effect the card and thread show to everyone: no private
    echo is expected (the caller checks none came, once the effect did).
    Its response_url key."""
    reply, key = bot.slack.click(action_id, value, user=user)
    assert reply.status == 200 and reply.seconds < ACK_LIMIT, action_id
    return key


def no_echo(bot: RunningBot, key: str) -> bool:
    return not any(c.method == key for c in bot.api.calls)


# --- the full flow ------------------------------------------------------------------


def test_full_flow_the_thread_tells_the_whole_story_in_order(tmp_path: Path) -> None:
    with checked_bot(tmp_path, CREATE_NEEDS_APPROVAL) as bot:
        asked = command(bot, "create WEB01 --reason KB5044284 patch")
        assert "waits for approval" in shown(asked)
        found = REF.search(asked["text"])
        assert found is not None
        ref = found.group(0)

        # The thread's root, in the requesting channel, offers Approve / Reject.
        approve = root_button(bot, ref, "checkpoint:approve")
        assert button(roots(bot.api.calls, ref)[0].body, "checkpoint:reject")
        assert roots(bot.api.calls, ref)[0].body["channel"] == "C0OPS"

        # Approving your own request is refused, to you alone.
        refused = click(bot, "checkpoint:approve", approve, user="U0ALICE")
        assert "cannot approve" in shown(refused)
        assert change_of(bot, "WEB01").state == "awaiting_approval"

        approved = quiet_click(bot, "checkpoint:approve", approve, user="U0BOB")
        active = wait_state(bot, "WEB01", "active")
        on_host = bot.ctx.host_for("HV01").list_checkpoints(active.vm_id)
        assert active.checkpoint_id in {c.id for c in on_host}

        # Roll back from the root's button (its confirm dialog is Slack's,
        # client-side); on prod it needs no approval under this policy.
        rollback = root_button(bot, ref, "checkpoint:rollback")
        rolled = quiet_click(bot, "checkpoint:rollback", rollback, "U0ALICE")
        done = wait_state(bot, "WEB01", "rolled_back")
        # The card and the thread told everyone: no private "done" echo.
        assert no_echo(bot, approved) and no_echo(bot, rolled)

        kinds = [e.kind for e in done.events]
        assert kinds == [
            "requested",
            "request_approval",
            "approval",
            "approve",
            "start_create",
            "created",
            "start_rollback",
            "rolled_back",
        ]
        # The refused self-approval is no change event: it was ephemeral only.
        assert not any(e.actor == "U0ALICE" and "approv" in e.kind for e in done.events)

        thread_ts = thread_ts_of(bot, ref)
        assert thread_ts is not None
        # One reply per step that matters (docs/slack-setup.md, "A quiet thread").
        story = [
            ("request_approval", "Approval needed"),
            ("approval", "approval given* by <@U0BOB>"),
            # The bot did it; the thread names who asked.
            ("created", "created* as <@U0ALICE> asked"),
            ("rolled_back", "rolled back* as <@U0ALICE> asked"),
        ]
        bot.api.wait_for(
            lambda cs: (
                len(replies(cs, thread_ts)) == len(story)
                and "rolled back" in roots(cs, ref)[-1].body["text"]
            )
        )
    calls = bot.api.calls  # everything, the bot stopped (its notifier flushed)

    # Exactly one root, posted once and updated in place up to the final state.
    posted = [c for c in roots(calls, ref) if c.method == "chat.postMessage"]
    updates = [c for c in roots(calls, ref) if c.method == "chat.update"]
    assert len(posted) == 1 and updates
    assert all(c.body["ts"] == thread_ts and c.body["channel"] == "C0OPS" for c in updates)
    final = updates[-1].body
    assert final["text"].endswith("rolled back")
    assert "*Last:* rolled back as <@U0ALICE> asked" in shown(final)
    assert button(final, "checkpoint:merge") and not button(final, "checkpoint:approve")

    # One reply per step that matters, in order, telling the story.
    thread = replies(calls, thread_ts)
    assert all(c.body["text"].startswith(f"{ref}: ") for c in thread)
    for (_kind, words), call in zip(story, thread, strict=True):
        assert words in shown(call.body), (words, call.body["text"])
    assert not any("cannot approve" in shown(c.body) for c in thread)
    # Nothing else was posted about the change: the root and its replies.
    about = [c for c in calls if c.method == "chat.postMessage" and ref in c.body["text"]]
    assert len(about) == 1 + len(story)


def test_domain_controller_is_refused_with_the_usn_reason_and_no_thread(tmp_path: Path) -> None:
    with checked_bot(tmp_path, CREATE_NEEDS_APPROVAL) as bot:
        refused = command(bot, "create CORP-DC01 --reason patch")
        assert "Refused" in shown(refused) and "USN rollback" in shown(refused)
        denied = change_of(bot, "CORP-DC01")
        assert denied.state == "denied"  # recorded
        assert isinstance(bot.ctx.notifier, ThreadNotifier)
        bot.ctx.notifier.flush()  # a thread, if any, would have been posted by now
        assert thread_ts_of(bot, denied.ref) is None
        posts = bot.api.of("chat.postMessage") + bot.api.of("chat.update")
        assert not any(denied.ref in shown(c.body) for c in posts)


# --- group-based approvers, and /checkpoint status while a rollback waits ------------


def test_group_approvers_and_status_shows_the_pending_rollback(tmp_path: Path) -> None:
    with checked_bot(tmp_path, GROUP_APPROVERS, USERGROUPS) as bot:
        assert "checkpoint is being taken" in shown(command(bot, "create WEB01 --reason patch"))
        active = wait_state(bot, "WEB01", "active")
        rollback = root_button(bot, active.ref, "checkpoint:rollback")
        quiet_click(bot, "checkpoint:rollback", rollback, user="U0ALICE")

        # The root now asks the group; `/checkpoint status` shows it the same way.
        approve = root_button(bot, active.ref, "checkpoint:approve")
        status = command(bot, f"status {active.ref}", user="U0BOB")
        assert "Waiting for approval* to roll back" in shown(status)
        assert "<!subteam^S0APPROVERS>" in shown(status) and "(0 of 1 so far)" in shown(status)
        assert button(status, "checkpoint:approve") == approve
        assert button(status, "checkpoint:reject") == approve
        assert not button(status, "checkpoint:rollback")
        # The card as the thread shows it (its demo footer last), then the history.
        card = roots(bot.api.calls, active.ref)[-1].body["blocks"]
        assert status["blocks"][: len(card) - 1] == card[:-1]
        assert "*History* (5 steps)" in shown(status)
        assert status["blocks"][-1] == card[-1]

        # App Home: the change awaits Carol's approval (her group's), not Bob's.
        homes = {user: home_of(bot, user) for user in ("U0CAROL", "U0BOB")}
        assert "Awaiting your approval (1)" in homes["U0CAROL"] and active.ref in homes["U0CAROL"]
        assert "Awaiting your approval (0)" in homes["U0BOB"]

        refused = click(bot, "checkpoint:approve", approve, user="U0BOB")
        assert "cannot approve" in shown(refused) and "<!subteam^S0APPROVERS>" in shown(refused)
        approved = quiet_click(bot, "checkpoint:approve", approve, user="U0CAROL")
        done = wait_state(bot, "WEB01", "rolled_back")
        assert no_echo(bot, approved)
        approvals = [e.actor for e in done.events if e.kind == "approval"]
        assert approvals == ["U0CAROL"]
        # Nothing waits any more: status shows the root without the approval line.
        after = command(bot, f"status {active.ref}")
        assert "Waiting for approval" not in shown(after)
        assert button(after, "checkpoint:merge") and not button(after, "checkpoint:approve")


# --- checkpoint settings: shown to anyone, changed by admins through the policy -------


def test_settings_are_changed_by_admins_through_the_policy(tmp_path: Path) -> None:
    with checked_bot(tmp_path, ADMIN) as bot:

        def host_type(vm_name: str) -> CheckpointType:
            vm = bot.ctx.inventory.vm(vm_name)
            return bot.ctx.host_for(vm.host).get_vm(vm.vm_id).checkpoint_type

        before = host_type("APP01")
        assert before is CheckpointType.Production
        seen = command(bot, "settings APP01", user="U0BOB")
        assert "Checkpoint settings of APP01" in shown(seen)
        assert "Admins change them" in shown(seen) and "Changed" not in shown(seen)

        # Not an admin: refused, nothing changes.
        refused = command(bot, "settings APP01 --type production-only", user="U0BOB")
        assert "for admins" in shown(refused)
        assert host_type("APP01") is before

        changed = command(
            bot,
            'settings APP01 --type production-only --reason "no silent fallback"',
            user="U0ADMIN",
        )
        assert "CheckpointType Production → ProductionOnly" in shown(changed)
        assert "Changed* by <@U0ADMIN>" in shown(changed)
        assert host_type("APP01") is CheckpointType.ProductionOnly
        again = command(
            bot,
            'settings APP01 --type production-only --reason "no silent fallback"',
            user="U0ADMIN",
        )
        assert "Nothing changed" in shown(again)

        # Standard on SQL is refused by the policy's checkpoint_type rule, even for an admin.
        sql_before = host_type("SQL01")
        standard = command(bot, "settings SQL01 --type standard", user="U0ADMIN")
        assert "Standard is refused for SQL01" in shown(standard)
        assert host_type("SQL01") is sql_before is not CheckpointType.Standard


def test_short_answers_and_modals(tmp_path: Path) -> None:
    with checked_bot(tmp_path, ADMIN) as bot:
        windows = command(bot, "windows")
        assert windows["text"] == "Change windows"
        assert "no change windows" in shown(windows) and ":bulb: Admins add them" in shown(windows)

        created = command(bot, "create STG-WEB01 --reason <!channel> patch")
        found = REF.search(created["text"])
        assert found is not None
        assert (
            created["blocks"][0]["text"]["text"]
            == f"*{found.group(0)}: checkpoint of STG-WEB01 requested*"
        )
        assert "checkpoint is being taken" in shown(created)
        active = wait_state(bot, "STG-WEB01", "active")
        status = command(bot, f"status {active.ref}")
        assert "Waiting for approval" not in shown(status)
        assert "&lt;!channel&gt; patch" in shown(status) and "<!channel>" not in shown(status)

        # The modals: `/checkpoint create` alone, and the root's Extend button.
        command_reply, _ = bot.slack.command("create")
        assert command_reply.status == 200
        extend = root_button(bot, active.ref, "checkpoint:extend")
        click_reply, _ = bot.slack.click("checkpoint:extend", extend, user="U0ALICE")
        assert click_reply.status == 200
        views = bot.api.wait_for(lambda cs: len([c for c in cs if c.method == "views.open"]) == 2)
        callbacks = {c.body["view"]["callback_id"] for c in views if c.method == "views.open"}
        assert callbacks == {"checkpoint:create", "checkpoint:extend"}


def test_the_check_finds_what_slack_would_reject() -> None:
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "ok"}}
    too_long = {
        "type": "button",
        "text": {"type": "plain_text", "text": "x" * 76},
        "action_id": "a",
    }
    bad = [
        Call("chat.postMessage", {"text": "x", "blocks": [section] * 51}, 0.0),
        Call("chat.update", {"text": "x", "blocks": [{"type": "nonsense"}]}, 0.0),
        Call("response_url:r1", {"text": "", "blocks": [section]}, 0.0),
        Call(
            "chat.postMessage",
            {"text": "x", "blocks": [{"type": "actions", "elements": [too_long]}]},
            0.0,
        ),
        Call("views.publish", {"view": {"type": "home", "blocks": [section] * 101}}, 0.0),
        Call(
            "views.open",
            {
                "view": {
                    "type": "modal",
                    "title": {"type": "plain_text", "text": "x" * 25},
                    "blocks": [section],
                }
            },
            0.0,
        ),
    ]
    assert all(slack_problems(call) for call in bad)
    assert slack_problems(Call("chat.postMessage", {"text": "x", "blocks": [section]}, 0.0)) == []


SCHEDULED_WINDOW = """
rules:
  change_window: {effect: schedule}
windows:
  - name: weekend
    rrule: "FREQ=WEEKLY;BYDAY=SA;BYHOUR=22;BYMINUTE=0"
    duration: 6h
    timezone: Europe/Berlin
    scope: {tags: {tier: web}}
"""


def test_a_request_outside_its_window_is_scheduled_and_windows_shows_it(tmp_path: Path) -> None:
    with checked_bot(tmp_path, SCHEDULED_WINDOW) as bot:
        created = command(bot, "create WEB01 --reason KB5044284")
        assert "scheduled for its change window" in shown(created)
        scheduled = wait_state(bot, "WEB01", "scheduled")
        assert scheduled.checkpoint_id is None
        windows = command(bot, "windows")
        assert "*weekend*" in shown(windows) and "1 checkpoint scheduled" in shown(windows)
