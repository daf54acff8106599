"""The exact cmdlet pipelines WinRMHost sends, as data.

Pure builders: each takes validated ids and plain values and returns a
`Pipeline` (cmdlets with parameters, nothing else), so what reaches a host is
testable without one and a JEA endpoint in NoLanguage mode can run all of it.
VMs are addressed by VMId and checkpoints by Id inside one pipeline
(`Get-VM -Id <guid> | Checkpoint-VM …`): names are not unique and Hyper-V's
`-Name` parameters take wildcards. Nothing deserialized is ever sent back.

`Select-Object -Property` trims each object to what the mapping reads, which
keeps replies small (a VirtualMachine drags dozens of nested objects along)
and makes the shape the same on every PowerShell version.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import replace

from bot.domain import is_canonical_guid
from bot.hyperv.types import CheckpointType
from bot.hyperv.winrm.pool import Cmd, Pipeline

KVP_NAMESPACE = "root\\virtualization\\v2"
KVP_CLASS = "Msvm_KvpExchangeComponent"

VM_PROPERTIES = (
    "Name",
    "VMId",
    "State",
    "CheckpointType",
    "AutomaticCheckpointsEnabled",
    "OperationalStatus",
    "ReplicationState",
    "ParentSnapshotId",
    "Uptime",
    "Path",
)
CHECKPOINT_PROPERTIES = (
    "Id",
    "VMId",
    "VMName",
    "Name",
    "ParentSnapshotId",
    "CreationTime",
    "SnapshotType",
    # The state the checkpoint captured: Off when it holds no memory.
    "State",
    "Path",
    "SizeOfSystemFiles",
)
DISK_PROPERTIES = (
    "Path",
    "ControllerType",
    "ControllerNumber",
    "ControllerLocation",
    "DiskNumber",
    "SupportPersistentReservations",
)
# A virtual Fibre Channel adapter is not a hard disk drive: Get-VMHardDiskDrive
# does not list it, Get-VMFibreChannelHba does
# (https://learn.microsoft.com/powershell/module/hyper-v/get-vmfibrechannelhba).
# Only that there is one matters (Hyper-V cannot checkpoint it); the SAN's
# name says which.
FIBRE_CHANNEL_PROPERTIES = ("VMId", "SanName")
# What a restore or remove passes through of the checkpoint it acted on
# (the proof, in its reply, that it acted on that checkpoint of that VM),
# and what the owner query reads.
OWNED_PROPERTIES = ("Id", "VMId", "VMName")
# What the act passes through, trimmed to what every type it may be has.
ACTED_PROPERTIES = ("VMId",)
REPLICATION_PROPERTIES = ("VMId", "State", "Mode", "ReplicationMode", "Health")
VOLUME_PROPERTIES = (
    "DriveLetter",
    "Path",
    "Size",
    "SizeRemaining",
    "FileSystemLabel",
    # Where a letterless volume (a CSV) is mounted, when the host says.
    "AccessPaths",
)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_CHECKPOINT_NAME = 200


def checkpoint_name_problem(name: object) -> str | None:
    if not isinstance(name, str):
        return "is not text"
    if _CONTROL.search(name):
        return "contains a control character (newline, tab, ...)"
    if len(name) > MAX_CHECKPOINT_NAME:
        return f"is longer than {MAX_CHECKPOINT_NAME} characters"
    return None


def _select(properties: tuple[str, ...]) -> Cmd:
    return Cmd("Select-Object", (("Property", list(properties)),))


def _vm(vm_id: str) -> Cmd:
    return Cmd("Get-VM", (("Id", vm_id),))


def _snapshot(checkpoint_id: str) -> Cmd:
    return Cmd("Get-VMSnapshot", (("Id", checkpoint_id),))


def list_vms() -> Pipeline:
    return (Cmd("Get-VM"), _select(VM_PROPERTIES))


def get_vm(vm_id: str) -> Pipeline:
    return (_vm(vm_id), _select(VM_PROPERTIES))


def list_checkpoints(vm_id: str | None) -> Pipeline:
    # Get-VMSnapshot's by-name set needs -VMName; piping VMs in needs neither.
    source = Cmd("Get-VM") if vm_id is None else _vm(vm_id)
    return (source, Cmd("Get-VMSnapshot"), _select(CHECKPOINT_PROPERTIES))


def checkpoint_owner(checkpoint_id: str) -> Pipeline:
    """Which VM a checkpoint belongs to: asked when a restore or remove of
    the VM's own checkpoint acted on none (to say why), and before one on
    an endpoint without Where-Object (`restore_checkpoint_by_id`)."""
    return (_snapshot(checkpoint_id), _select(OWNED_PROPERTIES))


def create_checkpoint(vm_id: str, name: str) -> Pipeline:
    params: tuple[tuple[str, object], ...] = (("Passthru", None),)
    if name:
        # Without -SnapshotName the host names it "<VM> - (<date time>)".
        params = (("SnapshotName", name), *params)
    return (_vm(vm_id), Cmd("Checkpoint-VM", params), _select(CHECKPOINT_PROPERTIES))


def _of_vm(vm_id: str, checkpoint_id: str) -> tuple[Cmd, ...]:
    """The VM's own checkpoint with that Id, or nothing: checkpoint Ids are
    unique on a host, not per VM, and `Get-VMSnapshot -Id` takes no VM (its
    parameter sets: Get-VMSnapshot). Where-Object's comparison form
    (-Property, -Value, -EQ) is parameters only, so a NoLanguage endpoint
    runs it (Where-Object, "EqualSet"). The value goes as a Guid (CLIXML
    `<G>`, [MS-PSRP] 2.2.5.1.11), the type of a VMSnapshot's Id, so the
    comparison is Guid to Guid with no conversion to rely on."""
    where = Cmd(
        "Where-Object", (("Property", "Id"), ("Value", uuid.UUID(checkpoint_id)), ("EQ", None))
    )
    return (_vm(vm_id), Cmd("Get-VMSnapshot"), where)


def _acting_on_own(vm_id: str, checkpoint_id: str, act: Cmd) -> tuple[Cmd, ...]:
    """Two statements: the VM's own checkpoint as it is (what the reply
    proves was there), then `act` on it, fed by the same filter, so only
    that checkpoint of that VM can reach it: a checkpoint of another VM, or
    none, leaves `act` with no input, and it does nothing. The check and
    the act are one round trip. `act` passes what it acted on through
    (-Passthru), trimmed to its VMId: Remove-VMSnapshot's page names its
    output a VirtualMachine "that represents the checkpoint", Restore's a
    VMSnapshot; both carry the VMId."""
    found = replace(_select(OWNED_PROPERTIES), end_of_statement=True)
    acted = (replace(act, params=(*act.params, ("Passthru", None))), _select(ACTED_PROPERTIES))
    return (*_of_vm(vm_id, checkpoint_id), found, *_of_vm(vm_id, checkpoint_id), *acted)


def restore_checkpoint(checkpoint_id: str, vm_id: str) -> Pipeline:
    """Restore the VM's own checkpoint, then (a third statement, same round
    trip) the VM afterwards."""
    # -Confirm:$false: a remote session has no console to ask on
    # (HostFunctionNotImplemented otherwise).
    restore = Cmd("Restore-VMSnapshot", (("Confirm", False),))
    *acting, last = _acting_on_own(vm_id, checkpoint_id, restore)
    return (*acting, replace(last, end_of_statement=True), *get_vm(vm_id))


def remove_checkpoint(checkpoint_id: str, vm_id: str, *, include_children: bool) -> Pipeline:
    """Remove the VM's own checkpoint."""
    params: tuple[tuple[str, object], ...] = (("Confirm", False),)
    if include_children:
        params = (("IncludeAllChildSnapshots", None), *params)
    return _acting_on_own(vm_id, checkpoint_id, Cmd("Remove-VMSnapshot", params))


# -- for an endpoint whose role capability predates Where-Object ------------------
# (deploy/jea/CheckpointBot.psrc before 2026-12-05): the owner is asked
# first (`checkpoint_owner`), then the checkpoint is addressed by Id alone.


def restore_checkpoint_by_id(checkpoint_id: str, vm_id: str) -> Pipeline:
    restore = Cmd("Restore-VMSnapshot", (("Confirm", False),), end_of_statement=True)
    return (_snapshot(checkpoint_id), restore, *get_vm(vm_id))


def remove_checkpoint_by_id(checkpoint_id: str, *, include_children: bool) -> Pipeline:
    params: tuple[tuple[str, object], ...] = (("Confirm", False),)
    if include_children:
        params = (("IncludeAllChildSnapshots", None), *params)
    return (_snapshot(checkpoint_id), Cmd("Remove-VMSnapshot", params))


def start_vm(vm_id: str) -> Pipeline:
    return (_vm(vm_id), Cmd("Start-VM", (("Passthru", None),)), _select(VM_PROPERTIES))


def set_checkpoint_settings(
    vm_id: str, *, checkpoint_type: CheckpointType | None, automatic_checkpoints: bool | None
) -> Pipeline:
    params: list[tuple[str, object]] = []
    if checkpoint_type is not None:
        # The enum's name: PowerShell's binder converts it to VMCheckpointType.
        params.append(("CheckpointType", CheckpointType(checkpoint_type).name))
    if automatic_checkpoints is not None:
        params.append(("AutomaticCheckpointsEnabled", bool(automatic_checkpoints)))
    params.append(("Passthru", None))
    return (_vm(vm_id), Cmd("Set-VM", tuple(params)), _select(VM_PROPERTIES))


def hard_disks(vm_id: str) -> Pipeline:
    return (_vm(vm_id), Cmd("Get-VMHardDiskDrive"), _select(DISK_PROPERTIES))


def fibre_channel(vm_id: str) -> Pipeline:
    return (_vm(vm_id), Cmd("Get-VMFibreChannelHba"), _select(FIBRE_CHANNEL_PROPERTIES))


def replication(vm_id: str) -> Pipeline:
    return (_vm(vm_id), Cmd("Get-VMReplication"), _select(REPLICATION_PROPERTIES))


def kvp(vm_id: str) -> Pipeline:
    if not is_canonical_guid(vm_id):
        raise ValueError("kvp() needs a validated, canonical VMId")
    # The one value formatted into a string the host parses (WQL): it is a
    # GUID checked against a hex-and-dashes pattern above, so it cannot close
    # the quote. Msvm_ComputerSystem.Name (= SystemName) is the upper-case VMId.
    wql = f"SystemName='{vm_id.upper()}'"
    return (
        Cmd(
            "Get-CimInstance",
            (("Namespace", KVP_NAMESPACE), ("ClassName", KVP_CLASS), ("Filter", wql)),
        ),
        _select(("SystemName", "GuestIntrinsicExchangeItems")),
    )


def volumes() -> Pipeline:
    return (Cmd("Get-Volume"), _select(VOLUME_PROPERTIES))


# The statements of `vm_facts`, each told from the others by the property
# set its Select-Object gives every output object.
FACT_KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("vm", VM_PROPERTIES),
    ("disk", DISK_PROPERTIES),
    ("fibre_channel", FIBRE_CHANNEL_PROPERTIES),
    ("kvp", ("SystemName", "GuestIntrinsicExchangeItems")),
    ("checkpoint", CHECKPOINT_PROPERTIES),
    ("volume", VOLUME_PROPERTIES),
)


def vm_facts(vm_id: str) -> Pipeline:
    """The facts a decision rests on (policy explain, create and its
    re-check; discovery uses the `discover_*` pipelines), as one invocation of six
    statements (`add_statement`): one round trip instead of six
    (docs/winrm-client.md). Every value is still a parameter. A JEA
    endpoint in NoLanguage mode accepts no script text, only commands and
    parameters sent through the API (about_Language_Modes, "No language");
    statements are built the same way, with no script text."""
    statements = (
        get_vm(vm_id),
        hard_disks(vm_id),
        fibre_channel(vm_id),
        kvp(vm_id),
        list_checkpoints(vm_id),
        volumes(),
    )
    pipeline: list[Cmd] = []
    for statement in statements:
        *head, last = statement
        pipeline += [*head, replace(last, end_of_statement=True)]
    return tuple(pipeline)


# -- discovery: every VM of a host in a few calls ----------------------------------
# Each pipeline below asks for all of a host's VMs at once; the replies carry
# each object's VMId (KVP: SystemName), which is how they are joined. None of
# them takes a value from the bot, so a JEA role exposing the cmdlets with no
# parameters beyond those already listed serves them (deploy/jea/).

DISCOVERY_VM_PROPERTIES = (
    *VM_PROPERTIES,
    # The node that holds the VM (Get-VM lists the VMs registered on the host
    # it runs on), and whether it is a clustered role.
    "ComputerName",
    "IsClustered",
)
DISCOVERY_DISK_PROPERTIES = ("VMId", *DISK_PROPERTIES)
DISCOVERY_REPLICATION_PROPERTIES = (
    "VMId",
    "State",
    "Mode",
    "Health",
    "PrimaryServer",
    "ReplicaServer",
)


def discover_vms() -> Pipeline:
    return (Cmd("Get-VM"), _select(DISCOVERY_VM_PROPERTIES))


def discover_disks() -> Pipeline:
    # Get-VMHardDiskDrive's by-name set needs -VMName; piping every VM in
    # binds -VM, as the single-VM pipeline does.
    return (Cmd("Get-VM"), Cmd("Get-VMHardDiskDrive"), _select(DISCOVERY_DISK_PROPERTIES))


def discover_fibre_channel() -> Pipeline:
    # Its by-name set needs -VMName, as Get-VMHardDiskDrive's does; piping
    # every VM in binds -VM. A VM without an adapter gives no object.
    return (Cmd("Get-VM"), Cmd("Get-VMFibreChannelHba"), _select(FIBRE_CHANNEL_PROPERTIES))


def discover_replication() -> Pipeline:
    # Without a VM, Get-VMReplication lists "the replication settings of all
    # replication-enabled virtual machines" (its example 1), and raises no
    # error for VMs that are not replicated.
    return (Cmd("Get-VMReplication"), _select(DISCOVERY_REPLICATION_PROPERTIES))


def discover_kvp() -> Pipeline:
    # No -Filter: one Msvm_KvpExchangeComponent per VM, keyed by SystemName
    # (the upper-case VMId).
    return (
        Cmd("Get-CimInstance", (("Namespace", KVP_NAMESPACE), ("ClassName", KVP_CLASS))),
        _select(("SystemName", "GuestIntrinsicExchangeItems")),
    )
