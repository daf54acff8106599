"""Issue #21: an approval approves only what the approver saw.

Over signed requests into the real Bolt app (HTTP mode), with a recording
Web API: a button acts only on the request it was rendered for (Approve /
Reject) or on the change as its card showed it (Roll back, Keep & merge,
Extend); anything else changes nothing, says what happened since, and the
thread's card is refreshed. Old-format values (`CHG-n:vN`, from messages
posted before the buttons said what they were for) act only where exactly
one thing can be meant at exactly that version. `/checkpoint approve` and
the App Home name what they approve, and ask which when several wait.

The first tests run the hosts as the WinRM emulator, so "nothing reached the
host" is read from what the emulated host received (its command log).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from bot.changes.views import ChangeView
from bot.service import approve, extend, reject, request_checkpoint, rollback
from bot.store.db import session_scope
from bot.store.models import ApprovalRequest, Change, ChangeEvent, Job
from templates.blocks import parse_action_value
from tests.slack_support import Call, RunningBot, running_bot
from tests.test_slack_flow import (
    button,
    click,
    command,
    no_echo,
    quiet_click,
    roots,
    shown,
    slack_problems,
)
from tests.test_slack_http import change_of, wait_state

# On prod every kind of request waits for one approver (never the requester).
EVERYTHING_NEEDS_APPROVAL = """
rules:
  approvals:
    overrides:
      - scope: {tags: {env: prod}}
        params: {count: 1, actions: [create, rollback, merge, extend]}
"""
# The shipped rule: on prod a rollback waits for one approver; here also the create.
CREATE_AND_ROLLBACK = """
rules:
  approvals:
    overrides:
      - scope: {tags: {env: prod}}
        params: {count: 1, actions: [create, rollback]}
"""
REF = re.compile(r"CHG-\d+")


# The setup acts through the service as these people (what a click or a
# command would do); only the clicks under test go through Slack.
def alice() -> str:
    return "U0ALICE"


def bob() -> str:
    return "U0BOB"


HOST_WORK = ("Checkpoint-VM", "Restore-VMSnapshot", "Remove-VMSnapshot", "Start-VM", "Set-VM")


@contextmanager
def checked(workdir: Path, policy: str, *, emulated: bool = False) -> Iterator[RunningBot]:
    """A running bot whose every message is checked the way Slack would once it stops."""
    with running_bot(workdir, policy_text=policy, emulated=emulated) as bot:
        yield bot
    problems = [p for call in bot.api.calls for p in slack_problems(call)]
    assert problems == []


# --- reading the thread and the record -----------------------------------------------


def root_value(bot: RunningBot, ref: str, action_id: str, purpose: str | None = None) -> str:
    """Wait until the root of `ref`'s thread offers `action_id` (for
    `purpose`, when given); that button's value."""

    def found(calls: list[Call]) -> str | None:
        posted = roots(calls, ref)
        value = button(posted[-1].body, action_id) if posted else None
        if value is None or (purpose and parse_action_value(value).purpose != purpose):
            return None
        return value

    value = found(bot.api.wait_for(found))
    assert value is not None
    return value


def record(bot: RunningBot, change_id: int) -> tuple[Any, ...]:
    """Everything a click could have changed: the change, its events, its
    approval requests, its jobs."""
    with session_scope(bot.ctx.engine) as s:
        change = s.get(Change, change_id)
        assert change is not None
        events = s.exec(
            select(ChangeEvent.seq, ChangeEvent.kind, ChangeEvent.actor).where(
                ChangeEvent.change_id == change_id
            )
        ).all()
        requests = s.exec(
            select(ApprovalRequest).where(ApprovalRequest.change_id == change_id)
        ).all()
        jobs = s.exec(select(Job.id, Job.kind).where(Job.change_id == change_id)).all()
        return (
            change.state,
            change.version,
            sorted(events),
            sorted((r.id, r.action, r.state, len(r.approvals)) for r in requests),
            sorted(jobs),
        )


def pending(bot: RunningBot, change_id: int) -> list[tuple[str, int]]:
    with session_scope(bot.ctx.engine) as s:
        found = s.exec(
            select(ApprovalRequest)
            .where(ApprovalRequest.change_id == change_id, ApprovalRequest.state == "pending")
            .order_by(col(ApprovalRequest.id))
        ).all()
        return [(r.action, len(r.approvals)) for r in found]


def card_updates(calls: list[Call], ref: str) -> int:
    return len([c for c in roots(calls, ref) if c.method == "chat.update"])


def waits_for(bot: RunningBot, change_id: int, action: str) -> None:
    """Until `action` waits for an approver (a click's work runs after its ack)."""
    bot.api.wait_for(lambda _cs: (action, 0) in pending(bot, change_id))


def settle() -> None:
    """Long enough for a wrongly queued host job to have reached the host."""
    time.sleep(1.0)


# --- 1. the issue, literally: an old create-time Approve while a rollback waits ---------


def test_an_old_approve_of_the_create_never_approves_the_rollback(tmp_path: Path) -> None:
    with checked(tmp_path, CREATE_AND_ROLLBACK, emulated=True) as bot:
        asked = command(bot, "create WEB01 --reason KB5044284")
        found = REF.search(asked["text"])
        assert found is not None and "waits for approval" in shown(asked)
        ref = found.group(0)
        create_approve = root_value(bot, ref, "checkpoint:approve", "create")
        old = parse_action_value(create_approve)
        assert old.request_id is not None and not old.legacy

        key = quiet_click(bot, "checkpoint:approve", create_approve, "U0BOB")
        active = wait_state(bot, "WEB01", "active")
        assert no_echo(bot, key)
        assert bot.host_commands("Checkpoint-VM") == ["HV01"]

        # Alice asks to roll back; it waits for an approver, who never saw it.
        roll = root_value(bot, ref, "checkpoint:rollback")
        quiet_click(bot, "checkpoint:rollback", roll, "U0ALICE")
        waits_for(bot, active.id, "rollback")
        rollback_approve = root_value(bot, ref, "checkpoint:approve", "rollback")
        assert parse_action_value(rollback_approve).request_id != old.request_id
        before = record(bot, active.id)

        # Carol clicks the create-time Approve still visible higher up the thread.
        updates = card_updates(bot.api.calls, ref)
        told = shown(click(bot, "checkpoint:approve", create_approve, "U0CAROL"))
        assert "out of date" in told and "nothing was done" in told
        assert "the create approval" in told and "approved by <@U0BOB>" in told
        assert "Waiting now: *the rollback*" in told
        # ...and the card is brought up to date.
        bot.api.wait_for(lambda cs: card_updates(cs, ref) > updates)
        # Its Reject does nothing either.
        told = shown(click(bot, "checkpoint:reject", create_approve, "U0CAROL"))
        assert "out of date" in told and "the create approval" in told

        settle()
        assert record(bot, active.id) == before
        assert pending(bot, active.id) == [("rollback", 0)]
        assert bot.host_commands("Restore-VMSnapshot") == []

        # The rollback's own button, from the fresh card, does approve it.
        quiet_click(bot, "checkpoint:approve", rollback_approve, "U0CAROL")
        wait_state(bot, "WEB01", "rolled_back", timeout=30)
        assert bot.host_commands("Restore-VMSnapshot") == ["HV01"]


def test_an_old_format_value_acts_only_on_exactly_what_it_could_mean(tmp_path: Path) -> None:
    """`CHG-n:vN` (a message posted before buttons said what they were for)
    carries no request: it may act only while the change is still at that
    version and exactly one request waits; here the create's, clicked after
    the create was approved and a rollback was asked for, must not approve
    the rollback (the issue's `CHG-0009:v2`)."""
    with checked(tmp_path, CREATE_AND_ROLLBACK, emulated=True) as bot:
        asked = command(bot, "create WEB01 --reason KB5044284")
        found = REF.search(asked["text"])
        assert found is not None
        ref = found.group(0)
        waiting = change_of(bot, "WEB01")
        assert waiting.state == "awaiting_approval"
        create_card = f"{ref}:v{waiting.version}"

        quiet_click(bot, "checkpoint:approve", create_card, "U0BOB")
        active = wait_state(bot, "WEB01", "active")
        quiet_click(bot, "checkpoint:rollback", f"{ref}:v{active.version}", "U0ALICE")
        waits_for(bot, active.id, "rollback")
        before = record(bot, active.id)

        told = shown(click(bot, "checkpoint:approve", create_card, "U0CAROL"))
        assert "out of date" in told and "nothing was done" in told
        assert "Waiting now: *the rollback*" in told
        # What happened since, with who and when; never version numbers.
        assert "Since then:" in told and "by <@U0BOB> <!date^" in told, told
        assert not re.search(r"\bv\d+\b", told.replace(create_card, "")), told
        settle()
        assert record(bot, active.id) == before
        assert bot.host_commands("Restore-VMSnapshot") == []

        # At exactly the version the rollback's card shows, one thing waits:
        # the old format may approve it.
        now = change_of(bot, "WEB01")
        quiet_click(bot, "checkpoint:approve", f"{ref}:v{now.version}", "U0CAROL")
        wait_state(bot, "WEB01", "rolled_back", timeout=30)
        assert bot.host_commands("Restore-VMSnapshot") == ["HV01"]


# --- 2. every approval kind, every path --------------------------------------------------


def _settled_then_waiting(bot: RunningBot, kind: str) -> tuple[int, str, str]:
    """A change whose `kind` request was settled while a different request
    now waits; returns (change id, the old request's Approve value, what
    waits now). Set up through the service, as the other paths would."""
    ctx = bot.ctx
    out = request_checkpoint(ctx, "WEB01", reason="patch", requester=alice(), channel="C0OPS")
    ref = out.change.ref
    first = root_value(bot, ref, "checkpoint:approve", "create")
    if kind == "create":
        approve(ctx, ref, approver=bob())
        wait_state(bot, "WEB01", "active")
        rollback(ctx, ref, requester=alice())
        return out.change.id, first, "rollback"
    approve(ctx, ref, approver=bob())
    wait_state(bot, "WEB01", "active")
    if kind == "rollback":
        rollback(ctx, ref, requester=alice())
        old = root_value(bot, ref, "checkpoint:approve", "rollback")
        reject(ctx, ref, approver=bob(), reason="not now")
        rollback(ctx, ref, requester=alice())  # asked again: a new request
        return out.change.id, old, "rollback"
    if kind == "merge":
        from bot.service import merge

        merge(ctx, ref, requester=alice())
        old = root_value(bot, ref, "checkpoint:approve", "merge")
        reject(ctx, ref, approver=bob(), reason="not now")
        extend(ctx, ref, "24h", requester=alice())
        return out.change.id, old, "extend"
    assert kind == "extend"
    extend(ctx, ref, "24h", requester=alice())
    old = root_value(bot, ref, "checkpoint:approve", "extend")
    approve(ctx, ref, approver=bob())
    rollback(ctx, ref, requester=alice())
    return out.change.id, old, "rollback"


def _button_path(bot: RunningBot, action_id: str, value: str) -> str:
    return shown(click(bot, action_id, value, "U0CAROL"))


def _home_path(bot: RunningBot, action_id: str, value: str) -> str:
    """A click in Carol's App Home: no response_url, answered in her DM,
    and her Home is published afresh."""
    before = len(bot.api.of("views.publish"))
    reply = bot.slack.home_click(action_id, value, user="U0CAROL")
    assert reply.status == 200

    def dm(calls: list[Call]) -> list[Call]:
        return [
            c for c in calls if c.method == "chat.postMessage" and c.body["channel"] == "U0CAROL"
        ]

    answer = dm(bot.api.wait_for(dm))[-1]
    bot.api.wait_for(lambda cs: len([c for c in cs if c.method == "views.publish"]) > before)
    return shown(answer.body)


PATHS: dict[str, Callable[[RunningBot, str, str], str]] = {
    "button": _button_path,
    "app_home": _home_path,
}


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("verb", ["approve", "reject"])
@pytest.mark.parametrize("kind", ["create", "rollback", "merge", "extend"])
def test_a_settled_requests_buttons_change_nothing(
    tmp_path: Path, kind: str, verb: str, path: str
) -> None:
    with checked(tmp_path, EVERYTHING_NEEDS_APPROVAL) as bot:
        change_id, old, now_waiting = _settled_then_waiting(bot, kind)
        before = record(bot, change_id)
        told = PATHS[path](bot, f"checkpoint:{verb}", old)
        assert "out of date" in told and "nothing was done" in told
        assert f"the {kind} approval" in told
        assert f"Waiting now: *the {now_waiting}*" in told
        settle()
        assert record(bot, change_id) == before
        assert pending(bot, change_id) == [(now_waiting, 0)]


def test_slash_approve_names_what_it_approved_and_asks_when_several_wait(
    tmp_path: Path,
) -> None:
    with checked(tmp_path, EVERYTHING_NEEDS_APPROVAL) as bot:
        ctx = bot.ctx
        out = request_checkpoint(ctx, "WEB01", reason="patch", requester=alice(), channel="C0OPS")
        ref, change_id = out.change.ref, out.change.id
        created = command(bot, f"approve {ref}", user="U0BOB")
        assert created["text"] == f"{ref}: checkpoint approved"
        assert "you approved the checkpoint" in shown(created)
        wait_state(bot, "WEB01", "active")

        # The create no longer waits: naming it changes nothing.
        rollback(ctx, ref, requester=alice())
        before = record(bot, change_id)
        gone = command(bot, f"approve {ref} create", user="U0BOB")
        assert "no create waiting for approval (waiting: rollback)" in shown(gone)
        # Two things wait: it asks which, and does neither.
        extend(ctx, ref, "24h", requester=alice())
        before = record(bot, change_id)
        which = shown(command(bot, f"approve {ref}", user="U0BOB"))
        assert "more than one thing (rollback, extend)" in which
        assert f"/checkpoint approve {ref} rollback" in which
        assert f"/checkpoint approve {ref} extend" in which
        assert record(bot, change_id) == before

        rejected = command(bot, f'reject {ref} extend --reason "not now"', user="U0BOB")
        assert rejected["text"] == f"{ref}: extension rejected"
        assert pending(bot, change_id) == [("rollback", 0)]
        approved = command(bot, f"approve {ref}", user="U0BOB")
        assert approved["text"] == f"{ref}: rollback approved"
        wait_state(bot, "WEB01", "rolled_back")


# --- 3. Roll back, Keep & merge, Extend: the change as the card showed it ----------------


def _web01_active(bot: RunningBot) -> tuple[str, ChangeView]:
    """WEB01's checkpoint asked for in Slack and taken: its ref and view."""
    asked = command(bot, "create WEB01 --reason patch")
    found = REF.search(asked["text"])
    assert found is not None
    return found.group(0), wait_state(bot, "WEB01", "active")


def test_action_buttons_act_only_on_the_change_as_their_card_showed_it(tmp_path: Path) -> None:
    with checked(tmp_path, "rules: {approvals: {overrides: []}}") as bot:
        ref, active = _web01_active(bot)
        keep = root_value(bot, ref, "checkpoint:merge")
        extend_value = root_value(bot, ref, "checkpoint:extend")
        roll = root_value(bot, ref, "checkpoint:rollback")

        # An unrelated event (an extension) leaves the change active: the
        # active card's buttons still mean what they showed.
        assert "now expires" in shown(command(bot, f"extend {ref} 2h"))
        assert change_of(bot, "WEB01").version > active.version
        quiet_click(bot, "checkpoint:rollback", roll, "U0ALICE")
        wait_state(bot, "WEB01", "rolled_back")
        before = record(bot, active.id)

        # The active card's Keep & merge and Extend: the change is rolled back now.
        for action_id, value in (("checkpoint:merge", keep), ("checkpoint:extend", extend_value)):
            told = shown(click(bot, action_id, value, "U0ALICE"))
            assert "out of date" in told and "nothing was done" in told
            assert "start rollback by <@U0ALICE>" in told and "rolled back by" in told
        settle()
        assert record(bot, active.id) == before
        assert not bot.api.of("views.open")  # no extend modal for a stale card

        # A value meant for another button is refused outright.
        told = shown(click(bot, "checkpoint:approve", roll, "U0BOB"))
        assert "not one this bot drew; nothing was done" in told
        assert record(bot, active.id) == before


def test_a_card_drawn_before_a_rollback_that_failed_acts_on_nothing(tmp_path: Path) -> None:
    """Security review: the state alone was checked, so a change that went
    active → rolling back → active (a rollback that failed, or was taken
    back) took an older copy's Roll back as if its card had shown that."""
    from bot.changes import Command
    from bot.changes.record import get_change, transition

    with checked(tmp_path, "rules: {approvals: {overrides: []}}") as bot:
        ref, active = _web01_active(bot)
        roll = root_value(bot, ref, "checkpoint:rollback")
        for step, said in (
            (Command.START_ROLLBACK, "rollback requested"),
            (Command.ROLLBACK_FAILED, "rollback not run: the host refused it"),
        ):
            with session_scope(bot.ctx.engine) as s:
                transition(
                    s,
                    get_change(s, active.id),
                    step,
                    actor="U0BOB",
                    now=bot.ctx.clock(),
                    message=said,
                )
        assert change_of(bot, "WEB01").state == "active"
        before = record(bot, active.id)
        told = shown(click(bot, "checkpoint:rollback", roll, "U0ALICE"))
        assert "out of date" in told and "nothing was done" in told
        assert "rollback failed" in told
        settle()
        assert record(bot, active.id) == before


def test_the_extend_modal_extends_only_the_change_its_card_showed(tmp_path: Path) -> None:
    with checked(tmp_path, "rules: {approvals: {overrides: []}}") as bot:
        ref, active = _web01_active(bot)
        metadata = f"{ref}:extend:v{active.version}"
        command(bot, f"rollback {ref}")
        wait_state(bot, "WEB01", "rolled_back")
        before = record(bot, active.id)
        view = {
            "id": "V0EXT",
            "type": "modal",
            "callback_id": "checkpoint:extend",
            "private_metadata": metadata,
            "state": {"values": {"duration": {"duration": {"type": "x", "value": "24h"}}}},
        }
        assert bot.slack.submit_view(view, user="U0ALICE").status == 200
        calls = bot.api.wait_for(
            lambda cs: any(
                c.method == "chat.postMessage" and c.body["channel"] == "U0ALICE" for c in cs
            )
        )
        told = next(
            shown(c.body)
            for c in calls
            if c.method == "chat.postMessage" and c.body["channel"] == "U0ALICE"
        )
        assert "out of date" in told and "nothing was done" in told
        assert record(bot, active.id) == before
