"""The Slack templates: every message and view renders valid Block Kit
(parsed by slack_sdk, `to_dict()` on every block), shows user text escaped,
stays within Slack's limits, and offers exactly the buttons that fit."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from jinja2 import ChoiceLoader, DictLoader

from bot.changes import State
from bot.changes.views import (
    ChangeView,
    CheckpointRow,
    EventView,
    HostProblem,
    PendingApproval,
    UpcomingWindow,
)
from bot.service import Happened, list_checkpoints, request_checkpoint, show_change
from bot.service.queries import CheckpointListing
from bot.service.requests import Outcome
from handlers import messages
from policies import ApprovalRequirement, Decision, Effect, OutcomeKind, RuleOutcome, Verdict
from policies.explain import rows as explain_rows
from templates import Renderer
from templates.blocks import (
    DEMO_FOOTER,
    MESSAGE_TEXT_BUDGET,
    ActionValue,
    BlockKitError,
    SlackRenderer,
    pack_groups,
    parse_action_value,
    truncate_chars,
    validate_blocks,
)
from tests.helpers import T0, running_context

NASTY = "<!channel> & <https://x|y>"
ESCAPED = "&lt;!channel&gt; &amp; &lt;https://x|y&gt;"
GUID = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"


@pytest.fixture(scope="module")
def slack() -> SlackRenderer:
    return SlackRenderer(Renderer())


# --- realistic values, built from the real view and policy types -------------------


def outcome(rule: str, effect: Effect | None, message: str, remediation: str = "") -> RuleOutcome:
    kind = OutcomeKind.FIRED if effect else OutcomeKind.PASSED
    return RuleOutcome(rule, kind, effect, message, remediation)


APPROVERS = ApprovalRequirement(1, ("U123", "U456"), ("S0APPROVERS",), ("U0ALICE",))
NEEDS_APPROVAL = Decision(
    Verdict.NEEDS_APPROVAL,
    (
        outcome("domain_controller", None, "WEB01 is not a domain controller"),
        outcome("approvals", Effect.NEEDS_APPROVAL, "prod VMs need 1 approval"),
        outcome("ttl", Effect.WARN, "TTL set to the scope's default of 72h"),
    ),
    approval=APPROVERS,
)
DENIED = Decision(
    Verdict.DENY,
    (
        outcome(
            "domain_controller",
            Effect.DENY,
            "CORP-DC01 is one of 2 DCs of corp.example: restoring it causes USN rollback",
            "Use Windows Server Backup (system state) or the AD Recycle Bin instead.",
        ),
        outcome("storage_headroom", Effect.DENY, f"only 2.1 GiB free {NASTY}", "Free space."),
        outcome("ttl", Effect.WARN, "TTL set to 72h"),
    ),
)


def change(state: str = "active", **overrides: Any) -> ChangeView:
    holds = state in ("active", "merging", "rolling_back", "rolled_back", "merged")
    events = (
        EventView(1, T0, "U0ALICE", "requested", None, "requested", "", {}),
        EventView(
            2,
            T0,
            "policy",
            "request_approval",
            "requested",
            "awaiting_approval",
            "prod VMs need 1 approval",
            {},
        ),
    )
    values: dict[str, Any] = {
        "id": 42,
        "ref": "CHG-0042",
        "version": 7,
        "action": "create",
        "state": state,
        "vm_name": "WEB01",
        "vm_id": "6f0c1e1a-1111-2222-3333-444455556666",
        "host": "hv01",
        "checkpoint_type": "production",
        "reason": "KB5044284 patch",
        "requester": "U0ALICE",
        "source": "slack",
        "created_at": T0,
        "updated_at": T0 + timedelta(minutes=5),
        "ttl_seconds": 72 * 3600,
        "expires_at": T0 + timedelta(hours=72) if holds else None,
        "checkpoint_id": GUID if holds else None,
        "checkpoint_name": "CHG-0042 KB5044284 patch" if holds else None,
        "decision": NEEDS_APPROVAL.to_dict(),
        "events": events,
    }
    return ChangeView(**{**values, **overrides})


def checkpoint_rows(count: int, vms: int = 30) -> tuple[CheckpointRow, ...]:
    rows = []
    for i in range(count):
        vm = i % vms
        rows.append(
            CheckpointRow(
                host=f"hv{vm % 3:02d}",
                vm_name=f"APP{vm:03d}",
                vm_id=f"vm-{vm}",
                id=f"{i:08x}-2fa1-11d2-883f-0016d3cca427",
                name=f"before patch {i}",
                parent_id=None,
                depth=(i // vms) % 3,
                created_at=T0,
                age_seconds=3600 * (i % 200),
                size_bytes=(i + 1) * 1024**3,
                # What every host reports for production and standard checkpoints alike.
                snapshot_type="Standard",
                captured_state="Off",
                change_ref=f"CHG-{i:04d}" if i % 4 else None,
                change_state="active" if i % 4 else None,
                taken="production",
            )
        )
    rows.sort(key=lambda r: (r.vm_name, r.depth))
    return tuple(rows)


def waiting_create(c: ChangeView, request_id: int = 3) -> list[PendingApproval]:
    """What `bot.notify.pending` finds for a change waiting for its create."""
    return [PendingApproval(c, "create", APPROVERS.describe(), request_id=request_id)]


def samples() -> dict[str, dict[str, Any]]:
    """Values for every template, as the service would hand them over."""
    event_failed = EventView(
        5,
        T0,
        "worker-1",
        "rollback_failed",
        "rolling_back",
        "active",
        "Unable to find a snapshot matching the given criteria.",
        {},
    )
    return {
        "change_root": {
            "c": change("awaiting_approval"),
            "pending": waiting_create(change("awaiting_approval")),
            "start_after_restore": True,
        },
        "change_event": {"c": change(), "e": event_failed},
        "denied_ephemeral": {
            "outcome": Outcome(
                change("denied", vm_name="CORP-DC01", decision=DENIED.to_dict()), DENIED
            ),
            "action": "create",
        },
        "checkpoint_list": {
            "listing": CheckpointListing(
                checkpoint_rows(5, vms=2), (HostProblem("hv09", "connection refused"),)
            ),
            "scope": None,
        },
        "policy_explain": {
            "action": "rollback",
            "vm": "WEB01",
            "who": "U0ALICE",
            "decision": NEEDS_APPROVAL,
            "rows": explain_rows(NEEDS_APPROVAL),
        },
        "help": {
            "sections": [
                '*/checkpoint create VM --reason "…"* takes a checkpoint.',
                "*/checkpoint list [VM]* shows checkpoints.",
            ]
        },
        "error_ephemeral": {"message": "unknown VM 'web99'", "hint": "try /checkpoint list"},
    }


VIEWS: dict[str, dict[str, Any]] = {
    "create_modal": {"vms_by_host": {"hv01": ["WEB01", "APP01"], "hv02": ["SQL01"]}},
    "extend_modal": {"c": change()},
    "app_home": {
        "user": "U0ALICE",
        "mine": [change(), change("awaiting_approval", id=43, ref="CHG-0043")],
        "to_approve": [
            PendingApproval(
                change(id=44, ref="CHG-0044", requester="U0BOB"),
                "rollback",
                APPROVERS.describe(),
                request_id=9,
                requested_by="U0BOB",
            )
        ],
        "windows": [
            UpcomingWindow("prod-weekend", T0 + timedelta(days=4), T0 + timedelta(days=4, hours=6))
        ],
        "overdue": [change(id=45, ref="CHG-0045", expires_at=T0 - timedelta(days=2))],
        "start_after_restore": True,
    },
}


# --- walking the output ----------------------------------------------------------


def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def texts(node: Any) -> list[str]:
    return [d["text"] for d in walk(node) if d.get("type") in ("mrkdwn", "plain_text")]


def buttons(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in walk(blocks) if d.get("type") == "button"]


def action_ids(blocks: list[dict[str, Any]]) -> set[str]:
    return {b["action_id"] for b in buttons(blocks)}


def has_footer(blocks: list[dict[str, Any]]) -> bool:
    return any(DEMO_FOOTER in t for t in texts(blocks))


# --- every template --------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(samples()))
@pytest.mark.parametrize("demo", [False, True])
def test_every_message_renders_valid_block_kit(slack: SlackRenderer, name: str, demo: bool) -> None:
    payload = slack.payload(name, demo=demo, **samples()[name])
    assert payload["text"].strip()
    assert 0 < len(payload["blocks"]) <= 50
    # The demo footer is on the thread's root, once: not on its replies.
    assert has_footer(payload["blocks"]) is (demo and name not in THREAD_REPLIES)
    assert slack.message(name, demo=demo, **samples()[name]) == payload["blocks"]
    assert slack.text(name, demo=demo, **samples()[name]) == payload["text"]


@pytest.mark.parametrize("name", sorted(VIEWS))
@pytest.mark.parametrize("demo", [False, True])
def test_every_view_renders_valid_block_kit(slack: SlackRenderer, name: str, demo: bool) -> None:
    view = slack.view(name, demo=demo, **VIEWS[name])
    assert 0 < len(view["blocks"]) <= 100
    assert has_footer(view["blocks"]) is demo
    if view["type"] == "modal":
        assert len(view["title"]["text"]) <= 24


# --- buttons ---------------------------------------------------------------------

THREAD_REPLIES = frozenset({"change_event", "change_progress"})
EXPECTED_BUTTONS = {
    State.AWAITING_APPROVAL: {"checkpoint:approve", "checkpoint:reject", "checkpoint:withdraw"},
    State.ACTIVE: {"checkpoint:rollback", "checkpoint:merge", "checkpoint:extend"},
    State.ROLLED_BACK: {"checkpoint:merge", "checkpoint:extend"},
    # Waiting for its time (--at) or window: its requester may take it back.
    State.SCHEDULED: {"checkpoint:unschedule"},
}


@pytest.mark.parametrize("state", list(State))
def test_root_message_offers_exactly_the_buttons_that_fit(
    slack: SlackRenderer, state: State
) -> None:
    c = change(state.value)
    waiting = waiting_create(c) if state is State.AWAITING_APPROVAL else []
    blocks = slack.message("change_root", c=c, pending=waiting, start_after_restore=True)
    assert action_ids(blocks) == EXPECTED_BUTTONS.get(state, set())
    for b in buttons(blocks):
        value = parse_action_value(b["value"])
        assert (value.ref, value.version) == ("CHG-0042", 7)
        assert not value.legacy and value.fits(b["action_id"])
        if b["action_id"] in ("checkpoint:approve", "checkpoint:reject"):
            assert (value.purpose, value.request_id) == ("create", 3)


def test_a_waiting_create_without_its_request_offers_no_button(slack: SlackRenderer) -> None:
    # Nothing to bind an Approve to: it says what waits and offers nothing.
    blocks = slack.message("change_root", c=change("awaiting_approval"), start_after_restore=True)
    assert action_ids(blocks) == set()
    assert any("Waiting for approval* to create" in t for t in texts(blocks))


def test_styles_and_confirm_dialogs(slack: SlackRenderer) -> None:
    by_id = {
        b["action_id"]: b
        for b in buttons(slack.message("change_root", c=change("active"), start_after_restore=True))
    }
    assert by_id["checkpoint:rollback"]["style"] == "danger"
    assert "confirm" in by_id["checkpoint:merge"] and "confirm" not in by_id["checkpoint:extend"]
    c = change("awaiting_approval")
    waiting = {
        b["action_id"]: b
        for b in buttons(slack.message("change_root", c=c, pending=waiting_create(c)))
    }
    assert waiting["checkpoint:approve"]["style"] == "primary"
    assert waiting["checkpoint:reject"]["style"] == "danger"
    # Reject asks why in a modal (its own confirmation); Withdraw confirms.
    assert "confirm" not in waiting["checkpoint:reject"]
    assert "confirm" in waiting["checkpoint:withdraw"]


@pytest.mark.parametrize(
    ("holds_memory", "start", "words"),
    [
        (
            False,
            True,
            "comes back Off (this checkpoint holds no memory); "
            "the bot starts it again if it was running.",
        ),
        (False, False, "it stays Off until someone starts it."),
        (True, True, "returns to the state it had then, memory included"),
        (None, True, "may come back Off or Saved"),
    ],
)
def test_rollback_confirm_says_what_is_lost_and_how_the_vm_comes_back(
    slack: SlackRenderer, holds_memory: bool | None, start: bool, words: str
) -> None:
    # What a restore does follows what the checkpoint holds (the host's
    # report), not the type that was asked for.
    blocks = slack.message(
        "change_root",
        c=change("active", holds_memory=holds_memory),
        start_after_restore=start,
    )
    rollback = next(b for b in buttons(blocks) if b["action_id"] == "checkpoint:rollback")
    text = rollback["confirm"]["text"]["text"]
    assert text.startswith("Everything written to WEB01 since the checkpoint was taken is lost.")
    assert words in text


def test_pending_rollback_approval_replaces_the_buttons_and_warns(slack: SlackRenderer) -> None:
    pending = PendingApproval(
        None, "rollback", APPROVERS.describe(), approvals=0, required=1, request_id=12
    )
    blocks = slack.message(
        "change_root", c=change("active"), pending=[pending], start_after_restore=False
    )
    assert action_ids(blocks) == {
        "checkpoint:approve",
        "checkpoint:reject",
        "checkpoint:withdraw",
    }
    approve = next(b for b in buttons(blocks) if b["action_id"] == "checkpoint:approve")
    assert "is lost" in approve["confirm"]["text"]["text"]
    assert approve["text"]["text"] == "Approve rollback"
    assert approve["value"] == "CHG-0042:rollback#12:v7"
    assert any("Waiting for approval* to roll back" in t and "@U123" in t for t in texts(blocks))


def test_each_waiting_request_gets_its_own_buttons(slack: SlackRenderer) -> None:
    c = change("active")
    pending = [
        PendingApproval(c, "rollback", APPROVERS.describe(), request_id=12, requested_by="U0A"),
        PendingApproval(c, "extend", APPROVERS.describe(), request_id=14, requested_by="U0A"),
    ]
    blocks = slack.message("change_root", c=c, pending=pending, start_after_restore=True)
    rows = [[e["value"] for e in b["elements"]] for b in blocks if b["type"] == "actions"]
    assert rows == [
        ["CHG-0042:rollback#12:v7"] * 3,
        ["CHG-0042:extend#14:v7"] * 3,
    ]
    labels = [b["text"]["text"] for b in buttons(blocks) if b["action_id"] == "checkpoint:approve"]
    assert labels == ["Approve rollback", "Approve extension"]


def test_confirm_dialogs_stay_within_their_limits(slack: SlackRenderer) -> None:
    long_vm = "V" * 200
    for state in ("awaiting_approval", "active", "rolled_back"):
        c = change(state, vm_name=long_vm, host="H" * 200)
        blocks = slack.message(
            "change_root",
            c=c,
            pending=waiting_create(c) if state == "awaiting_approval" else [],
            start_after_restore=True,
        )
        for b in buttons(blocks):
            if "confirm" in b:
                assert len(b["confirm"]["title"]["text"]) <= 100
                assert len(b["confirm"]["text"]["text"]) <= 300
                assert len(b["confirm"]["confirm"]["text"]) <= 30


def test_buttons_carry_what_they_are_for_and_the_version(slack: SlackRenderer) -> None:
    blocks = slack.message("change_root", c=change("rolled_back", version=11))
    assert {b["action_id"]: b["value"] for b in buttons(blocks)} == {
        "checkpoint:merge": "CHG-0042:merge:v11",
        "checkpoint:extend": "CHG-0042:extend:v11",
    }


def test_action_values_parse_back() -> None:
    assert parse_action_value("CHG-0042:rollback#12:v7") == ActionValue(
        "CHG-0042", 7, "rollback", 12
    )
    assert parse_action_value("CHG-0042:merge:v7") == ActionValue("CHG-0042", 7, "merge")
    # An old message's value: it names no purpose, and may act only where
    # exactly one thing can be meant (bot/service/binding.py).
    old = parse_action_value("CHG-0042:v7")
    assert old == ActionValue("CHG-0042", 7) and old.legacy
    for value in ("CHG-0042:rollback#12:v7", "CHG-0042:merge:v7", "CHG-0042:v7"):
        assert str(parse_action_value(value)) == value
    for bad in ("CHG-0042", "CHG-0042:start#3:v1", "CHG-1:frobnicate:v1", "CHG-1:create:v1"):
        with pytest.raises(ValueError, match="CHG-n:ACTION"):
            parse_action_value(bad)


@pytest.mark.parametrize(
    ("action_id", "value", "fits"),
    [
        ("checkpoint:approve", "CHG-1:rollback#4:v2", True),
        ("checkpoint:reject", "CHG-1:create#4:v2", True),
        ("checkpoint:approve", "CHG-1:rollback:v2", False),  # a Roll back value on Approve
        ("checkpoint:rollback", "CHG-1:rollback#4:v2", False),  # a request on Roll back
        ("checkpoint:rollback", "CHG-1:merge:v2", False),
        ("checkpoint:merge", "CHG-1:merge:v2", True),
        ("checkpoint:resolve_failed", "CHG-1:resolve:v2", True),
        ("checkpoint:approve", "CHG-1:v2", True),  # legacy: the service decides
    ],
)
def test_a_value_fits_only_its_own_button(action_id: str, value: str, fits: bool) -> None:
    assert parse_action_value(value).fits(action_id) is fits


@pytest.mark.parametrize(
    "value", ["CHG-0042:v7", "CHG-0042:merge:v7", "CHG-0042:rollback#3:v7", "nonsense"]
)
def test_a_rendered_approve_button_must_name_its_request(value: str) -> None:
    # New messages never carry a legacy value or one meant for another button.
    block = {
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "text": {"type": "plain_text", "text": "Approve"},
                "action_id": "checkpoint:rollback",
                "value": value,
            }
        ],
    }
    with pytest.raises(BlockKitError, match="does not say what it is for"):
        validate_blocks("test", [block], 50)


# --- escaping and truncation -----------------------------------------------------


def test_user_text_is_escaped_everywhere(slack: SlackRenderer) -> None:
    c = change("active", reason=NASTY, requester="alice <!here>", vm_name="WEB01")
    rendered = [
        slack.payload("change_root", c=c, start_after_restore=True),
        slack.payload("change_event", c=c, e=replace(c.events[1], message=NASTY, actor=NASTY)),
        # A hint is mrkdwn its caller built, escaping what it echoes (a
        # person's name, an event's words); a message naming people keeps
        # only the bot's own mention tokens.
        slack.payload(
            "error_ephemeral",
            message=NASTY,
            hint=messages.outdated((Happened(NASTY, NASTY, T0, None),), 0),
        ),
        slack.payload("error_ephemeral", message=NASTY, mentions=True),
        slack.payload(
            "denied_ephemeral", outcome=Outcome(replace(c, state="denied"), DENIED), action="create"
        ),
        {"blocks": slack.view("app_home", **{**VIEWS["app_home"], "mine": [c], "overdue": [c]})},
    ]
    for payload in rendered:
        out = json.dumps(payload, ensure_ascii=False)
        assert "<!channel>" not in out and "<!here>" not in out and "<https://x" not in out
    assert any(ESCAPED in t for t in texts(rendered[0]["blocks"]))
    assert "alice &lt;!here&gt;" in json.dumps(rendered[0], ensure_ascii=False)


def test_slack_user_ids_become_mentions(slack: SlackRenderer) -> None:
    blocks = slack.message("change_root", c=change("merged", requester="W0123ABC"))
    assert any("<@W0123ABC>" in t for t in texts(blocks))
    blocks = slack.message("change_root", c=change("merged", requester="alice"))
    assert not any("<@alice>" in t for t in texts(blocks))


def test_a_5000_character_reason_is_cut_in_the_template(slack: SlackRenderer) -> None:
    reason = ("<b>&" * 1250)[:5000]
    c = change("active", reason=reason)
    payload = slack.payload("change_root", c=c, start_after_restore=True)
    reason_text = next(t for t in texts(payload["blocks"]) if t.startswith("*Reason*"))
    assert len(reason_text) <= 3000 and reason_text.endswith("…")
    # The cut never leaves half an entity behind.
    assert re.search(r"&[a-z]*$", reason_text[:-1]) is None
    assert sum(len(t) for t in texts(payload["blocks"])) <= MESSAGE_TEXT_BUDGET
    others: list[tuple[str, dict[str, Any]]] = [
        ("error_ephemeral", {"message": reason * 3, "hint": reason}),
        ("change_event", {"c": c, "e": replace(c.events[0], message=reason)}),
    ]
    for name, values in others:
        assert slack.message(name, **values)
    assert slack.view("extend_modal", c=replace(c, ref="CHG-" + "9" * 40))


def test_truncate_chars_respects_mrkdwn() -> None:
    assert truncate_chars("abc", 3) == "abc"
    assert truncate_chars("abcdef", 4) == "abc…"
    assert truncate_chars("ab &amp; c", 6, mrkdwn=True) == "ab …"
    assert truncate_chars("see <@U123456> now", 9, mrkdwn=True) == "see …"
    assert truncate_chars("see <@U1> now", 12, mrkdwn=True) == "see <@U1> n…"


# --- the checkpoint list ---------------------------------------------------------


def test_300_checkpoints_fit_one_message_with_an_and_more_line(slack: SlackRenderer) -> None:
    listing = CheckpointListing(checkpoint_rows(300), ())
    payload = slack.payload("checkpoint_list", listing=listing, scope=None, demo=True)
    blocks = payload["blocks"]
    assert len(blocks) <= 50
    assert all(len(t) <= 3000 for t in texts(blocks))
    assert sum(len(t) for t in texts(blocks)) <= MESSAGE_TEXT_BUDGET
    more = next(t for t in texts(blocks) if "more — use the CLI" in t)
    omitted = int(more.split("and ")[1].split(" more")[0])
    shown = sum(t.count(" old · ") for t in texts(blocks))
    assert 0 < omitted < 300 and shown + omitted == 300
    assert "/checkpoint list VM" in more
    assert payload["text"] == "300 checkpoints, 75 orphans"


def test_the_list_shows_trees_owners_orphans_and_problems(slack: SlackRenderer) -> None:
    listing = CheckpointListing(checkpoint_rows(6, vms=2), (HostProblem("hv09", NASTY),))
    body = "\n".join(texts(slack.message("checkpoint_list", listing=listing, scope="hv01")))
    assert "*APP000* on hv00" in body and "*APP001* on hv01" in body
    assert "orphan — no change owns it" in body and "CHG-0001 (active)" in body
    assert "└" in body and "production" in body and "GiB" in body
    assert "hv09* could not be asked: " + ESCAPED in body
    assert "more — use the CLI" not in body


def test_an_empty_list_says_how_to_start(slack: SlackRenderer) -> None:
    body = texts(slack.message("checkpoint_list", listing=CheckpointListing((), ()), scope="WEB01"))
    assert any("No checkpoints on WEB01" in t for t in body)


def test_a_list_no_host_answered_never_says_there_are_no_checkpoints(
    slack: SlackRenderer,
) -> None:
    # As list_checkpoints returns it when HV03, the one host asked, failed.
    listing = CheckpointListing((), (HostProblem("HV03", "connection refused"),), answered=())
    body = "\n".join(texts(slack.message("checkpoint_list", listing=listing, scope="HV03")))
    assert "No host answered (HV03 could not be reached): the checkpoints of HV03 are unknown" in (
        body
    )
    assert "No checkpoints" not in body and "Take one" not in body
    assert "HV03* could not be asked: connection refused" in body


def test_pack_groups_repeats_the_heading_when_a_group_continues() -> None:
    packed = pack_groups([("*A*", ["x" * 60] * 5)], limit=150, max_chunks=10, budget=10_000)
    assert packed.omitted == 0 and packed.shown == 5
    assert packed.chunks[0].startswith("*A*\n") and packed.chunks[1].startswith("*A* (continued)")
    assert all(len(c) <= 150 for c in packed.chunks)


# --- the others ------------------------------------------------------------------


def test_denied_lists_rules_with_remediation_and_the_record(slack: SlackRenderer) -> None:
    body = "\n".join(texts(slack.message("denied_ephemeral", **samples()["denied_ephemeral"])))
    assert "USN rollback" in body and "*What to do instead:* Use Windows Server Backup" in body
    assert "storage_headroom" in body and ESCAPED in body
    assert "TTL set to 72h" not in body  # warnings are not reasons for a refusal
    assert "Recorded as *CHG-0042*" in body


def test_event_reply_quotes_the_error(slack: SlackRenderer) -> None:
    blocks = slack.message("change_event", **samples()["change_event"])
    (text,) = texts(blocks)
    assert text.startswith(":warning: *rollback failed* by worker-1 · <!date^")
    assert "rolling back → active" in text
    assert "\n> Unable to find a snapshot matching the given criteria." in text


def test_policy_explain_shows_every_rule_and_the_verdict(slack: SlackRenderer) -> None:
    blocks = slack.message("policy_explain", **samples()["policy_explain"])
    assert blocks[0]["text"]["text"] == "rollback WEB01: NEEDS APPROVAL"
    body = "\n".join(texts(blocks))
    for rule, mark, _ in explain_rows(NEEDS_APPROVAL):
        assert f"{mark} `{rule}`" in body
    assert "1 approval from <@U123>, <@U456> or a member of <!subteam^S0APPROVERS>" in body


def test_error_without_hint(slack: SlackRenderer) -> None:
    assert len(slack.message("error_ephemeral", message="nope")) == 1


def test_create_modal_groups_vms_by_host_and_preselects(slack: SlackRenderer) -> None:
    view = slack.view(
        "create_modal",
        vms_by_host={"hv01": ["WEB01", "APP01"], "hv02": ["SQL01"]},
        vm="SQL01",
        checkpoint_type="standard",
        metadata="C0123",
    )
    assert view["callback_id"] == "checkpoint:create" and view["submit"]["text"] == "Request"
    assert view["private_metadata"] == "C0123"
    inputs = {b["block_id"]: b["element"] for b in view["blocks"] if b["type"] == "input"}
    assert set(inputs) == {"vm", "checkpoint_type", "ttl", "reason", "at"}
    assert [g["label"]["text"] for g in inputs["vm"]["option_groups"]] == ["hv01", "hv02"]
    assert inputs["vm"]["initial_option"]["value"] == "SQL01"
    assert inputs["checkpoint_type"]["initial_option"]["value"] == "standard"
    assert inputs["ttl"]["initial_value"] == "72h"
    assert inputs["reason"]["multiline"] is True


def test_create_modal_beyond_100_vms_uses_an_external_select(slack: SlackRenderer) -> None:
    many = {f"hv{h}": [f"VM{h}-{i:03d}" for i in range(40)] for h in range(3)}
    view = slack.view("create_modal", vms_by_host=many)
    select = next(b["element"] for b in view["blocks"] if b.get("block_id") == "vm")
    assert select["type"] == "external_select"
    assert any("120 VMs" in t for t in texts(view["blocks"]))


def test_app_home_caps_blocks_and_has_useful_empty_states(slack: SlackRenderer) -> None:
    empty = slack.view("app_home", user="U0ALICE", mine=[], to_approve=[], windows=[], overdue=[])
    body = "\n".join(texts(empty["blocks"]))
    assert "Nothing waits for your approval." in body
    assert "No checkpoint has outlived its TTL" in body
    assert "You have no open changes" in body and "No change window opens soon" in body
    many = [change(id=i, ref=f"CHG-{i:04d}", reason=NASTY * 20) for i in range(1, 200)]
    full = slack.view(
        "app_home",
        user="U0ALICE",
        mine=many,
        overdue=many,
        to_approve=[
            PendingApproval(c, "create", APPROVERS.describe(), request_id=c.id) for c in many
        ],
        windows=[UpcomingWindow(f"w{i}", T0, T0 + timedelta(hours=2)) for i in range(200)],
        start_after_restore=True,
        demo=True,
    )
    assert len(full["blocks"]) <= 100
    body = "\n".join(texts(full["blocks"]))
    assert "…and 187 more: approve from their threads." in body
    assert has_footer(full["blocks"])
    overdue_ids = action_ids(full["blocks"]) - {"checkpoint:open_create"}
    assert overdue_ids == {
        "checkpoint:approve",
        "checkpoint:reject",
        "checkpoint:merge",
        "checkpoint:extend",
    }


# --- validation catches what Slack would reject ------------------------------------


@pytest.mark.parametrize(
    ("blocks", "problem"),
    [
        ([{"type": "bogus"}], "unknown block type 'bogus'"),
        ([{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}], "150"),
        (
            [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}, "acessory": {}}],
            "keys Block Kit does not know: block 0.acessory",
        ),
        (
            [
                {
                    "type": "actions",
                    "elements": [
                        {
                            "type": "button",
                            "action_id": "a",
                            "text": {"type": "plain_text", "text": "x" * 76},
                        }
                    ],
                }
            ],
            "75",
        ),
        ([{"type": "section", "fields": [{"type": "mrkdwn", "text": "x" * 2001}]}], "2000"),
        ([{"type": "section", "text": {"type": "mrkdwn", "text": " "}}], "empty text"),
        ([{"type": "divider"}] * 51, "51 blocks"),
        (
            [{"type": "divider", "block_id": "a"}, {"type": "divider", "block_id": "a"}],
            "duplicate block_id",
        ),
    ],
)
def test_validation_names_the_template(blocks: list[dict[str, Any]], problem: str) -> None:
    with pytest.raises(BlockKitError, match=re.escape("slack/x.json.j2")) as info:
        validate_blocks("slack/x.json.j2", blocks, 50)
    assert problem in str(info.value)


def test_broken_templates_fail_with_their_name() -> None:
    section = '{"type": "section", "text": {"type": "mrkdwn", "text": "' + "y" * 2900 + '"}}'
    title = '{"type": "plain_text", "text": "' + "t" * 25 + '"}'
    broken = {
        "slack/not_json.json.j2": '{"text": "x", "blocks": [,]}',
        "slack/too_long.json.j2": '{"text": "x", "blocks": [' + ",".join([section] * 5) + "]}",
        "slack/bad_view.json.j2": '{"type": "modal", "title": '
        + title
        + ', "blocks": [{"type": "divider"}]}',
    }
    renderer = Renderer()
    assert renderer.env.loader is not None
    renderer.env.loader = ChoiceLoader([DictLoader(broken), renderer.env.loader])
    slack = SlackRenderer(renderer)
    with pytest.raises(BlockKitError, match=r"slack/not_json.json.j2: not JSON"):
        slack.message("not_json")
    with pytest.raises(BlockKitError, match=r"too_long.json.j2: 14500 characters of text"):
        slack.message("too_long")
    with pytest.raises(BlockKitError, match=r"bad_view.json.j2: view: title"):
        slack.view("bad_view")


# --- end to end: real views from the service -------------------------------------


def test_real_service_views_render(slack: SlackRenderer, tmp_path: Path) -> None:
    # Jobs run inline: the change is active when the request returns.
    with running_context(tmp_path, inline=True) as ctx:
        out = request_checkpoint(ctx, "web01", reason=NASTY, requester="U0ALICE", ttl="24h")
        assert out.job_id is not None
        c = show_change(ctx, out.change.ref)
        listing = list_checkpoints(ctx)
        denied = request_checkpoint(ctx, "CORP-DC01", reason="x", requester="U0ALICE")
    assert c.state == "active"
    blocks = slack.message("change_root", c=c, start_after_restore=True, demo=True)
    assert action_ids(blocks) == EXPECTED_BUTTONS[State.ACTIVE]
    for e in c.events:
        assert slack.message("change_event", c=c, e=e, demo=True)
    assert slack.message("checkpoint_list", listing=listing, scope=None)
    assert denied.refused
    body = "\n".join(texts(slack.message("denied_ephemeral", outcome=denied, action="create")))
    assert "domain_controller" in body and f"Recorded as *{denied.change.ref}*" in body
    assert slack.view("extend_modal", c=c)
    assert datetime.now(UTC)  # the clock is not read by templates; only values are rendered


def test_a_vm_a_rollback_left_off_gets_a_start_button_and_a_line(slack: SlackRenderer) -> None:
    left = change("rolled_back", vm_state_after="Off")
    blocks = slack.message("change_root", c=left, start_after_restore=False)
    assert action_ids(blocks) == {"checkpoint:start", "checkpoint:merge", "checkpoint:extend"}
    assert any("is Off* after the rollback" in t for t in texts(blocks))
    running = change("rolled_back", vm_state_after="Running")
    assert "checkpoint:start" not in action_ids(slack.message("change_root", c=running))


def test_the_card_shows_what_was_asked_and_what_was_taken(slack: SlackRenderer) -> None:
    fell_back = change(
        "active",
        taken_type="standard",
        taken_evidence="CheckpointType was Production, but the checkpoint holds the VM's memory",
    )
    body = "\n".join(texts(slack.message("change_root", c=fell_back)))
    assert "*Asked for*\nproduction" in body and "*Taken*\nstandard :warning:" in body
    assert "holds the VM's memory" in body
    gone = "\n".join(texts(slack.message("change_root", c=change("vanished"))))
    assert ":ghost:" in gone


def test_what_waits_is_told_in_the_words_that_asked_for_it() -> None:
    """`ChangeView.waiting_for` (`change show`'s "waiting:" lines): each
    waiting action with the latest event that asked approvers for it; a
    policy that raised the need ("now needs …") names the action in its
    details, and an action no event asked for still shows."""
    asked = (
        EventView(3, T0, "policy", "rollback_awaits_approval", None, None, "rollback needs 1", {}),
        EventView(4, T0, "policy", "merge_awaits_approval", None, None, "merge needs 1", {}),
        EventView(
            5, T0, "policy", "awaits_approval", None, None, "now needs 2", {"action": "rollback"}
        ),
        # Recorded before the action was named: it cannot be placed.
        EventView(6, T0, "policy", "awaits_approval", None, None, "now needs 3", {}),
    )
    view = change("active", events=asked, waiting=("rollback", "merge", "extend"))
    assert view.waiting_for == [
        ("rollback", "rollback now needs 2"),
        ("merge", "merge needs 1"),
        ("extend", "extend needs approval"),
    ]
    assert change("active", events=asked).waiting_for == []


# --- /checkpoint status alone: the open changes ------------------------------------


def test_open_changes_fit_one_message_and_count_what_is_left(slack: SlackRenderer) -> None:
    """Forty changes with long reasons and a waiting approval each: the list
    stays within Slack's blocks and text limits (checked as it renders),
    escapes what people wrote, and says there is more."""
    from bot.service.change_list import ChangeListing

    many = tuple(
        change(
            "active",
            id=n,
            ref=f"CHG-{n:04d}",
            reason=f"{NASTY} " + "patching " * 40,
            waiting=("rollback", "extend"),
        )
        for n in range(40, 0, -1)
    )
    payload = slack.payload(
        "change_list", listing=ChangeListing(many, more=True), now=T0 + timedelta(hours=2)
    )
    assert len(payload["blocks"]) <= 50
    said = "\n".join(b["text"]["text"] for b in payload["blocks"] if b["type"] == "section")
    # One requester for all: named once, above the list, not on each line.
    assert ":large_green_circle: *CHG-0040* · WEB01 on hv01 · active · 2h ago" in said
    assert "<@U0ALICE>" not in said and "All asked for by <@U0ALICE>" in json.dumps(payload)
    assert "`/checkpoint approve CHG-0040 rollback`" in said
    assert NASTY not in said and "&lt;!channel&gt;" in said
    assert "`checkpoint-bot change list` on the CLI lists them all" in json.dumps(payload)
    empty = slack.payload("change_list", listing=ChangeListing((), more=False), now=T0)
    assert "No open changes." in empty["blocks"][1]["text"]["text"]
    assert empty["text"] == "0 open changes"


@pytest.mark.parametrize("state", ["rejected", "withdrawn", "active"])
def test_a_card_past_its_verdict_says_no_guardrails_passed(
    slack: SlackRenderer, state: str
) -> None:
    """Seen: a rejected and a withdrawn create's card said "Policy ✓ all
    guardrails passed" (docs/slack-setup.md, "The card is current": the
    verdict only while the change waits on it). With no warning left, the
    card has no policy section at all."""
    quiet = Decision(Verdict.NEEDS_APPROVAL, NEEDS_APPROVAL.outcomes[:2], approval=APPROVERS)
    blocks = slack.message("change_root", c=change(state, decision=quiet.to_dict()))
    shown = "\n".join(texts(blocks))
    assert "guardrails passed" not in shown and "*Policy" not in shown
    # A warning stays true after the verdict, and keeps its section.
    warned = slack.message("change_root", c=change(state))
    assert "*Policy*\n! `ttl` TTL set to the scope's default of 72h" in "\n".join(texts(warned))


def test_a_card_that_waits_on_its_verdict_says_it(slack: SlackRenderer) -> None:
    allowed = Decision(Verdict.ALLOW, NEEDS_APPROVAL.outcomes[:1])
    blocks = slack.message("change_root", c=change("requested", decision=allowed.to_dict()))
    assert "✓ all guardrails passed" in "\n".join(texts(blocks))


def test_a_live_migration_in_the_history_is_not_said_to_be_the_bots_doing(
    slack: SlackRenderer,
) -> None:
    """Seen: `/checkpoint status` listed "checkpoint-bot: *moved*" for a VM
    an administrator live-migrated behind the bot's back."""
    moved = EventView(
        3,
        T0,
        "checkpoint-bot",
        "moved",
        None,
        None,
        "WEB02 is now on HV01; it moved at or before 2026-12-06 10:00 UTC; the change "
        "follows it from HV02",
        {"from": "HV02", "to": "HV01", "found_at": T0.isoformat()},
    )
    c = change("active", events=(*change("active").events, moved))
    shown = "\n".join(texts(slack.message("change_history", c=c, HISTORY_EVENTS=20)))
    assert "*moved*" in shown and "checkpoint-bot" not in shown.split("*moved*")[0].split("\n")[-1]
