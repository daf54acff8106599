"""What kind of checkpoint a host really took, judged from what it reports.

Hyper-V does not say "production" or "standard" on a checkpoint:
`Get-VMSnapshot` reads `SnapshotType = Standard` for both (the type names the
kind of *snapshot settings*, realized vs planned VM, replica, recovery; see
`bot.hyperv.types.SnapshotType`). What differs is what the checkpoint holds:

- A production checkpoint is made with VSS inside the guest (or the file
  system freeze in Linux guests): "No snapshot of the virtual machine memory
  state is taken"
  (https://learn.microsoft.com/virtualization/hyper-v-on-windows/user-guide/checkpoints).
  The checkpoint's own `State` (a VMSnapshot is a VirtualMachineBase) is
  the captured state, `Off`, and restoring it leaves the VM Off.
- A standard checkpoint captures the running VM's memory and device state;
  its `State` is the captured `Running` (or `Saved`, `Paused`), and
  restoring it brings that state back.
- With `CheckpointType = Production`, Hyper-V falls back to a standard
  checkpoint when the guest cannot make a production one;
  `ProductionOnly` fails instead
  (https://learn.microsoft.com/powershell/module/hyper-v/set-vm, -CheckpointType).

So a checkpoint of a running VM with `CheckpointType` Production whose
captured state is not Off is a fallback. A checkpoint of a VM that was off
holds no memory whatever was asked; it is as consistent as a production one.

Pure functions: the executor records the verdict with its reason, the CLI
and Slack show it, and nothing here guesses when the host did not say.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from bot.domain import CheckpointKind
from bot.hyperv.types import Checkpoint, CheckpointType, SnapshotType, VMState

# Captured states that carry memory: a standard checkpoint of a live VM.
_WITH_MEMORY = frozenset({VMState.Running, VMState.Saved, VMState.Paused})


class TakenKind(enum.StrEnum):
    """What the evidence says was taken: a kind, or that it cannot tell."""

    PRODUCTION = CheckpointKind.PRODUCTION.value
    STANDARD = CheckpointKind.STANDARD.value
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Taken:
    """What the host took, why the bot believes it, and whether Hyper-V fell
    back from the production checkpoint it was asked for."""

    kind: TakenKind
    evidence: str
    fell_back: bool = False


def holds_memory(checkpoint: Checkpoint) -> bool | None:
    """True for a captured running/saved/paused state, False for Off, None
    when the host did not report one the bot can read."""
    state = checkpoint.captured_state
    if state is None:
        return None
    if state in _WITH_MEMORY:
        return True
    if state is VMState.Off:
        return False
    return None


def judge_taken(
    checkpoint: Checkpoint, *, setting: CheckpointType | None, vm_state: VMState | None
) -> Taken:
    """The kind of a checkpoint the bot has just taken, given the VM's
    `CheckpointType` while it was taken and the VM's state just before."""
    if checkpoint.snapshot_type is not SnapshotType.Standard:
        return Taken(
            TakenKind.UNKNOWN,
            f"the host reports SnapshotType {checkpoint.snapshot_type.name}, which "
            "Checkpoint-VM does not make",
        )
    memory = holds_memory(checkpoint)
    shown = checkpoint.captured_state.name if checkpoint.captured_state else "not reported"
    if setting is CheckpointType.Standard:
        if memory is False:
            return Taken(
                TakenKind.STANDARD,
                "CheckpointType was Standard; the VM was off, so it holds no memory",
            )
        return Taken(
            TakenKind.STANDARD,
            f"CheckpointType was Standard; the checkpoint's captured state is {shown}",
        )
    if setting not in (CheckpointType.Production, CheckpointType.ProductionOnly):
        return Taken(
            TakenKind.UNKNOWN,
            "the VM's CheckpointType at that moment is not known",
        )
    if memory is None:
        return Taken(
            TakenKind.UNKNOWN,
            f"CheckpointType was {setting.name}, but the host did not report the "
            f"checkpoint's captured state ({shown})",
        )
    if not memory:
        if vm_state is VMState.Off:
            why = "the VM was off, so the checkpoint holds its disks at rest and no memory"
        elif vm_state is None:
            # Judged after the fact (the reconciler): the VM's state then is
            # not on record, and either way no memory means no fallback.
            why = (
                "the checkpoint holds no memory (its captured state is Off): the guest's VSS "
                "made it, or the VM was off"
            )
        else:
            why = (
                "the checkpoint holds no memory (its captured state is Off) although the VM "
                f"was {vm_state.name if vm_state else 'running'}: the guest's VSS made it"
            )
        return Taken(TakenKind.PRODUCTION, f"CheckpointType was {setting.name}; {why}")
    return Taken(
        TakenKind.STANDARD,
        f"CheckpointType was {setting.name}, but the checkpoint holds the VM's memory "
        f"(captured state {shown}): Hyper-V fell back to a standard checkpoint, so it is "
        "not application-consistent",
        fell_back=True,
    )


def judge_listed(checkpoint: Checkpoint) -> Taken:
    """A checkpoint seen on a host, without the record of how it was taken:
    only what it holds can be told."""
    if checkpoint.snapshot_type is not SnapshotType.Standard:
        name = checkpoint.snapshot_type.name
        return Taken(TakenKind.UNKNOWN, f"SnapshotType {name}: not a checkpoint the bot takes")
    memory = holds_memory(checkpoint)
    if memory:
        assert checkpoint.captured_state is not None
        return Taken(
            TakenKind.STANDARD,
            f"holds the VM's memory (captured state {checkpoint.captured_state.name})",
        )
    if memory is False:
        return Taken(
            TakenKind.UNKNOWN,
            "holds no memory: a production checkpoint, or any checkpoint of a VM that was off",
        )
    return Taken(TakenKind.UNKNOWN, "the host did not report what the checkpoint holds")
