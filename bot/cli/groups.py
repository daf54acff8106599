"""`checkpoint-bot checkpoint ...` and `checkpoint-bot change ...`: the
groups, whose commands (bot.cli.checkpoint_cmds) load only when one runs or
its own `--help` is asked for.

The same lazy loading as the top level (bot.cli.lazy, Click's "Lazily
Loading Subcommands"): `checkpoint --help` lists its commands from the
lines declared here and imports Click and nothing else of the bot's
(bench/cli_start.py; tests/test_cli_start.py checks each line against the
command's own docstring).
"""

from __future__ import annotations

import click

from bot.cli.lazy import LazyCommand, LazyGroup

_CMDS = "bot.cli.checkpoint_cmds"

CHECKPOINT_COMMANDS = {
    "create": LazyCommand(
        f"{_CMDS}:create", "Take a checkpoint of VM, if the guardrails allow it."
    ),
    "extend": LazyCommand(
        f"{_CMDS}:extend_cmd",
        "Give a checkpoint DURATION more time (24h, 3d): CHG-n, the checkpoint's Id, or a "
        "VM's name for its one active change.",
    ),
    "list": LazyCommand(
        f"{_CMDS}:list_cmd",
        "Every checkpoint on the hosts, as a tree per VM, with its owning change; with a "
        "name, only that host's, VM's, failover cluster's or group's.",
    ),
    "merge": LazyCommand(
        f"{_CMDS}:merge_cmd",
        "Keep the change: delete the checkpoint and merge its disk (CHG-n, the checkpoint's "
        "Id, or a VM's name for its one active or rolled-back change).",
    ),
    "rollback": LazyCommand(
        f"{_CMDS}:rollback_cmd",
        "Restore the checkpoint of a change (CHG-n, the checkpoint's Id, or a VM's name "
        "for its one active change).",
    ),
    "settings": LazyCommand(
        f"{_CMDS}:settings_cmd",
        "Show a VM's checkpoint settings; with --type or --automatic, change them "
        "(admins only; Standard is refused for AD, SQL and Exchange).",
    ),
    "start": LazyCommand(
        f"{_CMDS}:start_cmd",
        "Start the VM a rollback left Off or Saved (whoever may roll it back may start it): "
        "CHG-n, the checkpoint's Id, or a VM's name for its one rolled-back change.",
    ),
    "withdraw": LazyCommand(
        f"{_CMDS}:withdraw_cmd",
        "Take back your own request before it runs: a checkpoint scheduled for later "
        "(--at, or its change window), or anything waiting for approvers (--request "
        "names which when several wait).",
    ),
}

CHANGE_COMMANDS = {
    "list": LazyCommand(
        "bot.cli.change_list_cmd:list_cmd",
        "The open changes, newest first: state, VM, requester, what each waits for, "
        "and whether its checkpoint's lifetime is over (--state, --all, --vm, "
        "--requester, --mine or --overdue for others).",
    ),
    "approve": LazyCommand(
        f"{_CMDS}:approve_cmd",
        "Approve what CHG-n waits for (a checkpoint, a rollback, a merge, an extension), "
        "and say which it was.",
    ),
    "reject": LazyCommand(
        f"{_CMDS}:reject_cmd",
        "Reject what CHG-n waits for, saying why with --reason (--request names it "
        "when more than one waits).",
    ),
    "resolve": LazyCommand(
        "bot.cli.followup_cmds:resolve_cmd",
        "Say what happened to an interrupted change the host could not settle (the "
        "thread and `change show` list the outcomes offered).",
    ),
    "show": LazyCommand(
        f"{_CMDS}:show", "A change, its policy decision, its history and its jobs."
    ),
}


@click.group("checkpoint", cls=LazyGroup, lazy=CHECKPOINT_COMMANDS)
def checkpoint() -> None:
    """Take, list, roll back and merge checkpoints."""


@click.group("change", cls=LazyGroup, lazy=CHANGE_COMMANDS)
def change() -> None:
    """Look at the record of a change."""
