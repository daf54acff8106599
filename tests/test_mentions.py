"""The pure decisions behind #17's Slack: mention tokens the bot writes and
keeps (never a person's text), which events get a thread reply, whom an
approval request messages directly, and what the policy refuses at once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bot.changes.views import EventView
from bot.context import build_context
from bot.domain import channel_mention, group_mention, plain_mentions, user_mention
from bot.notify.replies import approvers_to_ping, worth_a_reply
from bot.service import BadRequest, Principal, explain, lookups
from templates import Renderer
from templates.blocks import SlackRenderer, people
from tests.helpers import settings_for
from tests.test_slack_blocks import change

AT = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def test_helpers_write_tokens_only_for_slack_ids() -> None:
    assert user_mention("U0BOB") == "<@U0BOB>" and user_mention("cli:bob") == "@cli:bob"
    assert group_mention("S0APPROVERS") == "<!subteam^S0APPROVERS>"
    assert group_mention("approvers") == "approvers"
    assert channel_mention("C0OPS") == "<#C0OPS>" and channel_mention("ops") == "#ops"
    said = f"{user_mention('U0BOB')} in {channel_mention('C0OPS')} for {group_mention('S0A1')}"
    assert plain_mentions(said) == "@U0BOB in #C0OPS for @S0A1"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("needs <@U0BOB> or <!subteam^S0APPROVERS>", "needs <@U0BOB> or <!subteam^S0APPROVERS>"),
        ("only in <#C0OPS>", "only in <#C0OPS>"),
        ("<!channel> & <!here>", "&lt;!channel&gt; &amp; &lt;!here&gt;"),
        ("<@U0BOB|bob> <!subteam^S0X|@x>", "&lt;@U0BOB|bob&gt; &lt;!subteam^S0X|@x&gt;"),
        ("<https://evil.example|click>", "&lt;https://evil.example|click&gt;"),
        ("a < b > c", "a &lt; b &gt; c"),
    ],
)
def test_people_keeps_exactly_the_bots_tokens(text: str, shown: str) -> None:
    assert people(text) == shown


def _event(kind: str, seq: int, actor: str = "U0BOB", **details: Any) -> EventView:
    return EventView(seq, AT, actor, kind, None, None, "", details)


def test_a_reply_for_each_step_that_matters() -> None:
    story = [
        _event("requested", 1, "U0ALICE"),
        _event("request_approval", 2, "policy"),
        _event("approval", 3),
        _event("approve", 4),
        _event("start_create", 5, "checkpoint-bot"),
        _event("created", 6, "checkpoint-bot"),
        _event("rollback_awaits_approval", 7, "policy"),
        _event("approval", 8, "U0CAROL"),
        _event("start_rollback", 9, "U0ALICE"),
        _event("rolled_back", 10, "checkpoint-bot"),
    ]
    replied = [e.kind for e in story if worth_a_reply(e, story)]
    assert replied == [
        "request_approval",
        "approval",
        "created",
        "rollback_awaits_approval",
        "approval",
        "rolled_back",
    ]
    # An approve nobody's approval reply told (an admin's direct approve) is told.
    alone = [_event("requested", 1, "U0ALICE"), _event("approve", 2, "U0CAROL")]
    assert worth_a_reply(alone[1], alone)
    # The policy's own approve of a change that needs none: the card says it.
    auto = [_event("requested", 1, "U0ALICE"), _event("approve", 2, "policy")]
    assert not worth_a_reply(auto[1], auto)


def test_direct_pings_only_where_the_policy_says_and_never_the_requester() -> None:
    approval = {"users": ["U0BOB", "U0ALICE", "*", "cli:ops"], "excluded": ["U0ALICE"]}
    asked = _event("request_approval", 2, "policy", approval={**approval, "dm": True})
    assert approvers_to_ping(asked) == ("U0BOB",)
    assert approvers_to_ping(_event("request_approval", 2, "policy", approval=approval)) == ()
    assert approvers_to_ping(_event("approval", 3, approval={**approval, "dm": True})) == ()


def test_reply_and_dm_name_the_approvers_with_tokens_and_escape_the_reason() -> None:
    slack = SlackRenderer(Renderer())
    approval = {
        "users": ["U0BOB"],
        "groups": ["S0APPROVERS"],
        "excluded": ["U0ALICE"],
        "dm": True,
        "description": "1 approval from <@U0BOB> or a member of <!subteam^S0APPROVERS>",
    }
    event = EventView(2, AT, "policy", "request_approval", None, None, "x", {"approval": approval})
    c = change("awaiting_approval")
    reply = slack.payload("change_event", c=c, e=event)
    assert "<@U0BOB>" in reply["text"] and "<!subteam^S0APPROVERS>" in reply["text"]
    assert "Approval needed" in reply["blocks"][0]["text"]["text"]
    requested = EventView(1, AT, "U0ALICE", "requested", None, "requested", "<@U0EVE> now", {})
    said = slack.payload("change_event", c=c, e=requested)
    assert "&lt;@U0EVE&gt;" in said["blocks"][0]["text"]["text"]
    assert "<@U0EVE>" not in said["text"] + said["blocks"][0]["text"]["text"]


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return build_context(settings_for(tmp_path_factory.mktemp("mentions")))


def test_refusals_at_once_match_the_full_decision_on_the_demo_estate(ctx: Any) -> None:
    """What the create form refuses without a host call is exactly what the
    full decision (with the host) denies for the VM itself, on every demo VM."""
    who = Principal("U0ALICE", frozenset(), "C0OPS", team="T0TEST")
    marks = lookups.refused_vms(ctx, who)
    for vm in ctx.inventory.vms:
        full = explain(ctx, vm.name, "create", who).decision
        denying = {o.rule for o in full.fired if o.effect and o.effect.value == "deny"}
        at_once = {r.rule for r in lookups.refused_at_once(ctx, vm.name, who)}
        assert at_once <= denying, vm.name
        assert (vm.name in marks) == bool(at_once), vm.name
    assert marks["CORP-DC01"] == "domain_controller"
    assert "WEB01" not in marks


def test_an_unknown_vm_is_a_bad_request(ctx: Any) -> None:
    with pytest.raises(BadRequest):
        lookups.refused_at_once(ctx, "NOPE99", Principal("U0ALICE", frozenset(), None))
