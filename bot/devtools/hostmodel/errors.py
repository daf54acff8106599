"""The host's own error texts, in one place, as Hyper-V writes them.

A `HostError` is what a cmdlet writes as an ErrorRecord: the exception's
message, the CategoryInfo category and the FullyQualifiedErrorId. It names
no class of the bot's: telling a disabled checkpoint from a full disk is the
client's job, from these very records (bot.hyperv.winrm.errors).

Where a text was seen verbatim in public sources the source is named; the
rest follow the same shape (summary line, then per-VM detail lines with
`(Virtual machine ID <GUID>)`) and are marked "modelled". The VMId in detail
lines is upper case, as the host prints it.
"""

from __future__ import annotations

_CMDLETS = "Microsoft.HyperV.PowerShell.Commands"
MAX_CHECKPOINTS_PER_VM = 50


class HostError(Exception):
    """One failure as the host reports it (a non-terminating ErrorRecord of
    the cmdlet that hit it)."""

    def __init__(self, message: str, *, category: str, error_id: str) -> None:
        super().__init__(message)
        self.message = message
        self.category = category
        self.error_id = error_id


def _vm(name: str, vm_id: str) -> str:
    return f"'{name}'. (Virtual machine ID {vm_id.upper()})"


def _failed(name: str, vm_id: str) -> str:
    return f"Checkpoint operation for '{name}' failed. (Virtual machine ID {vm_id.upper()})"


def vm_not_found(vm_id: str) -> HostError:
    # `Get-VM -Id`, also on a host that simply does not hold this VM. The
    # by-name form `Hyper-V was unable to find a virtual machine with name
    # "DC01".` with InvalidArgument / InvalidParameter,...GetVM is verbatim
    # (VirtualEngine/Lability#294, PowerShell books); the by-Id wording is
    # modelled on it.
    return HostError(
        f'Hyper-V was unable to find a virtual machine with ID "{vm_id}".',
        category="InvalidArgument",
        error_id=f"InvalidParameter,{_CMDLETS}.GetVM",
    )


def checkpoint_not_found() -> HostError:
    # Verbatim (parsed by name in public Hyper-V clients); the id is the one
    # scripts catch: ObjectNotFound,...GetVMSnapshot.
    return HostError(
        "Unable to find a snapshot matching the given criteria.",
        category="ObjectNotFound",
        error_id=f"ObjectNotFound,{_CMDLETS}.GetVMSnapshot",
    )


def checkpoints_disabled(name: str, vm_id: str) -> HostError:
    # Verbatim from a Windows 10 1803 host (hashicorp/vagrant#9977).
    return HostError(
        "Checkpoint operation failed.\nCheckpoints have been disabled.\n"
        f"{_failed(name, vm_id)}\nCheckpoints have been disabled for {_vm(name, vm_id)}.",
        category="InvalidOperation",
        error_id=f"OperationFailed,{_CMDLETS}.CheckpointVM",
    )


def production_failed(name: str, vm_id: str) -> HostError:
    # First two lines as Checkpoint-VM prints them, the detail lines as the
    # VMMS event log has them (Acronis forum thread, 2024-06-25).
    return HostError(
        "Checkpoint operation failed.\nProduction checkpoints cannot be created.\n"
        f"Production checkpoints cannot be created for {_vm(name, vm_id)}\n"
        f"{_failed(name, vm_id)}",
        category="InvalidOperation",
        error_id=f"OperationFailed,{_CMDLETS}.CheckpointVM",
    )


def limit_reached(name: str, vm_id: str) -> HostError:
    # Modelled: the 50-per-VM limit is documented, its exact text was not found.
    return HostError(
        "Checkpoint operation failed.\n"
        "The maximum number of checkpoints has been reached.\n"
        f"{_failed(name, vm_id)}\n"
        f"'{name}' already has {MAX_CHECKPOINTS_PER_VM} checkpoints, the maximum for a "
        f"virtual machine. (Virtual machine ID {vm_id.upper()})",
        category="InvalidOperation",
        error_id=f"OperationFailed,{_CMDLETS}.CheckpointVM",
    )


_UNSUPPORTED_DISK = {
    "passthrough": "one or more passthrough disks are attached",
    "fibre_channel": "one or more virtual Fibre Channel adapters are attached",
    "shared": "one or more shared virtual hard disks are attached",
}


def unsupported_disk(name: str, vm_id: str, kind: str) -> HostError:
    # Modelled: that pass-through, vFC and (pre-VHD Set) shared VHDX block
    # checkpoints is documented; the exact wording was not found.
    return HostError(
        "Checkpoint operation failed.\n"
        f"{_failed(name, vm_id)}\n"
        f"Cannot take a checkpoint for '{name}' because {_UNSUPPORTED_DISK[kind]}. "
        f"(Virtual machine ID {vm_id.upper()})",
        category="InvalidOperation",
        error_id=f"OperationFailed,{_CMDLETS}.CheckpointVM",
    )


def merging(name: str, vm_id: str, *, summary: str, cmdlet: str) -> HostError:
    # The middle sentence is verbatim Hyper-V (matched by public Hyper-V
    # clients); summary and detail lines are modelled.
    return HostError(
        f"{summary}\n"
        "The operation cannot be performed while the virtual machine is in its current state.\n"
        f"'{name}' is merging disks. (Virtual machine ID {vm_id.upper()})",
        category="InvalidOperation",
        error_id=f"InvalidState,{_CMDLETS}.{cmdlet}",
    )


def insufficient_space(name: str, vm_id: str) -> HostError:
    # "There is not enough space on the disk." is Win32 ERROR_DISK_FULL
    # (0x80070070); wrapped in the checkpoint summary as the other failures.
    return HostError(
        "Checkpoint operation failed.\n"
        "There is not enough space on the disk. (0x80070070)\n"
        f"{_failed(name, vm_id)}",
        category="InvalidOperation",
        error_id=f"OperationFailed,{_CMDLETS}.CheckpointVM",
    )


def replication_not_enabled(name: str) -> HostError:
    # Modelled: Get-VMReplication for a VM without Hyper-V Replica.
    return HostError(
        f"Replication is not enabled for virtual machine '{name}'.",
        category="ObjectNotFound",
        error_id=f"ObjectNotFound,{_CMDLETS}.GetVMReplication",
    )
