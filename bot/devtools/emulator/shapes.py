"""Build the Hyper-V output objects from the host model's views.

Property names are the Hyper-V module's; every value comes from the
modelled host (bot.devtools.hostmodel.views) in its own enums, so what the
client reads is what the host says, not what the client expects. Values the
model does not keep (Version, Notes) are fixed, plausible constants so that
the shape is complete.
"""

from __future__ import annotations

import uuid
from typing import Any
from xml.sax.saxutils import escape

from bot.devtools.emulator.objects import (
    DISK_TYPES,
    FIBRE_CHANNEL_TYPES,
    KVP_TYPES,
    REPLICATION_TYPES,
    SNAPSHOT_TYPES,
    VM_TYPES,
    VOLUME_TYPES,
    HvObject,
    i64,
    ps_enum,
    u16,
    u64,
)
from bot.devtools.hostmodel.views import (
    FibreChannelHba,
    HardDiskDrive,
    HostVolume,
    KvpComponent,
    VirtualMachine,
    VMReplication,
    VMSnapshot,
)


def _guid(value: str | None) -> uuid.UUID | None:
    return uuid.UUID(value) if value else None


def vm_object(vm: VirtualMachine) -> HvObject:
    """`Get-VM` output: a VirtualMachine."""
    operational = [ps_enum(status) for status in vm.operational_status]
    props: dict[str, Any] = {
        "VMName": vm.name,
        "VMId": uuid.UUID(vm.vm_id),
        "Id": uuid.UUID(vm.vm_id),
        "Name": vm.name,
        "State": ps_enum(vm.state),
        "OperationalStatus": operational,
        "PrimaryOperationalStatus": operational[0],
        "SecondaryOperationalStatus": operational[1] if len(operational) > 1 else None,
        "Status": vm.status,
        "CheckpointType": ps_enum(vm.checkpoint_type),
        "AutomaticCheckpointsEnabled": vm.automatic_checkpoints_enabled,
        "ReplicationState": ps_enum(vm.replication_state),
        "ReplicationHealth": ps_enum(vm.replication_health),
        "ReplicationMode": ps_enum(vm.replication_mode),
        "ParentSnapshotId": _guid(vm.parent_snapshot_id),
        "ParentSnapshotName": vm.parent_snapshot_name,
        "ParentCheckpointId": _guid(vm.parent_snapshot_id),
        "ParentCheckpointName": vm.parent_snapshot_name,
        "ComputerName": vm.computer_name,
        "IsClustered": vm.is_clustered,
        "Uptime": vm.uptime,
        "Path": vm.path,
        "ConfigurationLocation": vm.path,
        "SnapshotFileLocation": vm.path,
        "Generation": vm.generation,
        "Version": "9.0",
        "Notes": "",
        "ProcessorCount": vm.processor_count,
        "MemoryStartup": i64(vm.memory_startup_bytes),
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


def snapshot_object(snap: VMSnapshot) -> HvObject:
    """`Get-VMSnapshot` / `Checkpoint-VM -Passthru` output: a VMSnapshot. Its
    `State` is the state the checkpoint holds (Off for one without memory);
    `SnapshotType` is what the host calls it (Standard for every checkpoint
    Checkpoint-VM takes)."""
    props: dict[str, Any] = {
        "VMName": snap.vm_name,
        "VMId": uuid.UUID(snap.vm_id),
        "Id": uuid.UUID(snap.id),
        "Name": snap.name,
        "State": ps_enum(snap.state),
        "SnapshotType": ps_enum(snap.snapshot_type),
        "IsAutomaticCheckpoint": snap.is_automatic_checkpoint,
        "ParentSnapshotId": _guid(snap.parent_snapshot_id),
        "ParentSnapshotName": snap.parent_snapshot_name,
        "ParentCheckpointId": _guid(snap.parent_snapshot_id),
        "ParentCheckpointName": snap.parent_snapshot_name,
        "CreationTime": snap.creation_time,
        "ComputerName": snap.computer_name,
        "IsDeleted": False,
        "Path": snap.path,
        "SizeOfSystemFiles": u64(snap.size_of_system_files),
        "Notes": "",
    }
    return HvObject(
        type_names=SNAPSHOT_TYPES,
        props=props,
        to_string=f"VMSnapshot (Name = '{snap.name}', VMName = '{snap.vm_name}') "
        f"[Id = '{snap.id}']",
        vm_id=snap.vm_id,
        checkpoint_id=snap.id,
    )


def disk_object(drive: HardDiskDrive) -> HvObject:
    """`Get-VMHardDiskDrive`: one HardDiskDrive."""
    props: dict[str, Any] = {
        "VMName": drive.vm_name,
        "VMId": uuid.UUID(drive.vm_id),
        "Name": drive.name,
        "Path": drive.path,
        # A pass-through disk has a physical disk number and no file.
        "DiskNumber": drive.disk_number,
        "ControllerType": ps_enum(drive.controller_type),
        "ControllerNumber": drive.controller_number,
        "ControllerLocation": drive.controller_location,
        "SupportPersistentReservations": drive.support_persistent_reservations,
        "ComputerName": drive.computer_name,
        "IsDeleted": False,
    }
    location = f"{drive.controller_number}\\{drive.controller_location}"
    return HvObject(
        type_names=DISK_TYPES,
        props=props,
        to_string=f"HardDiskDrive (Name = '{drive.name}', VMName = '{drive.vm_name}') "
        f"[Id = 'Microsoft:{drive.vm_id.upper()}\\{location}\\D']",
        vm_id=drive.vm_id,
    )


def fibre_channel_object(hba: FibreChannelHba) -> HvObject:
    """`Get-VMFibreChannelHba`: one VMFibreChannelHba. Its world wide names
    (the parameters of Set-VMFibreChannelHba,
    https://learn.microsoft.com/powershell/module/hyper-v/set-vmfibrechannelhba)
    are not in the model: fixed, derived from the VMId so that each VM's
    differ."""
    wwn = hba.vm_id.replace("-", "").upper()
    props: dict[str, Any] = {
        "VMName": hba.vm_name,
        "VMId": uuid.UUID(hba.vm_id),
        "Name": hba.name,
        "SanName": hba.san_name,
        "WorldWideNodeNameSetA": f"C003FF{wwn[:10]}",
        "WorldWidePortNameSetA": f"C003FF{wwn[10:20]}",
        "WorldWideNodeNameSetB": f"C003FF{wwn[:10]}",
        "WorldWidePortNameSetB": f"C003FF{wwn[20:30]}",
        "ComputerName": hba.computer_name,
        "IsDeleted": False,
    }
    return HvObject(
        type_names=FIBRE_CHANNEL_TYPES,
        props=props,
        to_string=f"VMFibreChannelHba (Name = '{hba.name}', VMName = '{hba.vm_name}')",
        vm_id=hba.vm_id,
    )


def replication_object(replication: VMReplication) -> HvObject:
    """`Get-VMReplication`: one VMReplication."""
    props: dict[str, Any] = {
        "VMName": replication.vm_name,
        "VMId": uuid.UUID(replication.vm_id),
        "State": ps_enum(replication.state),
        "Health": ps_enum(replication.health),
        "Mode": ps_enum(replication.mode),
        "FrequencySec": replication.frequency_seconds,
        "PrimaryServer": replication.primary_server,
        "ReplicaServer": replication.replica_server,
        "ComputerName": replication.computer_name,
    }
    return HvObject(
        type_names=REPLICATION_TYPES,
        props=props,
        to_string=f"VMReplication (VMName = '{replication.vm_name}')",
        vm_id=replication.vm_id,
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


def kvp_object(kvp: KvpComponent) -> HvObject:
    """`Get-CimInstance ... Msvm_KvpExchangeComponent`: the guest's intrinsic
    items; empty when the guest does not exchange them (off, no integration
    services)."""
    items = [_kvp_item(name, data) for name, data in kvp.items]
    vm_id = kvp.vm_id.upper()
    props: dict[str, Any] = {
        "Caption": "Key-Value Pair Exchange",
        "ElementName": "Key-Value Pair Exchange",
        "Name": vm_id,
        "SystemName": vm_id,
        "SystemCreationClassName": "Msvm_ComputerSystem",
        "CreationClassName": "Msvm_KvpExchangeComponent",
        "DeviceID": f"Microsoft:{vm_id}\\KvpExchange",
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
        f'DeviceID = "Microsoft:{vm_id}\\KvpExchange", ...)',
        vm_id=kvp.vm_id,
    )


def volume_object(volume: HostVolume) -> HvObject:
    """`Get-Volume` (an MSFT_Volume CIM instance of the Storage module).

    A Cluster Shared Volume has no drive letter: it is mounted under
    `C:\\ClusterStorage\\` on every node, its file system reads `CSVFS`, and
    its mount path is among its `AccessPaths` beside the volume GUID path
    (https://learn.microsoft.com/windows-server/failover-clustering/failover-cluster-csvs;
    MSFT_Volume's DriveLetter, AccessPaths, FileSystem,
    https://learn.microsoft.com/windows-hardware/drivers/storage/msft-volume).
    It is one volume, so every node reports the same GUID and free space."""
    path = volume.path
    letter = None if volume.shared else (path[0].upper() if path[1:2] == ":" else None)
    # A CSV is one volume seen from every node: its GUID does not depend on the node.
    owner = "cluster" if volume.shared else volume.computer_name
    guid = uuid.uuid5(uuid.NAMESPACE_URL, f"{owner}/{path}")
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
        to_string=f'MSFT_Volume (ObjectId = "{{1}}\\\\{volume.computer_name}\\root/Microsoft/'
        f'Windows/Storage/Providers_v2\\WSP_Volume.ObjectId=...")',
    )
