"""Wording a Slack user reads, as the bot posts it: roles in human words,
a reason that fits the VM, each step and state said once and plainly.
Over signed requests into the running bot (`checked_bot` checks every
message as Slack would)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.domain import ROLE_WORDS, Role, roles_words
from bot.service.window_notices import DueNotice, Phase, WindowSummary
from templates import Renderer
from templates.blocks import SlackRenderer
from tests.cli_support import invoke, one_line_error
from tests.test_slack_blocks import change
from tests.test_slack_flow import (
    CREATE_NEEDS_APPROVAL,
    button,
    checked_bot,
    command,
    quiet_click,
    root_button,
    roots,
    shown,
    texts,
    wave_replies,
)
from tests.test_slack_http import wait_state
from tests.test_slack_modals import create_values, opened_view, submitted
from tests.test_window_notices import weekend

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


# --- each state its own icon -----------------------------------------------------------


def test_a_withdrawn_change_and_a_rolled_back_one_show_different_icons(tmp_path: Path) -> None:
    with checked_bot(tmp_path, CREATE_NEEDS_APPROVAL) as bot:
        command(bot, "create WEB01 --reason KB5044284")
        waits = wait_state(bot, "WEB01", "awaiting_approval")
        command(bot, f"withdraw {waits.ref}")
        wait_state(bot, "WEB01", "withdrawn")
        withdrawn = shown(command(bot, f"status {waits.ref}"))

        command(bot, "create STG-APP01 --reason KB5044284")
        active = wait_state(bot, "STG-APP01", "active")
        quiet_click(
            bot,
            "checkpoint:rollback",
            root_button(bot, active.ref, "checkpoint:rollback"),
            "U0ALICE",
        )
        wait_state(bot, "STG-APP01", "rolled_back", timeout=30)
        rolled_back = shown(command(bot, f"status {active.ref}"))

    assert ":leftwards_arrow_with_hook:" in rolled_back
    assert ":outbox_tray:" in withdrawn and ":leftwards_arrow_with_hook:" not in withdrawn


# --- the card's last step is the one that waits ----------------------------------------


def test_the_card_says_the_rollback_waits_as_its_last_step(tmp_path: Path) -> None:
    """Seen: the card kept "Last: checkpoint started …" while a rollback
    waited for approval (the shipped policy: a prod rollback needs one)."""
    with checked_bot(tmp_path, "") as bot:
        command(bot, "create WEB01 --reason KB5044284")
        active = wait_state(bot, "WEB01", "active")
        rollback = root_button(bot, active.ref, "checkpoint:rollback")
        quiet_click(bot, "checkpoint:rollback", rollback, user="U0ALICE")
        root_button(bot, active.ref, "checkpoint:approve")  # the card now asks approvers
        card = shown(roots(bot.api.calls, active.ref)[-1].body)
        status = shown(command(bot, f"status {active.ref}", user="U0BOB"))
    for text in (card, status):
        assert "*Last:* rollback waits for approval · asked by <@U0ALICE> · " in text


# --- explain: each blocking rule says whether it refuses or asks for an approval ------


def test_explain_says_which_rule_refuses_and_which_only_needs_an_approval(
    tmp_path: Path,
) -> None:
    """Seen: DENY at the top, and below it a ✗ beside "needs 1 approval" (or
    "a human must approve instead"), as if an approval would do."""
    with checked_bot(tmp_path, "") as bot:
        explained = command(bot, "policy CORP-DC01 rollback")
    text = "\n".join(texts(explained["blocks"]))
    assert text.startswith("rollback CORP-DC01: DENY")
    assert (
        ":no_entry: Refused by `domain_controller`. `approvals` would only need an approval, "
        "and no approval lifts a refusal." in text
    )
    assert "✗ `domain_controller` [refused] CORP-DC01 is a domain controller" in text
    assert "✗ `approvals` [approval required] rollback of CORP-DC01 needs 1 approval" in text


# --- a mention said once where once will do -------------------------------------------


def test_open_changes_name_their_one_requester_once(tmp_path: Path) -> None:
    with checked_bot(tmp_path, "") as bot:
        command(bot, "create WEB01 --reason KB5044284")
        command(bot, "create WEB02 --reason KB5044284")
        # Both: on a loaded machine WEB01's job may end after WEB02's.
        wait_state(bot, "WEB01", "active")
        wait_state(bot, "WEB02", "active")
        one = "\n".join(texts(command(bot, "status")["blocks"]))
        command(bot, "create APP01 --reason KB5044284", user="U0BOB")
        wait_state(bot, "APP01", "active")
        two = "\n".join(texts(command(bot, "status")["blocks"]))
    assert one.count("<@U0ALICE>") == 1 and "All asked for by <@U0ALICE>" in one
    assert "*CHG-0001* · WEB01 on HV01 · active · " in one
    # Different people: each line names its own.
    assert two.count("<@U0ALICE>") == 2 and two.count("<@U0BOB>") == 1
    assert "All asked for" not in two


# --- help and hints that show a change name its --reason ------------------------------


def test_help_and_hints_name_the_reason_a_change_needs(tmp_path: Path) -> None:
    with checked_bot(tmp_path, "") as bot:
        help_all = "\n".join(texts(command(bot, "help")["blocks"]))
        help_create = "\n".join(texts(command(bot, "help create")["blocks"]))
        settings = "\n".join(texts(command(bot, "settings WEB01")["blocks"]))
    # `/checkpoint help` shows one example per command: the create's names --reason.
    assert '`/checkpoint create WEB01 --reason "patching KB5044284"`' in help_all
    assert "`/checkpoint create WEB01 patching KB5044284`" not in help_all
    assert help_create.index("--reason") < help_create.index("create WEB01 patching KB5044284")
    # Changing a VM's settings needs a reason: the hint says so.
    assert '--automatic on|off --reason "…"`; the policy checks every change' in settings


def test_the_cli_example_for_a_wave_names_its_reason(tmp_path: Path) -> None:
    result = invoke(tmp_path, "checkpoint", "create", "--reason", "KB5044284")
    assert result.returncode == 2, result.stderr
    assert (
        '(e.g. checkpoint create WEB01 WEB02 --reason "KB5044284", or --group web-tier)'
        in one_line_error(result)
    )


# --- Slack readers are sent to Slack's commands ----------------------------------------


def _window_notice(phase: Phase, **values: Any) -> str:
    opens = datetime(2026, 11, 28, 21, 0, tzinfo=UTC)
    notice = DueNotice(phase, weekend(), opens, opens + timedelta(hours=6))
    payload = SlackRenderer(Renderer()).payload(
        "window_notice",
        n=notice,
        opens="Sat 2026-11-28 22:00 Europe/Berlin",
        closes="Sun 2026-11-29 04:00 Europe/Berlin",
        start_after_restore=True,
        **values,
    )
    return "\n".join(texts(payload["blocks"]))


def test_a_window_notice_too_long_to_list_points_to_slack_commands() -> None:
    """Seen: "…and 12 more: `checkpoint-bot checkpoint list` shows all" posted
    to a channel of Slack users, where `/checkpoint` does it."""

    def changes(state: str) -> list[Any]:
        reason = "KB5044284 " + "patching " * 15  # long enough that not all fit
        return [change(state, id=n, ref=f"CHG-{n:04d}", reason=reason) for n in range(1, 80)]

    closing = _window_notice(Phase.CLOSING_SOON, active=changes("active"), awaiting_approval=[])
    opening = _window_notice(
        Phase.OPENING_SOON, scheduled=changes("scheduled"), awaiting_approval=[]
    )
    closed_summary = WindowSummary(0, 0, 0, 0, (), tuple(changes("awaiting_approval")))
    closed = _window_notice(
        Phase.CLOSED, summary=closed_summary, awaiting_approval=changes("awaiting_approval")
    )
    for text in (closing, opening, closed):
        assert "checkpoint-bot" not in text
    assert "more: `/checkpoint list` shows them all." in closing
    assert "more: `/checkpoint status` lists them all." in opening
    assert "more: `/checkpoint status` lists them all, with what each waits for." in closed


# --- the create form keeps what to do instead ----------------------------------------


def test_the_create_form_keeps_what_to_do_instead_under_a_long_refusal(tmp_path: Path) -> None:
    """Seen: a DC's refusal filled the field's 300 characters, and "patch DCs
    one at a time …" was dropped: the refusal is shortened instead."""
    with checked_bot(tmp_path, "") as bot:
        reply, key = bot.slack.command("create", channel="C0MODAL")
        assert reply.status == 200
        view = opened_view(bot, "trigger." + key.rsplit(":", 1)[1])
        bad = bot.slack.submit_view(
            submitted(view, "V1", create_values("CORP-DC01", "24h", "KB5044284"))
        )
    said = json.loads(bad.body)["errors"]["vm"]
    assert len(said) <= 300
    assert said.startswith("Refused: CORP-DC01 is a domain controller and corp.example has 2")
    assert "causes USN rollback (/checkpoint policy CORP-DC01 says all of it). " in said
    assert said.endswith(
        "Patch DCs one at a time and rely on AD replication; take a system-state backup "
        "instead of a checkpoint."
    )


# --- a wave says plainly why its approvers are asked ---------------------------------


def test_the_waves_approval_ping_says_why_those_approvers_are_asked(tmp_path: Path) -> None:
    """Seen: "the checkpoints of 3 members need 1 approval from anyone (not
    the requester), what its strictest member needs: WEB01, WEB02, APP01"."""
    with checked_bot(tmp_path, CREATE_NEEDS_APPROVAL) as bot:
        preview = command(bot, 'create --group web-tier --reason "KB5044284 web wave"')
        take = button(preview, "checkpoint:wave_take")
        assert take is not None
        bot.slack.click("checkpoint:wave_take", take, user="U0ALICE")
        calls = bot.api.wait_for(lambda cs: wave_replies(cs), 30)
        [asked] = [r for r in wave_replies(calls) if "Approval needed" in r]
    assert (
        "the checkpoints of WEB01, WEB02, APP01 need 1 approval from anyone (not the "
        "requester): the wave is approved as a whole, so it asks for the most that any one "
        "of its members needs" in asked
    )
    assert "strictest" not in asked


def test_every_role_has_its_words_once() -> None:
    """The one definition the rules say a role with: none is left to its id."""
    assert set(ROLE_WORDS) == set(Role)
    assert roles_words(["domain_controller", "sql_server"]) == (
        "a domain controller and a SQL Server"
    )
    assert "_" not in " ".join(ROLE_WORDS.values())
