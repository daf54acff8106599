"""Build the Hyper-V output objects from the simulator's typed results.

Property names are the Hyper-V module's (DOMAIN.md). Values that the
`HyperVHost` interface does not know (Generation, ProcessorCount, ...) are
fixed, plausible constants so that the shape is complete.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any
from xml.sax.saxutils import escape

from bot.hyperv.emulator.objects import (
    DISK_TYPES,
    KVP_TYPES,
    REPLICATION_TYPES,
    SNAPSHOT_TYPES,
    VM_TYPES,
    VOLUME_TYPES,
    HvObject,
    PSControllerType,
    PSOperationalStatus,
    PSReplicationMode,
    checkpoint_type,
    i64,
    replication_state,
    snapshot_type,
    u16,
    u64,
    vm_state,
)
from bot.hyperv.types import Checkpoint, DiskInfo, VMFacts, VMInfo, Volume


def _guid(value: str | None) -> uuid.UUID | None:
    return uuid.UUID(value) if value else None


def vm_object(vm: VMInfo, checkpoints: list[Checkpoint]) -> HvObject:
    """`Get-VM` output. `checkpoints` are the VM's (for ParentSnapshotName)."""
    parent = next((cp for cp in checkpoints if cp.id == vm.parent_checkpoint_id), None)
    status = "Merging disks" if vm.merging else "Operating normally"
    operational = [PSOperationalStatus.MergingDisks if vm.merging else PSOperationalStatus.Ok]
    props: dict[str, Any] = {
        "VMName": vm.name,
        "VMId": uuid.UUID(vm.vm_id),
        "Id": uuid.UUID(vm.vm_id),
        "Name": vm.name,
        "State": vm_state(vm.state),
        "OperationalStatus": operational,
        "PrimaryOperationalStatus": operational[0],
        "Status": status,
        "CheckpointType": checkpoint_type(vm.checkpoint_type),
        "AutomaticCheckpointsEnabled": vm.automatic_checkpoints,
        "ReplicationState": replication_state(vm.replication_state),
        "ParentSnapshotId": _guid(vm.parent_checkpoint_id),
        "ParentSnapshotName": parent.name if parent else None,
        "ParentCheckpointId": _guid(vm.parent_checkpoint_id),
        "ParentCheckpointName": parent.name if parent else None,
        "ComputerName": vm.host,
        "IsClustered": False,
        "Uptime": dt.timedelta(seconds=vm.uptime_seconds),
        "Generation": 2,
        "Version": "9.0",
        "Notes": "",
        "ProcessorCount": 2,
        # A nested object: arrives as its ToString at depth 1.
        "HardDrives": f"HardDiskDrive (Name = 'Hard Drive on SCSI controller number 0 at "
        f"location 0', VMName = '{vm.name}')",
    }
    return HvObject(
        type_names=VM_TYPES,
        props=props,
        to_string=f"VirtualMachine (Name = '{vm.name}') [Id = '{vm.vm_id}']",
        vm_id=vm.vm_id,
    )


def snapshot_object(cp: Checkpoint, checkpoints: list[Checkpoint]) -> HvObject:
    """`Get-VMSnapshot` output (a Production checkpoint is SnapshotType Planned)."""
    parent = next((other for other in checkpoints if other.id == cp.parent_id), None)
    props: dict[str, Any] = {
        "VMName": cp.vm_name,
        "VMId": uuid.UUID(cp.vm_id),
        "Id": uuid.UUID(cp.id),
        "Name": cp.name,
        "SnapshotType": snapshot_type(cp.snapshot_type),
        "ParentSnapshotId": _guid(cp.parent_id),
        "ParentSnapshotName": parent.name if parent else None,
        "ParentCheckpointId": _guid(cp.parent_id),
        "ParentCheckpointName": parent.name if parent else None,
        "CreationTime": cp.created_at,
        "ComputerName": cp.host,
        "IsDeleted": False,
        "Path": cp.path.rsplit("\\", 1)[0] if "\\" in cp.path else cp.path,
        "SizeOfSystemFiles": u64(cp.size_bytes),
        "Notes": "",
    }
    return HvObject(
        type_names=SNAPSHOT_TYPES,
        props=props,
        to_string=f"VMSnapshot (Name = '{cp.name}', VMName = '{cp.vm_name}') [Id = '{cp.id}']",
        vm_id=cp.vm_id,
        checkpoint_id=cp.id,
    )


def disk_objects(facts: VMFacts) -> list[HvObject]:
    """`Get-VMHardDiskDrive`: one per disk; a virtual Fibre Channel adapter is
    not a hard disk drive (it is `Get-VMFibreChannelHba`'s), so it is left out."""
    vm = facts.vm
    found = []
    for location, disk in enumerate(d for d in facts.disks if not d.fibre_channel):
        found.append(_disk(vm, disk, location))
    return found


def _disk(vm: VMInfo, disk: DiskInfo, location: int) -> HvObject:
    controller = PSControllerType.IDE if disk.controller.upper() == "IDE" else PSControllerType.SCSI
    name = f"Hard Drive on {controller.name} controller number 0 at location {location}"
    props: dict[str, Any] = {
        "VMName": vm.name,
        "VMId": uuid.UUID(vm.vm_id),
        "Name": name,
        "Path": disk.path,
        # A pass-through disk has a physical disk number and no file.
        "DiskNumber": 2 if disk.passthrough else None,
        "ControllerType": controller,
        "ControllerNumber": 0,
        "ControllerLocation": location,
        "SupportPersistentReservations": disk.shared,
        "ComputerName": vm.host,
        "IsDeleted": False,
    }
    return HvObject(
        type_names=DISK_TYPES,
        props=props,
        to_string=f"HardDiskDrive (Name = '{name}', VMName = '{vm.name}') "
        f"[Id = 'Microsoft:{vm.vm_id.upper()}\\0\\{location}\\D']",
        vm_id=vm.vm_id,
    )


def replication_object(vm: VMInfo) -> HvObject:
    props: dict[str, Any] = {
        "VMName": vm.name,
        "VMId": uuid.UUID(vm.vm_id),
        "State": replication_state(vm.replication_state),
        "Health": "Normal",
        "Mode": PSReplicationMode.Primary,
        "FrequencySec": 300,
        "PrimaryServer": vm.host,
        "ReplicaServer": "replica.invalid",
        "ComputerName": vm.host,
    }
    return HvObject(
        type_names=REPLICATION_TYPES,
        props=props,
        to_string=f"VMReplication (VMName = '{vm.name}')",
        vm_id=vm.vm_id,
    )


def _kvp_item(name: str, data: str, cim_type: str = "string") -> str:
    # The text Msvm_KvpExchangeComponent.GuestIntrinsicExchangeItems holds:
    # one CIM-XML <INSTANCE> of Msvm_KvpExchangeDataItem per item (Source 2 =
    # guest intrinsic), as Hyper-V returns it.
    return (
        '<INSTANCE CLASSNAME="Msvm_KvpExchangeDataItem">'
        '<PROPERTY NAME="Caption" PROPAGATED="true" TYPE="string"></PROPERTY>'
        f'<PROPERTY NAME="Data" TYPE="{cim_type}"><VALUE>{escape(data)}</VALUE></PROPERTY>'
        '<PROPERTY NAME="Description" PROPAGATED="true" TYPE="string"></PROPERTY>'
        '<PROPERTY NAME="ElementName" PROPAGATED="true" TYPE="string"></PROPERTY>'
        '<PROPERTY NAME="InstanceID" PROPAGATED="true" TYPE="string"><VALUE></VALUE></PROPERTY>'
        f'<PROPERTY NAME="Name" TYPE="string"><VALUE>{escape(name)}</VALUE></PROPERTY>'
        '<PROPERTY NAME="Source" TYPE="uint16"><VALUE>2</VALUE></PROPERTY>'
        "</INSTANCE>"
    )


def kvp_object(facts: VMFacts) -> HvObject:
    """`Get-CimInstance ... Msvm_KvpExchangeComponent`: the guest's intrinsic
    items; empty when the guest does not exchange them (off, no integration
    services) — unknown, never "not a DC"."""
    vm = facts.vm
    items = []
    if facts.kvp_fqdn is not None:
        items.append(_kvp_item("FullyQualifiedDomainName", facts.kvp_fqdn))
    if facts.kvp_os_name is not None:
        items.append(_kvp_item("OSName", facts.kvp_os_name))
    if facts.kvp_product_type is not None:
        items.append(_kvp_item("ProductType", str(facts.kvp_product_type)))
    props: dict[str, Any] = {
        "Caption": "Key-Value Pair Exchange",
        "ElementName": "Key-Value Pair Exchange",
        "Name": vm.vm_id.upper(),
        "SystemName": vm.vm_id.upper(),
        "SystemCreationClassName": "Msvm_ComputerSystem",
        "CreationClassName": "Msvm_KvpExchangeComponent",
        "DeviceID": f"Microsoft:{vm.vm_id.upper()}\\KvpExchange",
        # CIM_EnabledLogicalElement.EnabledState: 2 Enabled, 3 Disabled.
        "EnabledState": u16(2 if items else 3),
        "GuestIntrinsicExchangeItems": items,
        "GuestExchangeItems": [],
        "PSComputerName": None,
    }
    return HvObject(
        type_names=KVP_TYPES,
        props=props,
        to_string=f'Msvm_KvpExchangeComponent (CreationClassName = "Msvm_KvpExchangeComponent", '
        f'DeviceID = "Microsoft:{vm.vm_id.upper()}\\KvpExchange", ...)',
        vm_id=vm.vm_id,
    )


def volume_object(volume: Volume) -> HvObject:
    """`Get-Volume` (an MSFT_Volume CIM instance of the Storage module)."""
    path = volume.path
    letter = path[0].upper() if len(path) >= 2 and path[1] == ":" else None
    guid = uuid.uuid5(uuid.NAMESPACE_URL, f"{volume.host}/{path}")
    props: dict[str, Any] = {
        "DriveLetter": letter,
        "DriveType": "Fixed",
        "FileSystem": "NTFS" if letter else "CSVFS",
        "FileSystemLabel": "",
        "HealthStatus": "Healthy",
        "OperationalStatus": "OK",
        "Path": f"\\\\?\\Volume{{{guid}}}\\",
        "AccessPaths": [path, f"\\\\?\\Volume{{{guid}}}\\"],
        "Size": u64(volume.capacity_bytes),
        "SizeRemaining": u64(volume.free_bytes),
        "PSComputerName": None,
    }
    return HvObject(
        type_names=VOLUME_TYPES,
        props=props,
        to_string=f'MSFT_Volume (ObjectId = "{{1}}\\\\{volume.host}\\root/Microsoft/Windows/'
        f'Storage/Providers_v2\\WSP_Volume.ObjectId=...")',
    )


def memory_int64(value: int) -> Any:
    """Int64-typed sizes (MemoryAssigned and friends)."""
    return i64(value)
