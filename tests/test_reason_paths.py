"""A multi-line reason, approved, reaches the host (issue #13, item 5).

The create modal's reason field is multi-line; the slash command and the
CLI can carry new lines and tabs too. Each path is followed through the
approval to a checkpoint on the emulated host (the real pypsrp client over
WinRM): the record keeps the reason as written, the checkpoint's name gets
its single-line form. One normaliser (`bot.reasons`) decides for all three.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.hyperv.winrm.commands import checkpoint_name_problem
from bot.reasons import MAX_REASON, ReasonError, check_reason, one_line
from bot.service.ownership import checkpoint_name
from tests.multiproc_support import (
    Cluster,
    commands_named,
    process_env,
    write_config,
)
from tests.slack_support import RunningBot, running_bot
from tests.test_slack_flow import CREATE_NEEDS_APPROVAL, command, quiet_click, root_button
from tests.test_slack_http import ACK_LIMIT, wait_state
from tests.test_slack_modals import create_values, opened_view, submitted

WRITTEN = "KB5044284 patch\nthen reboot\tin the window"
ONE_LINE = "KB5044284 patch then reboot in the window"
# "Install the security update", in Persian: a ZERO WIDTH NON-JOINER inside a word.
PERSIAN = "نصب به\u200cروزرسانی امنیتی"  # noqa: RUF001 (Arabic letters, as written)


@given(st.text(max_size=600))
def test_every_accepted_reason_makes_a_valid_checkpoint_name(text: str) -> None:
    try:
        kept = check_reason(text)
    except ReasonError as exc:
        assert exc.message.startswith(("a reason is required", "the reason "))
        return
    assert kept == text.strip() and 0 < len(kept) <= MAX_REASON
    name = checkpoint_name("CHG-0001", "0123abcd", kept)
    assert checkpoint_name_problem(name) is None
    assert "\n" not in one_line(kept) and "\t" not in one_line(kept)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "a reason is required"),
        ("a\x1bb", "control character (U+001B)"),
        ("a\u202eb", "control character (U+202E)"),
        ("x" * (MAX_REASON + 1), f"keep it under {MAX_REASON}"),
    ],
)
def test_what_is_refused_is_said(text: str, words: str) -> None:
    with pytest.raises(ReasonError, match=re.escape(words)):
        check_reason(text)


@pytest.mark.parametrize(
    "text",
    [
        PERSIAN,
        "deploy by \U0001f469\u200d\U0001f4bb",  # one emoji: woman, ZERO WIDTH JOINER, laptop
    ],
)
def test_joiners_are_part_of_the_words_and_of_the_checkpoint_name(text: str) -> None:
    assert check_reason(text) == text
    assert one_line(text) == text
    assert checkpoint_name_problem(checkpoint_name("CHG-0001", "0123abcd", text)) is None


@pytest.mark.parametrize("control", ["\u202e", "\u2066", "\u200e", "\x00"])
def test_other_invisible_controls_are_still_refused(control: str) -> None:
    with pytest.raises(ReasonError, match="control character"):
        check_reason(f"patch{control}now")


# --- Slack: the slash command and the modal, approved, through to the host ----------


def _approved_on_the_host(bot: RunningBot) -> None:
    """Bob approves WEB01's create; its checkpoint is taken on the emulated
    host with the single-line name, and the record keeps the reason."""
    pending = wait_state(bot, "WEB01", "awaiting_approval")
    assert pending.reason == WRITTEN
    approve = root_button(bot, pending.ref, "checkpoint:approve")
    quiet_click(bot, "checkpoint:approve", approve, user="U0BOB")
    active = wait_state(bot, "WEB01", "active", timeout=60)
    assert active.reason == WRITTEN
    assert bot.emulator_log is not None
    taken = [e for e in bot.emulator_log.entries if e.cmdlet.casefold() == "checkpoint-vm"]
    assert len(taken) == 1
    name = str(taken[0].parameters["SnapshotName"])
    assert name.endswith(ONE_LINE) and name.startswith(active.ref)
    assert active.checkpoint_name == name


def test_slash_command_reason_with_new_lines_reaches_the_host(tmp_path: Path) -> None:
    with running_bot(tmp_path, policy_text=CREATE_NEEDS_APPROVAL, emulated=True) as bot:
        said = command(bot, f'create WEB01 --reason "{WRITTEN}"')
        assert "control character" not in json.dumps(said)
        _approved_on_the_host(bot)


def test_modal_reason_with_new_lines_reaches_the_host(tmp_path: Path) -> None:
    with running_bot(tmp_path, policy_text=CREATE_NEEDS_APPROVAL, emulated=True) as bot:
        reply, key = bot.slack.command("create", channel="C0OPS")
        assert reply.status == 200 and reply.seconds < ACK_LIMIT
        view = opened_view(bot, "trigger." + key.rsplit(":", 1)[1])
        values: dict[str, Any] = create_values("WEB01", "48h", WRITTEN)
        sent = bot.slack.submit_view(submitted(view, "V1", values))
        assert sent.status == 200 and sent.body == ""
        # The work after the ack: the change exists once the answer is posted.
        bot.api.wait_for(lambda cs: any(c.method == "chat.postEphemeral" for c in cs))
        _approved_on_the_host(bot)


def test_a_persian_reason_reaches_the_host_as_written(tmp_path: Path) -> None:
    persian = PERSIAN
    with running_bot(tmp_path, emulated=True) as bot:
        said = command(bot, f'create STG-WEB01 --reason "{persian}"')
        assert "control character" not in json.dumps(said)
        active = wait_state(bot, "STG-WEB01", "active", timeout=60)
        assert active.reason == persian
        assert bot.emulator_log is not None
        taken = [e for e in bot.emulator_log.entries if e.cmdlet.casefold() == "checkpoint-vm"]
        assert str(taken[-1].parameters["SnapshotName"]).endswith(persian)


# --- the CLI against the emulator in its own process ----------------------------------


def test_cli_reason_with_new_lines_reaches_the_host(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(CREATE_NEEDS_APPROVAL, encoding="utf-8")
    with Cluster(tmp_path / "run") as cluster:
        log, inventory = tmp_path / "run" / "commands.jsonl", tmp_path / "run" / "inventory.yaml"
        cluster.emulator(log, inventory, "--host", "HV01", env=process_env())
        config = write_config(
            tmp_path / "run" / "config.yaml",
            inventory=inventory,
            database_url=f"sqlite:///{tmp_path / 'run' / 'bot.db'}",
            redis_url="redis://127.0.0.1:6379/0",
            queue_name="unused",
            slack_api_url="http://127.0.0.1:9/api/",
            channel="C0OPS",
            policy=policy,
            jobs={"queue": "sqlite"},
        )
        alice = process_env(CHECKPOINT_BOT_USER="alice")
        bob = process_env(CHECKPOINT_BOT_USER="bob")
        upgraded = cluster.cli(config, alice, "db", "upgrade")
        assert upgraded.returncode == 0, upgraded.stderr
        asked = cluster.cli(config, alice, "checkpoint", "create", "WEB01", "--reason", WRITTEN)
        assert asked.returncode == 0, asked.stderr
        assert "CHG-0001" in asked.stdout and "Traceback" not in asked.stderr
        approved = cluster.cli(config, bob, "change", "approve", "CHG-1")
        assert approved.returncode == 0, approved.stderr
        shown = json.loads(cluster.cli(config, bob, "change", "show", "CHG-1", "--json").stdout)
        assert shown["state"] == "active", shown
        assert shown["reason"] == WRITTEN
        taken = commands_named(log, "Checkpoint-VM")
        assert len(taken) == 1
        assert str(taken[0].parameters["SnapshotName"]).endswith(ONE_LINE)
        assert shown["checkpoint_name"] == taken[0].parameters["SnapshotName"]
