"""Hostile values through every entrance, against the real pypsrp client
and the WinRM emulator: look-alike VM names, mention and link injection,
PowerShell metacharacters in free text, tampered button values and modal
private_metadata. Each is counted in the suite's tally; "accepted" means it
reached something it must not: a change for a name the inventory does not
have, a cmdlet built from text, a mention or link Slack would act on, a
state change from a tampered value."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import col, func, select

from bot.store.db import session_scope
from bot.store.models import Change, ChangeEvent
from tests.adversarial.conftest import Tally
from tests.slack_support import RunningBot, running_bot
from tests.test_slack_http import answer, change_of, create, old_value, texts, wait_state
from tests.test_slack_modals import create_values, submitted

# What the bot sends a host is a pipeline of cmdlets by name (Verb-Noun),
# their arguments as values: never a script, never text in a command.
CMDLET_NAME = re.compile(r"^[A-Za-z]+-[A-Za-z]+$")

LOOK_ALIKES = [
    "W\u0395B01",  # Greek capital epsilon
    "WEB0\uff11",  # fullwidth digit one
    "WEB01.",  # trailing dot
    "WEB01..",
    ".WEB01",
    "WEB\u200b01",  # zero-width space
    "WEB01\u200d",  # zero-width joiner
    "\ufeffWEB01",  # byte-order mark
    "WEB-01",
    "WEB_01",
    "WEB1",
    "WEB001",
    "W EB01",
    "\uff37\uff25\uff2201",  # fullwidth letters
    "WEB0l",  # lowercase L for 1
    "WEBO1",  # letter O for zero
    "W\u0415B01",  # Cyrillic Ie
    "web01\u0301",  # combining accent
    "WEB01*",
    "WEB0?",
    "WEB01;Get-VM",
    "WEB01$(whoami)",
    "../WEB01",
]
# Not look-alikes: the inventory's name in another case (Hyper-V's names
# are case-insensitive) or padded with whitespace the grammar splits on.
SAME_NAME = ["web01", "Web01", "wEb01", "WEB01\u00a0", "\u2003WEB01"]

INJECTIONS = [
    "<!channel> urgent",
    "<!here|here> look",
    "<!everyone>",
    "<@U0ADMIN> approve this",
    "<!subteam^S0APPROVERS>",
    "<http://evil.example/|the runbook>",
    "<https://evil.example/>",
    "<mailto:a@evil.example|mail>",
    "<#C0OTHER>",
    "<!date^1700000000^{date}|x>",
]
# What Slack would act on if it came through raw. (The bot's own messages
# use `<!date^…>` tokens and mention people, so those are matched exactly.)
RAW_TOKENS = [
    "<!channel",
    "<!here",
    "<!everyone",
    "<!subteam",
    "<@U0ADMIN",
    "<http://evil",
    "<https://evil",
    "<mailto:",
    "<#C0OTHER",
    "<!date^1700000000",
]

METACHARACTERS = [
    "$(Remove-VM -Name WEB01 -Force)",
    "'; Stop-Computer -Force; '",
    '"; Remove-Item C:\\ -Recurse; "',
    "`$env:USERNAME` and `whoami`",
    "x | Out-File C:\\pwned.txt",
    "@{a=1}; & calc.exe",
    "${function:Invoke-Expression}",
    "-Force -Confirm:$false",
    "# comment ; exit",
    "KB1 && shutdown /s",
]


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBot]:
    # Many checkpoints per VM (the shipped policy allows 3): every hostile
    # text here gets as far as it can.
    many = "rules:\n  checkpoint_count:\n    params: {max: 50}\n"
    with running_bot(
        tmp_path_factory.mktemp("hostile"), emulated=True, policy_text=many
    ) as running:
        yield running


def _changes(bot: RunningBot) -> list[Change]:
    with session_scope(bot.ctx.engine) as s:
        return list(s.exec(select(Change).order_by(col(Change.id))).all())


def _posted(bot: RunningBot) -> str:
    """Everything the bot sent Slack (messages, ephemerals, views)."""
    return "\n".join(json.dumps(c.body, ensure_ascii=False) for c in bot.api.calls)


def test_look_alike_vm_names_resolve_to_nothing(bot: RunningBot, hostile: Tally) -> None:
    names = {vm.name for vm in bot.ctx.inventory.vms}
    for text in LOOK_ALIKES:
        before = len(_changes(bot))
        reply, key = bot.slack.command(f"create {text} --reason KB1")
        assert reply.status == 200
        said = texts(answer(bot, key))
        after = _changes(bot)
        made = [c.vm_name for c in after[before:]]
        hostile.record("look-alike VM name", bool(made), f"{text!r} made {made}")
        assert "CHG-" not in said, (text, said)
    for text in SAME_NAME:
        reply, key = bot.slack.command(f"policy {text}")
        assert reply.status == 200
        assert "WEB01" in texts(answer(bot, key)), text
    assert all(c.vm_name in names for c in _changes(bot))


def test_mentions_and_links_in_free_text_are_shown_never_acted_on(
    bot: RunningBot, hostile: Tally
) -> None:
    """Typed in a slash command (Slack sends `<` as `&lt;`) and in the create
    modal (raw text): every text the bot posts shows them escaped."""
    before = len(_changes(bot))
    for n, text in enumerate(INJECTIONS):
        typed = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        vm = ("WEB01", "WEB02", "APP01")[n % 3]
        if n % 2:
            reply, _key = bot.slack.command(f"create {vm} --reason {typed}")
        else:
            reply, _key = bot.slack.command("create", channel="C0MODAL")
            view = bot.api.wait_for(lambda cs: any(c.method == "views.open" for c in cs))
            opened = [c.body["view"] for c in view if c.method == "views.open"][-1]
            reply = bot.slack.submit_view(submitted(opened, f"V{n}", create_values(vm, "", text)))
        assert reply.status == 200
    # The work (and the thread's posts) comes after the ack.
    deadline = time.monotonic() + 60
    while len(_changes(bot)) < before + len(INJECTIONS) and time.monotonic() < deadline:
        time.sleep(0.2)
    _quiet(bot)
    posted = _posted(bot)
    for text in INJECTIONS:
        raw = [t for t in RAW_TOKENS if t in text and t in posted]
        raw += [text] if text in posted else []
        hostile.record("mention or link injection", bool(raw), f"{text!r}: {raw}")
    with session_scope(bot.ctx.engine) as s:
        reasons = set(s.exec(select(Change.reason)).all())
    assert any("<!channel>" in r for r in reasons), reasons


def test_powershell_metacharacters_reach_the_host_only_as_parameter_values(
    bot: RunningBot, hostile: Tally
) -> None:
    log = bot.emulator_log
    assert log is not None
    vms = ["STG-WEB01", "STG-APP01", "WEB02", "APP01"]
    for n, text in enumerate(METACHARACTERS):
        vm = vms[n % len(vms)]
        typed = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        reply, key = bot.slack.command(
            f'create {vm} --reason "{typed}"'
            if '"' not in text
            else f"create {vm} --reason {typed}"
        )
        assert reply.status == 200
        answer(bot, key)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        busy = [c for c in _changes(bot) if c.state in ("requested", "approved", "creating")]
        if not busy:
            break
        time.sleep(0.2)
    entries = log.entries
    assert entries, "nothing reached the emulated hosts"
    for entry in entries:
        assert not entry.is_script, entry
        assert CMDLET_NAME.match(entry.cmdlet), entry.cmdlet
    names = [
        str(e.parameters.get("SnapshotName") or e.parameters.get("Name") or "")
        for e in entries
        if e.cmdlet.casefold() == "checkpoint-vm"
    ]
    arrived = 0
    for text in METACHARACTERS:
        as_value = any(text in name for name in names)
        arrived += as_value
        in_command = any(text in e.cmdlet for e in entries)
        hostile.record("PowerShell metacharacters", in_command, text)
        assert as_value or not _reached(bot, text), (text, names)
    print(f"{arrived} of {len(METACHARACTERS)} texts reached a host, as -SnapshotName values")
    assert arrived >= len(METACHARACTERS) // 2, names


def _quiet(bot: RunningBot, timeout: float = 30.0) -> None:
    """Until the bot has posted nothing to Slack for a second."""
    deadline = time.monotonic() + timeout
    seen = -1
    while time.monotonic() < deadline and seen != len(bot.api.calls):
        seen = len(bot.api.calls)
        time.sleep(1.0)


def _reached(bot: RunningBot, reason: str) -> bool:
    """Did a create with this reason get as far as the host?"""
    with session_scope(bot.ctx.engine) as s:
        return bool(
            s.exec(
                select(func.count()).where(
                    Change.reason == reason, col(Change.state).in_(["active", "creating"])
                )
            ).one()
        )


def test_tampered_button_values_change_nothing(bot: RunningBot, hostile: Tally) -> None:
    active = create(bot, "WEB02")
    ref, version = active.ref, active.version
    tampered = [
        ("checkpoint:approve", f"{ref}:approve#999:v{version}"),
        ("checkpoint:approve", f"{ref}:rollback#1:v{version}"),
        ("checkpoint:reject", f"{ref}:approve:v{version}"),
        ("checkpoint:rollback", f"{ref}:merge:v{version}"),
        ("checkpoint:merge", f"{ref}:merge:v{version + 7}"),
        ("checkpoint:merge", f"{ref}:merge:v{version - 1}"),
        ("checkpoint:rollback", f"CHG-99999:rollback:v{version}"),
        ("checkpoint:rollback", f"{ref}:rollback:v{version};Restore-VMSnapshot"),
        ("checkpoint:rollback", f"{ref}:rollback:v-1"),
        ("checkpoint:rollback", f"{ref}:rollback:v99999999999999999999999"),
        ("checkpoint:rollback", "x" * 3000),
        ("checkpoint:rollback", ""),
        ("checkpoint:resolve_active", f"{ref}:resolve_active:v{version}"),
        ("checkpoint:start", f"{ref}:start:v{version}"),
        ("sweep:adopt", f"HV01|{active.vm_id}|{active.checkpoint_id}"),
        ("sweep:merge", "HV01|not-a-vm|not-a-checkpoint"),
    ]
    for action_id, forged in tampered:
        before = _footprint(bot, active.id)
        reply, key = bot.slack.click(action_id, forged, user="U0BOB")
        assert reply.status in (200, 400), (action_id, forged, reply)
        if reply.status == 200:
            answer(bot, key)
        _quiet(bot, 5.0)
        after = _footprint(bot, active.id)
        hostile.record(
            "tampered button value",
            after != before,
            f"{action_id} {forged[:60]} {before} -> {after}",
        )
    assert change_of(bot, "WEB02").state == "active"


def _footprint(bot: RunningBot, change_id: int | None) -> tuple[object, ...]:
    """What a click could have moved: the change's state, its events, the
    restores and removals the hosts received."""
    with session_scope(bot.ctx.engine) as s:
        kinds = tuple(
            s.exec(select(ChangeEvent.kind).where(ChangeEvent.change_id == change_id)).all()
        )
        change = s.get(Change, change_id)
        state = change.state if change is not None else None
    return (
        state,
        kinds,
        len(bot.host_commands("Restore-VMSnapshot")),
        len(bot.host_commands("Remove-VMSnapshot")),
    )


def test_tampered_modal_metadata_changes_nothing(bot: RunningBot, hostile: Tally) -> None:
    active = create(bot, "APP01")
    reply, key = bot.slack.click("checkpoint:extend", old_value(active), user="U0ALICE")
    assert reply.status == 200
    trigger = "trigger." + key.rsplit(":", 1)[1]
    calls = bot.api.wait_for(
        lambda cs: any(c.method == "views.open" and c.body["trigger_id"] == trigger for c in cs)
    )
    view = next(
        c.body["view"]
        for c in calls
        if c.method == "views.open" and c.body["trigger_id"] == trigger
    )
    expires = change_of(bot, "APP01").expires_at
    for metadata in (
        f"{active.ref}:extend:v{active.version + 5}",
        f"{active.ref}:rollback:v{active.version}",
        "CHG-99999:extend:v1",
        f"{active.ref}:extend:v{active.version}<!channel>",
        "",
        "x" * 3000,
    ):
        tampered = {**view, "id": "VX", "private_metadata": metadata}
        values: dict[str, Any] = {"until": {"until": {"type": "plain_text_input", "value": "24h"}}}
        for block in view.get("blocks", []):
            element = block.get("element") or {}
            if block.get("block_id") and element.get("action_id"):
                values = {
                    block["block_id"]: {
                        element["action_id"]: {"type": "plain_text_input", "value": "24h"}
                    }
                }
        reply = bot.slack.submit_view(submitted(tampered, "VX", values))
        assert reply.status < 500, reply
        time.sleep(0.3)
        after = change_of(bot, "APP01")
        moved = after.expires_at != expires or after.state != "active"
        hostile.record("tampered modal metadata", moved, metadata[:60])
    wait_state(bot, "APP01", "active")
