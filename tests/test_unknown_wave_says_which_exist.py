"""`/checkpoint batch BAT-9999` says which waves there are, as `change show
CHG-9999` says "no change CHG-9999: the newest is CHG-0012" (2026-12-06: it
said only "no batch BAT-9999 (batch ids look like BAT-0007)", which tells
nobody whether the number was mistyped). The Slack command, signed into
the running bot, and the CLI's `batch show` both go through the service's
`show_batch`."""

from __future__ import annotations

from pathlib import Path

from bot.service import Selection
from tests.cli_support import invoke, one_line_error
from tests.test_batch_slack import _wave_taken
from tests.test_slack_flow import checked_bot, command, shown


def test_slack_names_the_newest_wave_or_that_there_is_none(tmp_path: Path) -> None:
    with checked_bot(tmp_path, "") as bot:
        none_yet = shown(command(bot, "batch BAT-9999"))
        assert "no batch BAT-9999: no patch wave has been recorded yet" in none_yet, none_yet
        _wave_taken(bot, Selection.of(["WEB01", "WEB02"]), "KB5044284 web wave")
        _wave_taken(bot, Selection.of(["APP01", "STG-WEB01"]), "KB5044284 app wave")
        said = shown(command(bot, "batch BAT-9999"))
        assert "no batch BAT-9999: the newest is BAT-0002" in said, said
        assert "BAT-0002 —" in shown(command(bot, "batch BAT-2"))  # the newest is there


def test_the_cli_says_the_same(tmp_path: Path) -> None:
    done = invoke(tmp_path, "batch", "show", "BAT-9999")
    assert done.returncode == 1, done.stderr
    assert one_line_error(done) == (
        "checkpoint-bot: error: no batch BAT-9999: no patch wave has been recorded yet"
    )
