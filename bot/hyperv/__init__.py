"""Hyper-V hosts: the interface, its typed results and errors, and backends."""

from bot.hyperv.errors import (
    CheckpointLimitReached,
    CheckpointNotFound,
    CheckpointsDisabled,
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
    DiskInfo,
    SnapshotType,
    VMFacts,
    VMInfo,
    VMState,
    Volume,
)

__all__ = [
    "Checkpoint",
    "CheckpointLimitReached",
    "CheckpointNotFound",
    "CheckpointType",
    "CheckpointsDisabled",
    "DiskInfo",
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
    "SnapshotType",
    "VMFacts",
    "VMInfo",
    "VMNotFound",
    "VMState",
    "Volume",
]
