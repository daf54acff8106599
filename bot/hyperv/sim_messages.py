"""The simulator's error texts, in one place, as Hyper-V writes them.

Where a text was seen verbatim in public sources the source is named; the
rest follow the same shape (summary line, then per-VM detail lines with
`(Virtual machine ID <GUID>)`) and are marked "modelled". The VMId in detail
lines is upper case, as the host prints it. Callers must not string-match
these texts (they are localised on real hosts); the error class is the API.
"""

from __future__ import annotations

from bot.hyperv.errors import (
    CheckpointLimitReached,
    CheckpointNotFound,
    CheckpointsDisabled,
    HostUnreachable,
    InsufficientSpace,
    InvalidVMState,
    PowerShellError,
    ProductionCheckpointFailed,
    VMNotFound,
)

_CMDLETS = "Microsoft.HyperV.PowerShell.Commands"
MAX_CHECKPOINTS_PER_VM = 50


def _vm(name: str, vm_id: str) -> str:
    return f"'{name}'. (Virtual machine ID {vm_id.upper()})"


def _failed(name: str, vm_id: str) -> str:
    return f"Checkpoint operation for '{name}' failed. (Virtual machine ID {vm_id.upper()})"


def host_unknown(host: str) -> HostUnreachable:
    # The WinRM client's text for a name it cannot reach (from memory of
    # PSRemotingTransportException output; the emulator will say the same).
    return HostUnreachable(
        f"Connecting to remote server {host} failed with the following error message : "
        "WinRM cannot complete the operation. Verify that the specified computer name is "
        "valid, that the computer is accessible over the network, and that a firewall "
        "exception for the WinRM service is enabled and allows access from this computer.",
        host=host,
        category="OpenError",
        error_id="WinRMOperationTimeout,PSSessionStateBroken",
    )


def vm_not_found(host: str, vm_id: str) -> VMNotFound:
    # `Get-VM -Id`. The by-name form `Hyper-V was unable to find a virtual
    # machine with name "DC01".` with InvalidArgument /
    # InvalidParameter,...GetVM is verbatim (VirtualEngine/Lability#294,
    # DOMAIN.md, PowerShell books); the by-Id wording is modelled on it.
    return VMNotFound(
        f'Hyper-V was unable to find a virtual machine with ID "{vm_id}".',
        host=host,
        category="InvalidArgument",
        error_id=f"InvalidParameter,{_CMDLETS}.GetVM",
    )


def checkpoint_not_found(host: str) -> CheckpointNotFound:
    # Verbatim (DOMAIN.md; parsed by name in public Hyper-V clients); the id
    # is the one scripts catch: ObjectNotFound,...GetVMSnapshot.
    return CheckpointNotFound(
        "Unable to find a snapshot matching the given criteria.",
        host=host,
        category="ObjectNotFound",
        error_id=f"ObjectNotFound,{_CMDLETS}.GetVMSnapshot",
    )


def checkpoints_disabled(host: str, name: str, vm_id: str) -> CheckpointsDisabled:
    # Verbatim from a Windows 10 1803 host (hashicorp/vagrant#9977).
    return CheckpointsDisabled(
        "Checkpoint operation failed.\nCheckpoints have been disabled.\n"
        f"{_failed(name, vm_id)}\nCheckpoints have been disabled for {_vm(name, vm_id)}.",
        host=host,
        category="InvalidOperation",
        error_id=f"OperationFailed,{_CMDLETS}.CheckpointVM",
    )


def production_failed(host: str, name: str, vm_id: str) -> ProductionCheckpointFailed:
    # First two lines as Checkpoint-VM prints them, the detail lines as the
    # VMMS event log has them (Acronis forum thread, 2024-06-25).
    return ProductionCheckpointFailed(
        "Checkpoint operation failed.\nProduction checkpoints cannot be created.\n"
        f"Production checkpoints cannot be created for {_vm(name, vm_id)}\n"
        f"{_failed(name, vm_id)}",
        host=host,
        category="InvalidOperation",
        error_id=f"OperationFailed,{_CMDLETS}.CheckpointVM",
    )


def limit_reached(host: str, name: str, vm_id: str) -> CheckpointLimitReached:
    # Modelled: the 50-per-VM limit is documented, its exact text was not found.
    return CheckpointLimitReached(
        "Checkpoint operation failed.\n"
        "The maximum number of checkpoints has been reached.\n"
        f"{_failed(name, vm_id)}\n"
        f"'{name}' already has {MAX_CHECKPOINTS_PER_VM} checkpoints, the maximum for a "
        f"virtual machine. (Virtual machine ID {vm_id.upper()})",
        host=host,
        category="InvalidOperation",
        error_id=f"OperationFailed,{_CMDLETS}.CheckpointVM",
    )


_UNSUPPORTED_DISK = {
    "passthrough": "one or more passthrough disks are attached",
    "fibre_channel": "one or more virtual Fibre Channel adapters are attached",
    "shared": "one or more shared virtual hard disks are attached",
}


def unsupported_disk(host: str, name: str, vm_id: str, kind: str) -> PowerShellError:
    # Modelled: that pass-through, vFC and (pre-VHD Set) shared VHDX block
    # checkpoints is documented; the exact wording was not found.
    return PowerShellError(
        "Checkpoint operation failed.\n"
        f"{_failed(name, vm_id)}\n"
        f"Cannot take a checkpoint for '{name}' because {_UNSUPPORTED_DISK[kind]}. "
        f"(Virtual machine ID {vm_id.upper()})",
        host=host,
        category="InvalidOperation",
        error_id=f"OperationFailed,{_CMDLETS}.CheckpointVM",
    )


def merging(host: str, name: str, vm_id: str, *, summary: str, cmdlet: str) -> InvalidVMState:
    # The middle sentence is verbatim Hyper-V (matched by public Hyper-V
    # clients); summary and detail lines are modelled.
    return InvalidVMState(
        f"{summary}\n"
        "The operation cannot be performed while the virtual machine is in its current state.\n"
        f"'{name}' is merging disks. (Virtual machine ID {vm_id.upper()})",
        host=host,
        category="InvalidOperation",
        error_id=f"InvalidState,{_CMDLETS}.{cmdlet}",
    )


def insufficient_space(host: str, name: str, vm_id: str) -> InsufficientSpace:
    # "There is not enough space on the disk." is Win32 ERROR_DISK_FULL
    # (0x80070070); wrapped in the checkpoint summary as the other failures.
    return InsufficientSpace(
        "Checkpoint operation failed.\n"
        "There is not enough space on the disk. (0x80070070)\n"
        f"{_failed(name, vm_id)}",
        host=host,
        category="InvalidOperation",
        error_id=f"OperationFailed,{_CMDLETS}.CheckpointVM",
    )
