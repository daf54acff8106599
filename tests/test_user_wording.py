"""Wording a Slack user reads, as the bot posts it: roles in human words,
a reason that fits the VM, each step and state said once and plainly.
Over signed requests into the running bot (`checked_bot` checks every
message as Slack would)."""

from __future__ import annotations

from pathlib import Path

from tests.test_slack_flow import checked_bot, command, shown

# --- roles in people's words, and the reason that fits the role ----------------------


def test_a_standard_checkpoint_of_a_dc_is_refused_in_words_about_active_directory(
    tmp_path: Path,
) -> None:
    with checked_bot(tmp_path, "") as bot:
        refused = shown(command(bot, "create LAB-DC01 --type standard --reason KB5044284"))
        assert "Refused" in refused
        assert "LAB-DC01 is a domain controller: " in refused
        assert "runs domain_controller" not in refused
        assert "USN rollback" in refused and "AD replication" in refused
        # A database's reason, not a directory's.
        assert "in-flight transactions" not in refused
