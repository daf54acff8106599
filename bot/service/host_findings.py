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
    # What was found, without what changes by itself from tick to tick (the
    # VM's uptime): a question is asked again only when this changes.
    key: str = ""
    # The names in `message` the host gave (a checkpoint's, the VM's as the
    # host calls it): anyone who may rename them chose them, so they are
    # shown escaped (bot.changes.views.HOST_SAID).
    host_said: tuple[str, ...] = ()

    @property
    def asked_key(self) -> str:
        return self.key or self.message


def judge_create(
    change: Change,
    checkpoints: list[Checkpoint],
    owned_elsewhere: set[str],
    now: datetime,
    *,
    token: str | None,
    job_started: datetime | None,
    setting: CheckpointType | None = None,
    host_busy: str | None = None,
) -> HostFinding:
    """Did the interrupted create leave a checkpoint? Only one that carries
    the job's own token, on the change's VM, taken after the job started,
    is adopted (see `bot.service.ownership`); anything less asks a human.
    `setting`: the CheckpointType the job ran under, when the record proves
    it, so what was taken is judged as the job would have (seen: an adopted
    production-only checkpoint listed as taken "unknown").
    `host_busy`: what the host still reports doing on the VM past the
    reconciler's patience; then an empty list is no proof that none was
    taken, and a human is asked."""
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
            host_said=(mine.name,),
        )
    if not found and host_busy:
        return HostFinding(
            f"the host has no checkpoint of this VM carrying this change's name or its job's "
            f"token yet, but it still reports {change.vm_name} {host_busy}, long past when the "
            f"job's call would have ended, so the bot cannot tell whether one is being taken. "
            f"Check {change.vm_name} on {change.host}; once nothing runs there, merge strays "
            "from the orphan sweep, then mark the change failed",
            choices=("failed",),
            key=f"create:busy:{host_busy}",
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
        host_said=tuple(c.checkpoint.name for c in found),
    )


def judge_merge(
    change: Change, checkpoints: list[Checkpoint], vm: VMInfo, *, host_busy: str | None = None
) -> HostFinding:
    """`host_busy`: as for `judge_create`; a checkpoint still listed while
    the host reports deleting one may be on its way out."""
    present = any(c.id == change.checkpoint_id for c in checkpoints)
    if present and host_busy:
        return HostFinding(
            f"checkpoint {change.checkpoint_id} is still on the host, but the host still "
            f"reports {vm.name} {host_busy}, long past when the job's call would have ended. "
            f"Check {vm.name} on {change.host}, then say what happened",
            choices=("merged", "active"),
            key=f"merge:busy:{host_busy}",
            host_said=(vm.name,),
        )
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


def judge_rollback(
    change: Change, checkpoints: list[Checkpoint], vm: VMInfo, *, host_busy: str | None = None
) -> HostFinding:
    """A restore leaves no proof either way: a human is asked (`host_busy`,
    what the host still reports doing past the reconciler's patience, is
    said in the question)."""
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
        f"(uptime {vm.uptime_seconds}s)"
        + (f"; the host still reports it {host_busy}" if host_busy else "")
        + ". Check the VM, then say what happened",
        choices=("rolled_back", "active"),
        # Not the uptime: it grows every tick; a changed state or parent is news.
        key=f"rollback:{vm.state.name}:{vm.parent_checkpoint_id}:{host_busy or ''}",
        host_said=(vm.name,),
    )
