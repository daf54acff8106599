"""What `/checkpoint create --group|--host|--cluster|--tag` says of a value
that can never be a name: the option's own word, once.

Seen: `create --group <x` answered "name name '<x' contains '<'…" (the
grammar called every option's value a "name", and the error added "name"
again)."""

from __future__ import annotations

from pathlib import Path

from tests.slack_support import running_bot
from tests.test_slack_flow import command, shown

# What each option's refusal begins with (as Slack shows it: mrkdwn-escaped).
SAID = {
    "--group": "group name '&lt;x' contains '&lt;'",
    "--host": "host name '&lt;x' contains '&lt;'",
    "--cluster": "cluster name '&lt;x' contains '&lt;'",
    "--tag": "tag 'env=&lt;x' contains '&lt;'",
}


def test_each_option_says_what_its_value_is_called(tmp_path: Path) -> None:
    with running_bot(tmp_path) as bot:
        for option, said in SAID.items():
            value = "env=<x" if option == "--tag" else "<x"
            told = shown(command(bot, f"create {option} {value} --reason patch"))
            assert said in told, (option, told)
            assert "name name" not in told and "tag name" not in told, told
            assert "wildcard or shell/PowerShell metacharacter" in told, told
