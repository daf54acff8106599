"""Hyper-V hosts: the interface, its typed results and errors, and backends."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.lazy_names import names_on_first_use

if TYPE_CHECKING:
    from bot.hyperv.errors import (
        CheckpointLimitReached,
        CheckpointNotFound,
        CheckpointsDisabled,
        CommandNotVisible,
        HostAuthError,
        HostTimeout,
        HostUnreachable,
        HyperVError,
        InsufficientSpace,
        InvalidVMState,
        NotFoundError,
        PowerShellError,
        ProductionCheckpointFailed,
        VMNotFound,
    )
    from bot.hyperv.interface import HyperVHost
    from bot.hyperv.types import (
        Checkpoint,
        CheckpointType,
        DiscoveredVM,
        DiskInfo,
        GuestInfo,
        ReplicationInfo,
        SnapshotType,
        VMFacts,
        VMInfo,
        VMOperation,
        VMState,
        Volume,
    )

# Each name is imported from its module when first asked for (PEP 562,
# https://peps.python.org/pep-0562/): a process that only needs the errors
# (every service call's error boundary, bot.service.errors) does not build
# the result types' dataclasses, 5 ms of a short command's start
# (bench/cli_start.py).
_WHERE = {
    "Checkpoint": "bot.hyperv.types",
    "CheckpointLimitReached": "bot.hyperv.errors",
    "CheckpointNotFound": "bot.hyperv.errors",
    "CheckpointType": "bot.hyperv.types",
    "CheckpointsDisabled": "bot.hyperv.errors",
    "CommandNotVisible": "bot.hyperv.errors",
    "DiscoveredVM": "bot.hyperv.types",
    "DiskInfo": "bot.hyperv.types",
    "GuestInfo": "bot.hyperv.types",
    "HostAuthError": "bot.hyperv.errors",
    "HostTimeout": "bot.hyperv.errors",
    "HostUnreachable": "bot.hyperv.errors",
    "HyperVError": "bot.hyperv.errors",
    "HyperVHost": "bot.hyperv.interface",
    "InsufficientSpace": "bot.hyperv.errors",
    "InvalidVMState": "bot.hyperv.errors",
    "NotFoundError": "bot.hyperv.errors",
    "PowerShellError": "bot.hyperv.errors",
    "ProductionCheckpointFailed": "bot.hyperv.errors",
    "ReplicationInfo": "bot.hyperv.types",
    "SnapshotType": "bot.hyperv.types",
    "VMFacts": "bot.hyperv.types",
    "VMInfo": "bot.hyperv.types",
    "VMNotFound": "bot.hyperv.errors",
    "VMOperation": "bot.hyperv.types",
    "VMState": "bot.hyperv.types",
    "Volume": "bot.hyperv.types",
}


__getattr__ = names_on_first_use(__name__, _WHERE, globals())


__all__ = [
    "Checkpoint",
    "CheckpointLimitReached",
    "CheckpointNotFound",
    "CheckpointType",
    "CheckpointsDisabled",
    "CommandNotVisible",
    "DiscoveredVM",
    "DiskInfo",
    "GuestInfo",
    "HostAuthError",
    "HostTimeout",
    "HostUnreachable",
    "HyperVError",
    "HyperVHost",
    "InsufficientSpace",
    "InvalidVMState",
    "NotFoundError",
    "PowerShellError",
    "ProductionCheckpointFailed",
    "ReplicationInfo",
    "SnapshotType",
    "VMFacts",
    "VMInfo",
    "VMNotFound",
    "VMOperation",
    "VMState",
    "Volume",
]
