"""What the host's answers mean for an interrupted change: pure functions
from the change, the checkpoints and the VM as the host reports them to a
verdict (a step to take, a question for a human, or wait)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.changes import Command
from bot.hyperv import Checkpoint, VMInfo
from bot.store.models import Change, change_ref


@dataclass(frozen=True)
class Verdict:
    """What the host says about an interrupted change: a command to apply,
    a question for a human (`choices`), or nothing yet (`wait`)."""

    message: str
    command: Command | None = None
    values: dict[str, Any] | None = None
    choices: tuple[str, ...] = ()
    wait: bool = False


def judge_create(
    change: Change, checkpoints: list[Checkpoint], owned_elsewhere: set[str], now: datetime
) -> Verdict:
    """Did the interrupted create leave a checkpoint? It carries the change's
    ref at the start of its name (see `Executor._take`)."""
    ref = change_ref(change.id or 0)
    mine = [
        c
        for c in checkpoints
        if (c.name == ref or c.name.startswith(ref + " ")) and c.id not in owned_elsewhere
    ]
    if len(mine) == 1:
        found = mine[0]
        return Verdict(
            f"the host has checkpoint {found.id} ({found.name}), taken for this change: "
            "the change is active",
            Command.RECONCILE_ACTIVE,
            {
                "checkpoint_id": found.id,
                "checkpoint_name": found.name,
                "expires_at": now + timedelta(seconds=change.ttl_seconds),
            },
        )
    if not mine:
        return Verdict(
            "the host has no checkpoint named for this change, so none was taken: the change "
            "failed (request it again; if one appears later, the sweep reports it)",
            Command.RECONCILE_FAILED,
        )
    ids = ", ".join(c.id for c in mine)
    return Verdict(
        f"the host has {len(mine)} checkpoints named for this change ({ids}); the bot "
        "cannot tell which is its own. Merge the extra ones from the orphan sweep, then "
        "mark the change failed",
        choices=("failed",),
    )


def judge_merge(change: Change, checkpoints: list[Checkpoint], vm: VMInfo) -> Verdict:
    present = any(c.id == change.checkpoint_id for c in checkpoints)
    if present:
        return Verdict(
            f"checkpoint {change.checkpoint_id} is still on the host, so it was not removed: "
            "the change is active again (keep & merge once more if you still want to)",
            Command.RECONCILE_ACTIVE,
        )
    if vm.merging:
        return Verdict("the checkpoint is removed and its disk is still merging", wait=True)
    return Verdict(
        f"checkpoint {change.checkpoint_id} is gone and no merge is running: "
        "it was removed and merged",
        Command.RECONCILE_MERGED,
    )


def judge_restore(change: Change, checkpoints: list[Checkpoint], vm: VMInfo) -> Verdict:
    present = any(c.id == change.checkpoint_id for c in checkpoints)
    if not present:
        return Verdict(
            f"checkpoint {change.checkpoint_id} is no longer on the host (someone removed "
            "it): nothing is left to roll back to",
            Command.VANISH,
        )
    # A restore leaves the checkpoint in place either way; the VM's state and
    # its parent checkpoint are hints for a human, not proof for the bot.
    parent = "is" if vm.parent_checkpoint_id == change.checkpoint_id else "is not"
    return Verdict(
        f"the bot cannot tell whether the restore ran. The checkpoint is still there; "
        f"{vm.name} is {vm.state.name} and its current parent {parent} this checkpoint "
        f"(uptime {vm.uptime_seconds}s). Check the VM, then say what happened",
        choices=("rolled_back", "active"),
    )
