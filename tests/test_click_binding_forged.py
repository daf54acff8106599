"""A signed button value this bot never drew acts on nothing, and says so.

Seen: an Approve whose value named a version the change never reached
(`CHG-0001:create#1:v999999`, the card at v2) approved the create; a request
id past what the database's integer columns hold (`#9223372036854775808`)
logged a traceback at ERROR and answered "Something went wrong". Each is a
value no card of this bot carried: refused in plain words, nothing changed,
on SQLite and on PostgreSQL (whose INTEGER ends at 2**31-1)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.slack_support import RunningBot, running_bot
from tests.test_slack_flow import click, command, root_button, shown
from tests.test_slack_http import change_of

# A prod create waits for one approver (Bob may approve Alice's).
CREATE_NEEDS_APPROVAL = """
rules:
  approvals:
    overrides:
      - scope: {tags: {env: prod}}
        params: {count: 1, actions: [create, rollback]}
"""

NOT_DRAWN = "not one this bot drew; nothing was done"


def _events(bot: RunningBot, vm: str) -> tuple[str, int, list[str]]:
    change = change_of(bot, vm)
    return change.state, change.version, [e.kind for e in change.events]


def test_an_approve_naming_a_version_never_reached_approves_nothing(
    tmp_path: Path, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with running_bot(tmp_path, policy_text=CREATE_NEEDS_APPROVAL, database_url=db_url) as bot:
        command(bot, "create WEB01 --reason patch")
        ref = change_of(bot, "WEB01").ref
        real = root_button(bot, ref, "checkpoint:approve")
        request, version = real.rsplit(":v", 1)
        assert request == f"{ref}:create#1", real
        before = _events(bot, "WEB01")
        assert before[0] == "awaiting_approval"

        forged = [
            # A version past the change's: no card of this bot showed it.
            f"{request}:v{int(version) + 1}",
            f"{request}:v999999",
            f"{request}:v99999999999999999999999999",
            # Request ids past what an integer column holds (PostgreSQL's
            # INTEGER, SQLite's and PostgreSQL's BIGINT), and far past.
            f"{ref}:create#2147483648:v{version}",
            f"{ref}:create#9223372036854775808:v{version}",
            f"{ref}:create#99999999999999999999999:v{version}",
            # The same on Reject, Withdraw and an old-format value.
            f"{ref}:create#9223372036854775808:v{version}",
            f"{ref}:v999999",
        ]
        buttons = ["checkpoint:approve"] * 6 + ["checkpoint:reject", "checkpoint:approve"]
        for action_id, value in zip(buttons, forged, strict=True):
            told = shown(click(bot, action_id, value, "U0BOB"))
            assert NOT_DRAWN in told, (value, told)
            assert "Something went wrong" not in told, (value, told)
        withdraw = shown(click(bot, "checkpoint:withdraw", f"{request}:v999999", "U0ALICE"))
        assert NOT_DRAWN in withdraw, withdraw

        # Nothing was approved, rejected or withdrawn; the real button still works.
        assert _events(bot, "WEB01") == before
        assert bot.api.of("views.open") == []  # no Reject modal for a forged value
        click_real = bot.slack.click("checkpoint:approve", real, user="U0BOB")
        assert click_real[0].status == 200
        bot.api.wait_for(lambda _cs: change_of(bot, "WEB01").state != "awaiting_approval")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert errors == [], [r.getMessage() for r in errors]


def test_a_card_button_naming_a_version_never_reached_is_refused_the_same_way(
    tmp_path: Path,
) -> None:
    with running_bot(tmp_path, policy_text="rules: {approvals: {overrides: []}}") as bot:
        command(bot, "create WEB01 --reason patch")
        ref = change_of(bot, "WEB01").ref
        bot.api.wait_for(lambda _cs: change_of(bot, "WEB01").state == "active")
        real = root_button(bot, ref, "checkpoint:merge")
        purpose, version = real.rsplit(":v", 1)
        before = _events(bot, "WEB01")
        for value in (f"{purpose}:v{int(version) + 5}", f"{purpose}:v99999999999999999999999"):
            told = shown(click(bot, "checkpoint:merge", value, "U0ALICE"))
            assert NOT_DRAWN in told, (value, told)
        assert _events(bot, "WEB01") == before
