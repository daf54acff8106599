"""The one interface every Hyper-V backend implements.

VMs are addressed by VMId and checkpoints by their Id: names are not unique
on Hyper-V and `-Name` parameters take wildcards, so names never reach this
layer (callers resolve them against the inventory first).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from bot.hyperv.types import (
    Checkpoint,
    CheckpointType,
    DiscoveredVM,
    VMFacts,
    VMInfo,
    Volume,
)


@runtime_checkable
class HyperVHost(Protocol):
    """One Hyper-V host. Methods raise `bot.hyperv.errors.HyperVError`s."""

    @property
    def name(self) -> str: ...

    def list_vms(self) -> list[VMInfo]: ...

    def get_vm(self, vm_id: str) -> VMInfo: ...

    def vm_facts(self, vm_id: str) -> VMFacts: ...

    def discover_vms(self) -> list[DiscoveredVM]:
        """Every VM on the host with its disks, replication and guest facts,
        in a few calls for the whole host (never one per VM)."""
        ...

    def list_checkpoints(self, vm_id: str | None = None) -> list[Checkpoint]:
        """All checkpoints on the host, or one VM's, oldest first."""
        ...

    def create_checkpoint(self, vm_id: str, name: str) -> Checkpoint:
        """`Get-VM -Id | Checkpoint-VM -SnapshotName -Passthru`: uses the VM's
        current CheckpointType setting."""
        ...

    def restore_checkpoint(self, vm_id: str, checkpoint_id: str) -> VMInfo:
        """`Restore-VMSnapshot -Confirm:$false`; returns the VM afterwards
        (Off after a production checkpoint)."""
        ...

    def remove_checkpoint(
        self, vm_id: str, checkpoint_id: str, *, include_children: bool = False
    ) -> None:
        """Deletes the checkpoint; the host merges its disk in the background
        (`VMInfo.merging` is True until done)."""
        ...

    def start_vm(self, vm_id: str) -> VMInfo: ...

    def set_checkpoint_settings(
        self,
        vm_id: str,
        *,
        checkpoint_type: CheckpointType | None = None,
        automatic_checkpoints: bool | None = None,
    ) -> VMInfo:
        """`Set-VM -CheckpointType / -AutomaticCheckpointsEnabled` only."""
        ...

    def volumes(self) -> list[Volume]: ...
