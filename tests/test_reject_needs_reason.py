"""Every way to reject asks why (2026-12-06: the card's Reject… form
required a reason, while `/checkpoint reject CHG-n`, the CLI's `change
reject CHG-n` and an old message's Reject button recorded a rejection with
none, so the requester and the manager reading the record never learnt why).

Each is refused in its own syntax, one line and no traceback, and nothing
is recorded: the request still waits. The service refuses it too, for a
caller that skips its entry point's check.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.service import BadRequest, reject, show_change
from tests.cli_support import invoke, one_line_error
from tests.test_approval_dm_settled import _ask
from tests.test_rejection_reason import CAROL, _rollback_waiting
from tests.test_slack_flow import checked_bot, click, command, shown
from tests.test_slack_story import APPROVERS, USERGROUPS


def _still_waiting(cwd: Path, ref: str = "CHG-1") -> None:
    seen = json.loads(invoke(cwd, "change", "show", ref, "--json").stdout)
    assert seen["waiting"], seen
    assert not any(e["kind"].endswith("rejected") for e in seen["events"])


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_the_cli_refuses_a_rejection_without_a_reason_and_shows_the_form(
    tmp_path: Path, reason: str | None
) -> None:
    _rollback_waiting(tmp_path)
    given = [] if reason is None else ["--reason", reason]
    done = invoke(tmp_path, "change", "reject", "chg1", "--request", "rollback", *given, env=CAROL)
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    said = one_line_error(done)
    assert "a reason is required to reject" in said
    assert (
        'checkpoint-bot change reject CHG-0001 --request rollback --reason "Not during the '
        'quarter-end close"' in said
    ), said
    _still_waiting(tmp_path)


def test_the_slash_command_refuses_a_rejection_without_a_reason(tmp_path: Path) -> None:
    with checked_bot(tmp_path, APPROVERS, USERGROUPS) as bot:
        ref = _ask(bot)
        number = int(ref.removeprefix("CHG-"))
        answer = shown(command(bot, f"reject CHG-{number}", user="U0CAROL"))
        assert "a reason is required to reject" in answer, answer
        assert f'/checkpoint reject {ref} --reason \\"Not during' in answer, answer
        assert "Traceback" not in answer
        # The usage line shows --reason as required, not in brackets.
        assert "[--reason" not in answer and '--reason \\"...\\"' in answer, answer
        view = show_change(bot.ctx, ref)
        assert view.state == "awaiting_approval" and view.waiting, view

        # With a reason, it is recorded with it.
        done = shown(command(bot, f'reject {ref} --reason "month end"', user="U0CAROL"))
        assert "rejected" in done, done
        assert show_change(bot.ctx, ref).state == "rejected"


def test_an_old_messages_reject_button_asks_for_the_command(tmp_path: Path) -> None:
    """A value from before the Reject… form names no request and opens no
    form: the click is told the command, and nothing is recorded."""
    with checked_bot(tmp_path, APPROVERS, USERGROUPS) as bot:
        ref = _ask(bot)
        version = show_change(bot.ctx, ref).version
        answer = shown(click(bot, "checkpoint:reject", f"{ref}:v{version}", "U0CAROL"))
        assert "a reason is required to reject" in answer, answer
        assert f"/checkpoint reject {ref} --reason" in answer, answer
        view = show_change(bot.ctx, ref)
        assert view.state == "awaiting_approval" and view.waiting, view


def test_the_service_refuses_a_rejection_without_a_reason(tmp_path: Path) -> None:
    """No caller can skip it: the service checks the reason before it
    reads the change."""
    with checked_bot(tmp_path, APPROVERS, USERGROUPS) as bot:
        ref = _ask(bot)
        with pytest.raises(BadRequest, match="a reason is required"):
            reject(bot.ctx, ref, approver="U0CAROL", reason=" \n ")
        assert show_change(bot.ctx, ref).state == "awaiting_approval"
