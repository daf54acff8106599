"""A wave's ref where one change belongs says the wave's command only when
that wave exists. Until 2026-12-06 `change show BAT-7`, with no BAT-0007,
said "BAT-0007 is a patch wave, not one change: checkpoint-bot batch show
BAT-0007 shows all its members", and `batch show BAT-7` then said "no batch
BAT-0007"; Slack's `/checkpoint status BAT-7` claimed the same wave. Now the
CLI looks the wave up (exit 1 as for an unknown change); Slack's parser,
which has no database, says what a BAT-n is without claiming the wave."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_support import invoke, one_line_error
from tests.slack_support import running_bot
from tests.test_slack_flow import command, shown

NO_WAVE = "no batch BAT-0007, and a change id looks like CHG-0042"


@pytest.mark.parametrize(
    "args",
    [
        ["change", "show", "BAT-7"],
        ["change", "show", "bat7"],
        ["checkpoint", "rollback", "BAT-0007"],
        ["checkpoint", "merge", "bat-7"],
        ["checkpoint", "extend", "BAT-7", "1d"],
        ["change", "approve", "BAT-7"],
        ["checkpoint", "withdraw", "BAT-7"],
    ],
)
def test_a_wave_that_does_not_exist_is_said_so_exit_1(tmp_path: Path, args: list[str]) -> None:
    done = invoke(tmp_path, *args)
    assert done.returncode == 1, done.stderr
    assert one_line_error(done) == f"checkpoint-bot: error: {NO_WAVE}"
    # What batch show says of it: the same wave, not found.
    assert "no batch BAT-0007" in one_line_error(invoke(tmp_path, "batch", "show", "BAT-7"))


def test_a_number_no_wave_can_have_is_no_wave_either(tmp_path: Path) -> None:
    done = invoke(tmp_path, "change", "show", "BAT-99999999999")
    assert done.returncode == 1, done.stderr
    assert one_line_error(done) == (
        "checkpoint-bot: error: no batch BAT-99999999999, and a change id looks like CHG-0042"
    )


# Moved here from tests/test_cli.py's bad-input cases (which ran on an empty
# database): the wave's own command for each verb, when the wave exists.
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["change", "show", "bat-1"],
            "BAT-0001 is a patch wave, not one change: checkpoint-bot batch show BAT-0001 "
            "shows all its members (/checkpoint batch BAT-0001 in Slack); give a member's "
            "CHG-n to show that one",
        ),
        (
            ["checkpoint", "rollback", "BAT-1"],
            "BAT-0001 is a patch wave, not one change: checkpoint-bot batch rollback BAT-0001 "
            "rolls back all its members (Roll back all on /checkpoint batch BAT-0001 in "
            "Slack); give a member's CHG-n to roll back that one",
        ),
        (
            ["checkpoint", "merge", "bat1"],
            "BAT-0001 is a patch wave, not one change: checkpoint-bot batch merge BAT-0001 "
            "keeps and merges all its members (Keep & merge all on /checkpoint batch BAT-0001 "
            "in Slack); give a member's CHG-n to merge that one",
        ),
        (
            ["checkpoint", "withdraw", "BAT-1"],
            "BAT-0001 is a patch wave, not one change: checkpoint-bot batch withdraw BAT-0001 "
            "withdraws what waits in all its members (/checkpoint withdraw BAT-0001 in "
            "Slack); give a member's CHG-n to withdraw that one",
        ),
        (
            ["checkpoint", "extend", "BAT-1", "1d"],
            "BAT-0001 is a patch wave, not one change, and a wave is not extended as a "
            "whole: extend each member by its CHG-n (checkpoint-bot batch show BAT-0001 "
            "lists them; each VM of /checkpoint batch BAT-0001 in Slack has its Extend)",
        ),
        (
            ["change", "approve", "BAT-1"],
            "BAT-0001 is a patch wave, not one change: checkpoint-bot batch approve BAT-0001 "
            "approves what its members wait for (Approve all on /checkpoint batch BAT-0001 "
            "in Slack); give a member's CHG-n to approve that one",
        ),
    ],
)
def test_a_wave_that_exists_is_pointed_to_its_own_command(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    made = invoke(tmp_path, "checkpoint", "create", "WEB01", "APP01", "-r", "x", "--yes")
    assert made.returncode == 0, made.stderr
    done = invoke(tmp_path, *args)
    assert done.returncode == 2, done.stderr
    assert one_line_error(done) == f"checkpoint-bot: error: {expected}"


def test_slack_does_not_claim_a_wave_it_cannot_look_up(tmp_path: Path) -> None:
    with running_bot(tmp_path) as bot:
        said = shown(command(bot, "status BAT-7"))
        assert "is a patch wave, not one change" not in said
        assert "BAT-0007 is a patch wave's id (BAT-n), not a change's (CHG-n)" in said
        assert "if there is one" in said
        rollback = shown(command(bot, "rollback bat-7"))
        assert "is a patch wave, not one change" not in rollback
        assert "*Roll back all* on /checkpoint batch BAT-0007" in rollback
        # Where it points says the truth about the wave.
        assert "no batch BAT-0007" in shown(command(bot, "batch BAT-7"))
