"""What the host's answers mean for an interrupted change: pure functions
from the change, the checkpoints and the VM as the host reports them to a
finding (a step to take, a question for a human, or wait)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.changes import Command
from bot.hyperv import Checkpoint, CheckpointType, VMInfo
from bot.hyperv.evidence import holds_memory, judge_listed, judge_taken
from bot.service.ownership import candidates, proven
from bot.store.tables import change_ref
from bot.store.tables.changes import Change


@dataclass(frozen=True)
class HostFinding:
    """What the host says about an interrupted change: a command to apply,
    a question for a human (`choices`), or nothing yet (`wait`)."""

    message: str
    command: Command | None = None
    values: dict[str, Any] | None = None
    choices: tuple[str, ...] = ()
    wait: bool = False


def judge_create(
    change: Change,
    checkpoints: list[Checkpoint],
    owned_elsewhere: set[str],
    now: datetime,
    *,
    token: str | None,
    job_started: datetime | None,
    setting: CheckpointType | None = None,
) -> HostFinding:
    """Did the interrupted create leave a checkpoint? Only one that carries
    the job's own token, on the change's VM, taken after the job started,
    is adopted (see `bot.service.ownership`); anything less asks a human.
    `setting`: the CheckpointType the job ran under, when the record proves
    it, so what was taken is judged as the job would have (seen: an adopted
    production-only checkpoint listed as taken "unknown")."""
    ref = change_ref(change.id or 0)
    found = candidates(
        ref,
        token,
        change.vm_id,
        checkpoints,
        job_started=job_started,
        owned_elsewhere=owned_elsewhere,
    )
    mine = proven(found)
    if mine is not None:
        taken = (
            judge_taken(mine, setting=setting, vm_state=None)
            if setting is not None
            else judge_listed(mine)
        )
        return HostFinding(
            f"the host has checkpoint {mine.id} ({mine.name}), taken "
            f"{mine.created_at.isoformat(timespec='seconds')} by this change's job (its token "
            "is in the name): the change is active",
            Command.RECONCILE_ACTIVE,
            {
                "checkpoint_id": mine.id,
                "checkpoint_name": mine.name,
                "expires_at": now + timedelta(seconds=change.ttl_seconds),
                "taken_type": taken.kind.value,
                "taken_evidence": taken.evidence[:500],
                "holds_memory": holds_memory(mine),
            },
        )
    if not found:
        return HostFinding(
            "the host has no checkpoint of this VM carrying this change's name or its job's "
            "token, so none was taken: the change failed (request it again; if one appears "
            "later, the sweep reports it)",
            Command.RECONCILE_FAILED,
        )
    listed = "; ".join(f'{c.checkpoint.id} "{c.checkpoint.name}": {c.why}' for c in found)
    several = sum(1 for c in found if c.proven) > 1
    lead = (
        "several checkpoints carry this job's token, so the bot cannot tell which is its own"
        if several
        else "no checkpoint proves to be this job's"
    )
    return HostFinding(
        f"{lead}: {listed}. None was adopted. Check {change.vm_name} on {change.host}; "
        "merge strays from the orphan sweep, then mark the change failed",
        choices=("failed",),
    )


def judge_merge(change: Change, checkpoints: list[Checkpoint], vm: VMInfo) -> HostFinding:
    present = any(c.id == change.checkpoint_id for c in checkpoints)
    if present:
        return HostFinding(
            f"checkpoint {change.checkpoint_id} is still on the host, so it was not removed: "
            "the change is active again (keep & merge once more if you still want to)",
            Command.RECONCILE_ACTIVE,
        )
    if vm.merging:
        return HostFinding("the checkpoint is removed and its disk is still merging", wait=True)
    return HostFinding(
        f"checkpoint {change.checkpoint_id} is gone and no merge is running: "
        "it was removed and merged",
        Command.RECONCILE_MERGED,
    )


def judge_rollback(change: Change, checkpoints: list[Checkpoint], vm: VMInfo) -> HostFinding:
    present = any(c.id == change.checkpoint_id for c in checkpoints)
    if not present:
        return HostFinding(
            f"checkpoint {change.checkpoint_id} is no longer on the host (someone removed "
            "it): nothing is left to roll back to",
            Command.VANISH,
        )
    # A restore leaves the checkpoint in place either way; the VM's state and
    # its parent checkpoint are hints for a human, not proof for the bot.
    parent = "is" if vm.parent_checkpoint_id == change.checkpoint_id else "is not"
    return HostFinding(
        f"the bot cannot tell whether the restore ran. The checkpoint is still there; "
        f"{vm.name} is {vm.state.name} and its current parent {parent} this checkpoint "
        f"(uptime {vm.uptime_seconds}s). Check the VM, then say what happened",
        choices=("rolled_back", "active"),
    )
