"""Permissions held only through a Slack user group survive every check
(issue #13, item 1).

The policy below grants nothing to anyone by name: requesting, rolling
back, merging and extending belong to the members of S0OPS (Alice),
approving to the members of S0APPROVERS (Carol). Each action is taken on
each path it has, through signed requests into the Bolt app, with the real
job runner against the emulated host (the real pypsrp client over WinRM):

- direct: a staging VM, nothing waits for approvers; the job's re-check
  right before the host work must still see Alice's group;
- approval: a prod VM, every action waits for Carol; the re-check when she
  approves, and the job's, must see Alice's group;
- scheduled: a create outside its change window runs when it opens, and is
  checked again then.

When Slack cannot say who is in which group, nothing is decided: the person
is told the groups could not be resolved, and no refusal is recorded.
"""

from __future__ import annotations

import json
from pathlib import Path

from bot.notify.groups import SlackDirectory
from bot.service.directory import PolicyGroups
from tests.slack_support import RunningBot, running_bot
from tests.test_slack_flow import (
    button,
    click,
    command,
    no_echo,
    quiet_click,
    root_button,
    roots,
    shown,
)
from tests.test_slack_http import ChangeView, wait_state

GROUPS_ONLY = """
permissions:
  request:  {users: [], groups: [S0OPS], channels: []}
  approve:  {users: [], groups: [S0APPROVERS], channels: []}
  rollback: {users: [], groups: [S0OPS], channels: []}
  merge:    {users: [], groups: [S0OPS], channels: []}
  extend:   {users: [], groups: [S0OPS], channels: []}
rules:
  approvals:
    overrides:
      - scope: {tags: {env: prod}}
        params: {count: 1, actions: [create, rollback, merge]}
"""
# The window opens an hour (six real seconds at the tests' 600x clock)
# after the bot starts, so a create made at once waits for it.
IN_AN_HOUR = """
  change_window: {effect: schedule}
windows:
  - name: soon
    rrule: "FREQ=DAILY;BYHOUR=10;BYMINUTE=0"
    duration: 2h
    timezone: UTC
    scope: {tags: {tier: web}}
"""
USERGROUPS = [
    {"id": "S0OPS", "users": ["U0ALICE"]},
    {"id": "S0APPROVERS", "users": ["U0CAROL"]},
]
WAIT = 60.0


def _refusals(change: ChangeView) -> list[str]:
    return [
        e.message
        for e in change.events
        if e.actor == "policy" and ("may not" in e.message or e.kind.endswith("_refused"))
    ]


def _approve(bot: RunningBot, ref: str) -> None:
    """Carol approves what the root offers; no private echo (the card shows
    it): done once the root no longer offers that approval."""
    value = root_button(bot, ref, "checkpoint:approve")
    key = quiet_click(bot, "checkpoint:approve", value, user="U0CAROL")
    bot.api.wait_for(
        lambda cs: button(roots(cs, ref)[-1].body, "checkpoint:approve") != value, WAIT
    )
    assert no_echo(bot, key)


def _root_says(bot: RunningBot, ref: str, state: str) -> None:
    """Wait until the thread's root shows `state`: a button read before it
    is the previous card's, which a click on a changed change refuses."""
    bot.api.wait_for(
        lambda cs: (found := roots(cs, ref)) and str(found[-1].body["text"]).endswith(state),
        WAIT,
    )


def _host_saw(bot: RunningBot, cmdlet: str) -> int:
    return len(bot.host_commands(cmdlet))


def test_direct_path_create_extend_rollback_merge(tmp_path: Path) -> None:
    with running_bot(tmp_path, USERGROUPS, policy_text=GROUPS_ONLY, emulated=True) as bot:
        said = command(bot, "create STG-WEB01 --reason patch")
        assert "may not" not in shown(said), shown(said)
        active = wait_state(bot, "STG-WEB01", "active", timeout=WAIT)
        assert _host_saw(bot, "Checkpoint-VM") == 1

        extended = command(bot, f"extend {active.ref} 24h")
        assert "may not" not in shown(extended)
        assert wait_state(bot, "STG-WEB01", "active").expires_at != active.expires_at

        rollback = root_button(bot, active.ref, "checkpoint:rollback")
        back = quiet_click(bot, "checkpoint:rollback", rollback, "U0ALICE")
        wait_state(bot, "STG-WEB01", "rolled_back", timeout=WAIT)
        assert _host_saw(bot, "Restore-VMSnapshot") == 1

        _root_says(bot, active.ref, "rolled back")
        keep = root_button(bot, active.ref, "checkpoint:merge")
        quiet_click(bot, "checkpoint:merge", keep, "U0ALICE")
        done = wait_state(bot, "STG-WEB01", "merged", timeout=WAIT)
        assert no_echo(bot, back)
        assert _host_saw(bot, "Remove-VMSnapshot") == 1
        assert _refusals(done) == []


def test_approval_path_create_extend_rollback_merge(tmp_path: Path) -> None:
    with running_bot(tmp_path, USERGROUPS, policy_text=GROUPS_ONLY, emulated=True) as bot:
        assert "waits for approval" in shown(command(bot, "create WEB01 --reason patch"))
        pending = wait_state(bot, "WEB01", "awaiting_approval")
        _approve(bot, pending.ref)
        wait_state(bot, "WEB01", "active", timeout=WAIT)
        assert _host_saw(bot, "Checkpoint-VM") == 1

        # Beyond the 7d maximum an extension waits for an approver.
        asked = command(bot, f"extend {pending.ref} 10d")
        assert "approval" in shown(asked), shown(asked)
        before = wait_state(bot, "WEB01", "active").expires_at
        _approve(bot, pending.ref)
        assert wait_state(bot, "WEB01", "active").expires_at != before

        rollback = root_button(bot, pending.ref, "checkpoint:rollback")
        quiet_click(bot, "checkpoint:rollback", rollback, "U0ALICE")
        _approve(bot, pending.ref)
        wait_state(bot, "WEB01", "rolled_back", timeout=WAIT)
        assert _host_saw(bot, "Restore-VMSnapshot") == 1

        _root_says(bot, pending.ref, "rolled back")
        keep = root_button(bot, pending.ref, "checkpoint:merge")
        quiet_click(bot, "checkpoint:merge", keep, "U0ALICE")
        _approve(bot, pending.ref)
        done = wait_state(bot, "WEB01", "merged", timeout=WAIT)
        assert _host_saw(bot, "Remove-VMSnapshot") == 1
        assert _refusals(done) == []


def test_scheduled_create_is_checked_again_with_the_group(tmp_path: Path) -> None:
    with running_bot(
        tmp_path, USERGROUPS, policy_text=GROUPS_ONLY + IN_AN_HOUR, emulated=True
    ) as bot:
        said = command(bot, "create WEB02 --reason patch")
        assert "waits for approval" in shown(said)
        pending = wait_state(bot, "WEB02", "awaiting_approval")
        _approve(bot, pending.ref)
        scheduled = wait_state(bot, "WEB02", "scheduled")
        assert scheduled.checkpoint_id is None and _host_saw(bot, "Checkpoint-VM") == 0
        done = wait_state(bot, "WEB02", "active", timeout=WAIT)
        assert _host_saw(bot, "Checkpoint-VM") == 1
        assert _refusals(done) == []


def _groups_asked_every_time(bot: RunningBot) -> SlackDirectory:
    directory = bot.ctx.decider.directory
    assert isinstance(directory, PolicyGroups) and isinstance(directory.inner, SlackDirectory)
    directory.inner.ttl = 0.0
    return directory.inner


def test_when_slack_cannot_say_nothing_is_decided_nor_refused(tmp_path: Path) -> None:
    with running_bot(tmp_path, USERGROUPS, policy_text=GROUPS_ONLY, emulated=True) as bot:
        _groups_asked_every_time(bot)
        command(bot, "create WEB01 --reason patch")
        pending = wait_state(bot, "WEB01", "awaiting_approval")
        value = root_button(bot, pending.ref, "checkpoint:approve")

        bot.api.failing["usergroups.list"] = "ratelimited"
        told = shown(click(bot, "checkpoint:approve", value, user="U0CAROL"))
        assert "could not resolve the Slack user groups of <@U0CAROL>" in told, told
        assert "try again" in told and "may not" not in told and "cannot approve" not in told
        still = wait_state(bot, "WEB01", "awaiting_approval")
        assert still.version == pending.version and _refusals(still) == []

        del bot.api.failing["usergroups.list"]
        quiet_click(bot, "checkpoint:approve", value, user="U0CAROL")
        done = wait_state(bot, "WEB01", "active", timeout=WAIT)
        assert _refusals(done) == [] and _host_saw(bot, "Checkpoint-VM") == 1
        kinds = json.dumps([e.kind for e in done.events])
        assert "deny" not in kinds
