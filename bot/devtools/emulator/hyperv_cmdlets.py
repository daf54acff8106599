"""The emulated cmdlets' bodies: what each visible command does on a modelled host.

    Call     one command's bound arguments, pipeline input and error list
    get_vm, get_vm_snapshot, checkpoint_vm, ...   Call -> output objects

Each body asks the host model (bot.devtools.hostmodel.ModelHost) and shapes
its views into the module's objects (`shapes`); it never consults what the
bot believes. Per-object failures go to `call.errors` (non-terminating
ErrorRecords); a `PipelineFailed` ends the pipeline (terminating). The
host's errors keep their own texts (bot.devtools.hostmodel.errors).
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.devtools.emulator import messages as msg
from bot.devtools.emulator import shapes
from bot.devtools.emulator.binding import CmdletDef, has_wildcard, like
from bot.devtools.emulator.log import EmulatorLog
from bot.devtools.emulator.messages import ErrorInfo
from bot.devtools.emulator.objects import HvObject, custom_object
from bot.devtools.hostmodel import errors as host_errors
from bot.devtools.hostmodel.enums import CheckpointType, VMOperationalStatus, VMReplicationState
from bot.devtools.hostmodel.errors import HostError
from bot.devtools.hostmodel.host import ModelHost

KVP_NAMESPACE = "root\\virtualization\\v2"
KVP_CLASS = "Msvm_KvpExchangeComponent"
# The one -Filter form the emulated JEA role accepts (a ValidatePattern in a
# role capability file): SystemName='<VMId>'.
_KVP_FILTER = re.compile(r"^\s*SystemName\s*=\s*'([0-9a-fA-F-]{36})'\s*$")


class PipelineFailed(Exception):
    """A terminating error: the pipeline ends Failed with this record."""

    def __init__(self, info: ErrorInfo) -> None:
        super().__init__(info.message)
        self.info = info


class PipelineStopped(Exception):
    """The client stopped the pipeline (PS ctrl_c signal)."""


@dataclass
class RunContext:
    host: ModelHost
    stop: threading.Event
    hang: Callable[[], frozenset[str]]
    log: EmulatorLog
    # cmdlet (folded) -> milliseconds it takes before it runs
    slow: Callable[[], Mapping[str, int]] = dict
    # cmdlets (folded) the endpoint does not expose (a narrower JEA role)
    hidden: Callable[[], frozenset[str]] = frozenset
    # cmdlet (folded) -> milliseconds its answer takes after its work is done
    late: Callable[[], Mapping[str, int]] = dict


@dataclass
class Call:
    """What a cmdlet implementation gets."""

    ctx: RunContext
    cmdlet: CmdletDef
    args: dict[str, Any]
    input: list[Any]
    first: bool
    errors: list[ErrorInfo]

    @property
    def host(self) -> ModelHost:
        return self.ctx.host

    def fail(self, exc: HostError, target: str = "") -> None:
        self.errors.append(msg.from_host_error(exc, activity=self.cmdlet.name, target=target))

    def vms(self, name_param: str) -> list[str]:
        """VM ids from `-<name_param>` (wildcards) or from VirtualMachine input."""
        ids: list[str] = []
        if name_param in self.args:
            vms = self.host.get_vms()
            for pattern in self.args[name_param]:
                found = [vm.vm_id for vm in vms if like(vm.name, pattern)]
                if not found and not has_wildcard(pattern):
                    self.errors.append(
                        msg.vm_name_not_found(
                            pattern,
                            activity=self.cmdlet.name,
                            command_type=self.cmdlet.command_type,
                        )
                    )
                ids.extend(found)
        for item in self.input:
            if isinstance(item, HvObject) and item.vm_id and item.checkpoint_id is None:
                ids.append(item.vm_id)
            else:
                self.errors.append(
                    msg.input_not_bound(self.cmdlet.name, self.cmdlet.command_type, item)
                )
        return list(dict.fromkeys(ids))


def _vm_objects(call: Call, vm_ids: list[str]) -> list[HvObject]:
    found = []
    for vm_id in vm_ids:
        try:
            found.append(shapes.vm_object(call.host.get_vm(vm_id)))
        except HostError as exc:
            call.fail(exc, vm_id)
    return found


def get_vm(call: Call) -> list[Any]:
    if "Id" in call.args:
        return _vm_objects(call, call.args["Id"])
    if "Name" in call.args:
        return _vm_objects(call, call.vms("Name"))
    return [shapes.vm_object(vm) for vm in call.host.get_vms()]


def _snapshots(call: Call) -> list[HvObject]:
    """Get-VMSnapshot's selection: -Id, -VMName / -VM input, -Name."""
    every = call.host.get_snapshots()
    if "VMName" in call.args or call.input:
        vm_ids = set(call.vms("VMName"))
        chosen = [snap for snap in every if snap.vm_id in vm_ids]
    else:
        chosen = list(every)
    if "Id" in call.args:
        wanted = set(call.args["Id"])
        chosen = [snap for snap in chosen if snap.id in wanted]
        if not chosen:
            call.fail(host_errors.checkpoint_not_found())
    if "Name" in call.args:
        pattern = call.args["Name"]
        chosen = [snap for snap in chosen if like(snap.name, pattern)]
        if not chosen and not has_wildcard(pattern):
            call.fail(host_errors.checkpoint_not_found(), pattern)
    return [shapes.snapshot_object(snap) for snap in chosen]


def get_vm_snapshot(call: Call) -> list[Any]:
    return list(_snapshots(call))


def checkpoint_vm(call: Call) -> list[Any]:
    created = []
    for vm_id in call.vms("Name"):
        try:
            snap = call.host.checkpoint_vm(vm_id, call.args.get("SnapshotName", ""))
        except HostError as exc:
            call.fail(exc, vm_id)
            continue
        if call.args.get("Passthru"):
            created.append(shapes.snapshot_object(snap))
    return created


# What each checkpoint cmdlet shows on its VM while it works: the
# secondary OperationalStatus of Msvm_ComputerSystem
# (https://learn.microsoft.com/windows/win32/hyperv_v2/msvm-computersystem:
# "Creating Snapshot", "Applying Snapshot", "Deleting Snapshot").
_IN_PROGRESS = {
    "checkpoint-vm": VMOperationalStatus.CreatingSnapshot,
    "restore-vmsnapshot": VMOperationalStatus.ApplyingSnapshot,
    "remove-vmsnapshot": VMOperationalStatus.DeletingSnapshot,
}


def working_on(call: Call) -> list[tuple[str, VMOperationalStatus]]:
    """The VMs a checkpoint cmdlet is about to work on, with the status each
    reports meanwhile; [] for any other cmdlet. Resolved on a copy of the
    call: its errors are the cmdlet's own to report when it runs."""
    status = _IN_PROGRESS.get(call.cmdlet.name.casefold())
    if status is None:
        return []
    probe = Call(call.ctx, call.cmdlet, dict(call.args), list(call.input), call.first, [])
    try:
        if status is VMOperationalStatus.CreatingSnapshot:
            vm_ids = probe.vms("Name")
        else:
            vm_ids = [s.vm_id for s in _snapshot_input(probe) if s.vm_id]
    except HostError:
        return []
    return [(vm_id, status) for vm_id in dict.fromkeys(vm_ids)]


def _snapshot_input(call: Call) -> list[HvObject]:
    """-VMSnapshot by value, or -Name with -VMName."""
    found: list[HvObject] = []
    for item in call.input:
        if isinstance(item, HvObject) and item.checkpoint_id:
            found.append(item)
        else:
            call.errors.append(
                msg.input_not_bound(call.cmdlet.name, call.cmdlet.command_type, item)
            )
    if "Name" in call.args:
        found.extend(_snapshots(call))
    return found


def _confirm(call: Call, question: str) -> bool:
    """ShouldProcess: False for -WhatIf; raises when it would have to prompt."""
    if call.args.get("WhatIf"):
        return False
    confirm = call.args.get("Confirm")
    if confirm or (confirm is None and call.cmdlet.confirm_impact_high):
        raise PipelineFailed(msg.confirmation_needs_host(question, call.cmdlet.name))
    return True


def restore_vm_snapshot(call: Call) -> list[Any]:
    restored = []
    for snap in _snapshot_input(call):
        assert snap.checkpoint_id
        name = snap.props.get("Name")
        if not _confirm(call, f'Are you sure you want to apply the checkpoint "{name}"?'):
            continue
        try:
            call.host.restore_snapshot(snap.checkpoint_id)
        except HostError as exc:
            call.fail(exc, snap.checkpoint_id)
            continue
        if call.args.get("Passthru"):
            restored.append(snap)
    return restored


def remove_vm_snapshot(call: Call) -> list[Any]:
    removed = []
    for snap in _snapshot_input(call):
        assert snap.checkpoint_id
        name = snap.props.get("Name")
        if not _confirm(call, f'Are you sure you want to delete the checkpoint "{name}"?'):
            continue
        try:
            call.host.remove_snapshot(
                snap.checkpoint_id,
                include_children=bool(call.args.get("IncludeAllChildSnapshots")),
            )
        except HostError as exc:
            call.fail(exc, snap.checkpoint_id)
            continue
        # -Passthru: the page says "returns a ... VirtualMachine object that
        # represents the checkpoint that it deletes"
        # (https://learn.microsoft.com/powershell/module/hyper-v/remove-vmsnapshot),
        # two types in one sentence. Modelled as the checkpoint passed on, as
        # Restore-VMSnapshot documents for itself; both types carry the VMId.
        if call.args.get("Passthru"):
            removed.append(snap)
    return removed


def start_vm(call: Call) -> list[Any]:
    started = []
    for vm_id in call.vms("Name"):
        if not _confirm(call, ""):
            continue
        try:
            call.host.start_vm(vm_id)
        except HostError as exc:
            call.fail(exc, vm_id)
            continue
        if call.args.get("Passthru"):
            started.extend(_vm_objects(call, [vm_id]))
    return started


def set_vm(call: Call) -> list[Any]:
    changed = []
    kind = call.args.get("CheckpointType")
    for vm_id in call.vms("Name"):
        if not _confirm(call, ""):
            continue
        try:
            call.host.set_vm(
                vm_id,
                checkpoint_type=CheckpointType[kind] if kind else None,
                automatic_checkpoints=call.args.get("AutomaticCheckpointsEnabled"),
            )
        except HostError as exc:
            call.fail(exc, vm_id)
            continue
        if call.args.get("Passthru"):
            changed.extend(_vm_objects(call, [vm_id]))
    return changed


def _devices_of_each_vm(
    call: Call,
    read: Callable[[list[str]], Sequence[Sequence[Any] | HostError]],
    shape: Callable[[Any], Any],
) -> list[Any]:
    """A device cmdlet's output: the host read once for every VM piped in
    (`Get-VM | Get-VMHardDiskDrive`), each VM's devices shaped, a VM that
    is not there a non-terminating error of its own."""
    found: list[Any] = []
    vm_ids = call.vms("VMName")
    for vm_id, devices in zip(vm_ids, read(vm_ids), strict=True):
        if isinstance(devices, HostError):
            call.fail(devices, vm_id)
        else:
            found.extend(shape(d) for d in devices)
    return found


def get_vm_hard_disk_drive(call: Call) -> list[Any]:
    return _devices_of_each_vm(call, call.host.hard_disk_drives_of, shapes.disk_object)


def get_vm_fibre_channel_hba(call: Call) -> list[Any]:
    # A VM without a virtual Fibre Channel adapter gives no object and no
    # error (the cmdlet lists the adapters that are connected).
    return _devices_of_each_vm(call, call.host.fibre_channel_hbas_of, shapes.fibre_channel_object)


def get_vm_replication(call: Call) -> list[Any]:
    explicit = "VMName" in call.args or bool(call.input)
    if explicit:
        vm_ids = call.vms("VMName")
    else:
        # Without a VM: "the replication settings of all replication-enabled
        # virtual machines" (Get-VMReplication, example 1).
        vm_ids = [
            vm.vm_id
            for vm in call.host.get_vms()
            if vm.replication_state is not VMReplicationState.Disabled
        ]
    found: list[Any] = []
    for vm_id in vm_ids:
        try:
            found.append(shapes.replication_object(call.host.replication(vm_id)))
        except HostError as exc:
            call.fail(exc, vm_id)
    return found


def get_cim_instance(call: Call) -> list[Any]:
    namespace = call.args.get("Namespace", "root\\cimv2").replace("/", "\\").strip("\\")
    if namespace.casefold() != KVP_NAMESPACE.casefold():
        raise PipelineFailed(msg.cim_error("Invalid namespace ", "0x8004100e", "MetadataError"))
    if call.args.get("ClassName", "").casefold() != KVP_CLASS.casefold():
        raise PipelineFailed(msg.cim_error("Invalid class ", "0x80041010", "MetadataError"))
    if "Filter" not in call.args:
        # No filter: every instance of the class, one per VM.
        return [shapes.kvp_object(kvp) for kvp in call.host.kvps()]
    match = _KVP_FILTER.match(call.args["Filter"])
    if match is None:
        raise PipelineFailed(msg.cim_error("Invalid query ", "0x80041017", "InvalidArgument"))
    vm_ids = [vm.vm_id for vm in call.host.get_vms()]
    wanted = [v for v in vm_ids if v.casefold() == match.group(1).casefold()]
    return [shapes.kvp_object(call.host.kvp(v)) for v in wanted]


def get_volume(call: Call) -> list[Any]:
    volumes = call.host.volumes()
    if "FilePath" in call.args:
        path = call.args["FilePath"].casefold()
        holding = [v for v in volumes if path.startswith(v.path.casefold())]
        holding.sort(key=lambda v: len(v.path), reverse=True)
        if not holding:
            call.errors.append(msg.volume_not_found(("FilePath", call.args["FilePath"])))
        return [shapes.volume_object(v) for v in holding[:1]]
    if "DriveLetter" in call.args:
        found: list[Any] = []
        for letter in call.args["DriveLetter"]:
            # A CSV has no drive letter, though its path starts with C:.
            hits = [
                v
                for v in volumes
                if not v.shared and v.path[:1].casefold() == letter[:1].casefold()
            ]
            if not hits:
                call.errors.append(msg.volume_not_found(("DriveLetter", letter)))
            found.extend(shapes.volume_object(v) for v in hits)
        return found
    return [shapes.volume_object(v) for v in volumes]


def where_object(call: Call) -> list[Any]:
    """Where-Object's comparison form, `-Property <name> -Value <v> [-EQ]`
    (its EqualSet, the default set:
    https://learn.microsoft.com/powershell/module/microsoft.powershell.core/where-object):
    the input objects whose property "is the same as the specified value".
    The other operators are not modelled (an unknown parameter is a binding
    error, as a role that lists only these parameters makes it)."""
    wanted = call.args.get("Property", "")
    value = call.args.get("Value")
    kept = []
    for item in call.input:
        found, have = item.get(wanted) if isinstance(item, HvObject) else (False, None)
        if found and _equal(have, value):
            kept.append(item)
    return kept


def _equal(left: Any, right: Any) -> bool:
    """PowerShell's -eq with a scalar on the left: the right operand is
    converted to the left one's type, and strings compare without regard to
    case (about_Comparison_Operators, "Equality operators":
    https://learn.microsoft.com/powershell/module/microsoft.powershell.core/about/about_comparison_operators).
    A value that does not convert is not equal."""
    if left is None or right is None:
        return left is None and right is None
    if isinstance(left, uuid.UUID):
        try:
            return left == (right if isinstance(right, uuid.UUID) else uuid.UUID(str(right)))
        except ValueError:
            return False
    if isinstance(left, str):
        return left.casefold() == str(right).casefold()
    return bool(left == right)


def select_object(call: Call) -> list[Any]:
    items = call.input
    if "First" in call.args:
        items = items[: max(0, call.args["First"])]
    if "ExpandProperty" in call.args:
        expanded: list[Any] = []
        for item in items:
            found, value = (
                item.get(call.args["ExpandProperty"])
                if isinstance(item, HvObject)
                else (False, None)
            )
            if not found:
                raise PipelineFailed(
                    msg.ErrorInfo(
                        message=f'Property "{call.args["ExpandProperty"]}" cannot be found.',
                        category="InvalidArgument",
                        error_id="ExpandPropertyNotFound,Microsoft.PowerShell.Commands."
                        "SelectObjectCommand",
                        exception_type="System.Management.Automation.PSArgumentException",
                        activity="Select-Object",
                    )
                )
            expanded.extend(value if isinstance(value, list) else [value])
        return expanded
    if "Property" in call.args:
        return [
            custom_object(item, call.args["Property"]) if isinstance(item, HvObject) else item
            for item in items
        ]
    return list(items)
