"""Issue #21: a principal is (workspace, user).

Correctly signed requests whose team is not ours, or whose user belongs to
another organisation (an external member of a shared channel), are refused
before any listener runs: nothing is recorded, nothing reaches a host, the
person is told on the request's own way back, and the refusal is logged.
The hosts are the WinRM emulator, so "nothing reached a host" is what the
emulated hosts received. The pure rules and the config keys are in
tests/test_workspace_rules.py.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlmodel import select

from bot.service import approve, extend, request_checkpoint
from bot.store.db import session_scope
from bot.store.models import ApprovalRequest, Change, ChangeEvent, Job, VMSettingChange
from tests.slack_support import Call, Reply, RunningBot, SlackSender, running_bot
from tests.test_slack_flow import command, shown, slack_problems
from tests.test_slack_http import answer, wait_state

# Every kind of request on prod waits for one approver; U0CAROL is an admin.
POLICY = """
admins: {users: [U0CAROL]}
rules:
  approvals:
    overrides:
      - scope: {tags: {env: prod}}
        params: {count: 1, actions: [create, rollback, merge, extend]}
"""
OURS = "T0TEST"
FOREIGN = "T0FOREIGN"
HOST_WORK = {"checkpoint-vm", "restore-vmsnapshot", "remove-vmsnapshot", "start-vm", "set-vm"}
TOLD_FOREIGN = "works only for the Slack workspace it was set up for"
TOLD_EXTERNAL = "acts only for members of its own workspace"


# --- signed requests into the real app -------------------------------------------------------


def _snapshot(bot: RunningBot) -> list[Any]:
    with session_scope(bot.ctx.engine) as s:
        return [
            [(c.id, c.state, c.version, c.expires_at) for c in s.exec(select(Change)).all()],
            [(e.id, e.kind, e.actor) for e in s.exec(select(ChangeEvent)).all()],
            [(r.id, r.state, len(r.approvals)) for r in s.exec(select(ApprovalRequest)).all()],
            [(j.id, j.kind) for j in s.exec(select(Job)).all()],
            [v.id for v in s.exec(select(VMSettingChange)).all()],
        ]


def _host_work(bot: RunningBot) -> list[str]:
    assert bot.emulator_log is not None
    return [e.cmdlet for e in bot.emulator_log.entries if e.cmdlet.casefold() in HOST_WORK]


def _web_api(calls: list[Call]) -> list[str]:
    """What the bot called on the Web API (not response_urls, not auth.test)."""
    return [c.method for c in calls if "." in c.method and not c.method.startswith("auth.")]


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A configured workspace (slack.team_ids: T0TEST) with a create waiting
    (CHG-0001, WEB01), an active change (CHG-0002, STG-WEB01) and an
    extension waiting (CHG-0003, WEB02)."""
    workdir = tmp_path_factory.mktemp("workspace")
    with running_bot(workdir, policy_text=POLICY, emulated=True, team_ids=(OURS,)) as bot:
        ctx = bot.ctx
        # The setup acts through the service as our people would.
        alice, bob = "U0ALICE", "U0BOB"
        waiting = request_checkpoint(ctx, "WEB01", reason="patch", requester=alice, channel="C0OPS")
        assert waiting.waiting
        request_checkpoint(ctx, "STG-WEB01", reason="x", requester=alice, channel="C0OPS")
        wait_state(bot, "STG-WEB01", "active", timeout=30)
        third = request_checkpoint(ctx, "WEB02", reason="x", requester=alice, channel="C0OPS")
        approve(ctx, third.change.ref, approver=bob)
        wait_state(bot, "WEB02", "active", timeout=30)
        assert extend(ctx, third.change.ref, "24h", requester=alice).waiting
        yield {
            "bot": bot,
            "create": waiting.change,
            "active": wait_state(bot, "STG-WEB01", "active"),
            "extend": wait_state(bot, "WEB02", "active"),
        }
    problems = [p for call in bot.api.calls for p in slack_problems(call)]
    assert problems == []


def _quiet(bot: RunningBot) -> tuple[list[Any], list[str], int]:
    notifier = bot.ctx.notifier
    flush = getattr(notifier, "flush", None)
    if flush is not None:
        flush()
    # The App Homes a change concerns are re-published after its sync
    # (handlers/home_refresh.py): wait until those rounds are over too. A
    # round is paced (5 a second) and starts on the Slack deps' executor,
    # which a loaded machine may start late: quiet means 2 s without one.
    seen = -1
    while seen != len(bot.api.of("views.publish")):
        seen = len(bot.api.of("views.publish"))
        time.sleep(2.0)
    return _snapshot(bot), _host_work(bot), len(bot.api.calls)


def _values(ref: str, version: int, purpose: str, request_id: int | None = None) -> str:
    """A button value as the bot renders it (templates/blocks.py, ActionValue)."""
    if request_id is not None:
        return f"{ref}:{purpose}#{request_id}:v{version}"
    return f"{ref}:{purpose}:v{version}"


def _request_id(bot: RunningBot, change_id: int) -> int:
    with session_scope(bot.ctx.engine) as s:
        found = s.exec(
            select(ApprovalRequest).where(
                ApprovalRequest.change_id == change_id, ApprovalRequest.state == "pending"
            )
        ).one()
        assert found.id is not None
        return found.id


def _attempts(
    estate: dict[str, Any], as_user: Callable[[str], str]
) -> list[tuple[str, Callable[[SlackSender], Any]]]:
    """Every action on every path: (what, send). `as_user` maps our users to
    who sends it (the same ids as ours from another workspace, or an
    external member's own ids). A send returns the HTTP reply, or (reply,
    its response_url key)."""

    def _slash(sender: SlackSender, text: str, user: str) -> tuple[Reply, str]:
        return sender.command(text, user=as_user(user))

    bot: RunningBot = estate["bot"]
    create, active, ext = estate["create"], estate["active"], estate["extend"]
    approve_create = _values(create.ref, create.version, "create", _request_id(bot, create.id))
    approve_ext = _values(ext.ref, ext.version, "extend", _request_id(bot, ext.id))
    card = {p: _values(active.ref, active.version, p) for p in ("rollback", "merge", "extend")}
    create_view = {
        "id": "V0CREATE",
        "type": "modal",
        "callback_id": "checkpoint:create",
        "private_metadata": "C0OPS",
        "state": {
            "values": {
                "vm": {"vm": {"type": "static_select", "selected_option": {"value": "APP01"}}},
                "ttl": {"ttl": {"type": "plain_text_input", "value": "24h"}},
                "reason": {"reason": {"type": "plain_text_input", "value": "mine now"}},
            }
        },
    }
    extend_view = {
        "id": "V0EXTEND",
        "type": "modal",
        "callback_id": "checkpoint:extend",
        "private_metadata": card["extend"],
        "state": {"values": {"duration": {"duration": {"type": "x", "value": "24h"}}}},
    }
    return [
        ("slash create", lambda s: _slash(s, "create APP01 --reason mine now", "U0ALICE")),
        ("slash approve", lambda s: _slash(s, f"approve {create.ref}", "U0BOB")),
        ("slash reject", lambda s: _slash(s, f"reject {create.ref} --reason no", "U0BOB")),
        ("slash rollback", lambda s: _slash(s, f"rollback {active.ref}", "U0ALICE")),
        ("slash merge", lambda s: _slash(s, f"merge {active.ref}", "U0ALICE")),
        ("slash extend", lambda s: _slash(s, f"extend {active.ref} 2h", "U0ALICE")),
        ("slash approve extension", lambda s: _slash(s, f"approve {ext.ref} extend", "U0BOB")),
        ("slash settings", lambda s: _slash(s, "settings APP01 --automatic on", "U0CAROL")),
        ("slash status", lambda s: _slash(s, f"status {create.ref}", "U0BOB")),
        (
            "button approve",
            lambda s: s.click("checkpoint:approve", approve_create, user=as_user("U0BOB")),
        ),
        (
            "button reject",
            lambda s: s.click("checkpoint:reject", approve_create, user=as_user("U0BOB")),
        ),
        (
            "button rollback",
            lambda s: s.click("checkpoint:rollback", card["rollback"], user=as_user("U0ALICE")),
        ),
        (
            "button merge",
            lambda s: s.click("checkpoint:merge", card["merge"], user=as_user("U0ALICE")),
        ),
        (
            "button extend",
            lambda s: s.click("checkpoint:extend", card["extend"], user=as_user("U0ALICE")),
        ),
        (
            "button approve extension",
            lambda s: s.click("checkpoint:approve", approve_ext, user=as_user("U0BOB")),
        ),
        (
            "button start",
            lambda s: s.click(
                "checkpoint:start",
                _values(active.ref, active.version, "start"),
                user=as_user("U0ALICE"),
            ),
        ),
        (
            "button resolve",
            lambda s: s.click(
                "checkpoint:resolve_failed",
                _values(active.ref, active.version, "resolve"),
                user=as_user("U0ALICE"),
            ),
        ),
        (
            "button open create",
            lambda s: s.click("checkpoint:open_create", "create", user=as_user("U0ALICE")),
        ),
        (
            "home approve",
            lambda s: s.home_click("checkpoint:approve", approve_create, user=as_user("U0BOB")),
        ),
        (
            "home merge",
            lambda s: s.home_click("checkpoint:merge", card["merge"], user=as_user("U0ALICE")),
        ),
        ("modal create", lambda s: s.submit_view(create_view, user=as_user("U0ALICE"))),
        ("modal extend", lambda s: s.submit_view(extend_view, user=as_user("U0ALICE"))),
        (
            "app home opened",
            lambda s: s.event(
                {"type": "app_home_opened", "user": as_user("U0BOB"), "tab": "home"},
                f"Ev-{s.team}-{s.user_team}",
            ),
        ),
    ]


def _told(bot: RunningBot, what: str, sent: Any) -> str | None:
    """What the refused person was shown: a slash command's ack body, a
    click's response_url post, a modal's update; None where Slack offers
    no way to answer (an App Home click, an event)."""
    if isinstance(sent, tuple):
        reply, key = sent
        assert reply.status == 200, what
        if what.startswith("slash") and reply.body:
            # Refused before any listener: Slack shows the ack's body.
            body = json.loads(reply.body)
            assert body["response_type"] == "ephemeral", what
            return str(body["text"])
        return shown(answer(bot, key))
    reply = sent
    assert reply.status == 200, what
    if what.startswith("modal"):
        body = json.loads(reply.body)
        assert body["response_action"] == "update", what
        return json.dumps(body["view"])
    assert reply.body == "", what
    return None


def _ours(user: str) -> str:
    return user


def _external(user: str) -> str:
    # Their own ids: Slack tells us their team (users.info, user.team_id).
    return user.replace("U0", "U0EXT")


@pytest.mark.parametrize(
    ("who", "as_user", "told"),
    [
        # The attack: correctly signed, another workspace, the same user ids as ours.
        ({"team": FOREIGN}, _ours, TOLD_FOREIGN),
        ({"team": FOREIGN, "enterprise": "E0THEIRS"}, _ours, TOLD_FOREIGN),
        # An external member of a shared channel in our workspace.
        ({"team": OURS, "user_team": "T0EXT"}, _external, TOLD_EXTERNAL),
    ],
    ids=["another-workspace", "another-grid-org", "external-user"],
)
def test_requests_from_outside_our_workspace_change_nothing(
    estate: dict[str, Any],
    who: dict[str, str],
    as_user: Callable[[str], str],
    told: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bot: RunningBot = estate["bot"]
    for user in ("U0ALICE", "U0BOB", "U0CAROL"):
        bot.api.user_teams[_external(user)] = "T0EXT"
    sender = bot.slack.as_team(**who)
    before, host_before, calls_before = _quiet(bot)
    caplog.set_level(logging.WARNING)
    attempts = _attempts(estate, as_user)
    sent = [(what, send(sender)) for what, send in attempts]
    time.sleep(1.0)  # what a listener would have started has reached the host by now

    after, host_after, _ = _quiet(bot)
    assert after == before
    assert host_after == host_before
    for what, reply in sent:
        text = _told(bot, what, reply)
        if text is not None:
            assert told in text, (what, text)
    # Nothing was sent through the Web API on their behalf: no DM (our
    # token would reach *our* user with that id), no modal, no App Home.
    # users.info only asks Slack who a slash command's user is.
    assert set(_web_api(bot.api.calls[calls_before:])) <= {"users.info"}, " ".join(
        c.method for c in bot.api.calls[calls_before:]
    )
    refused = [r.getMessage() for r in caplog.records if "refused a" in r.getMessage()]
    assert len(refused) == len(attempts), refused
    assert all(f"from team {who['team']}" in line for line in refused)


def test_our_own_workspace_still_works(estate: dict[str, Any]) -> None:
    """The same kind of request from our workspace goes through (the control)."""
    bot: RunningBot = estate["bot"]
    assert "Checkpoint settings of APP01" in shown(command(bot, "settings APP01", user="U0BOB"))
