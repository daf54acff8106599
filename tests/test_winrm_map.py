"""WinRM output mapping, pipelines and error translation: no server needed.

The objects are built by hand the way pypsrp deserializes real Hyper-V
output: `GenericComplexObject`s with adapted properties (a live object) or
extended properties (Select-Object's copy), enums as enum objects, as their
name (PowerShell 5.1 depth 1) or as integers, Guids as `uuid.UUID`, and
DateTime / TimeSpan as text.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from pypsrp.complex_objects import ErrorRecord, GenericComplexObject
from pypsrp.exceptions import AuthenticationError, WinRMTransportError, WSManFaultError

from bot.domain import is_canonical_guid
from bot.hyperv.errors import (
    CheckpointLimitReached,
    CheckpointNotFound,
    CheckpointsDisabled,
    CommandNotVisible,
    HostAuthError,
    HostTimeout,
    HostUnreachable,
    InsufficientSpace,
    InvalidVMState,
    PowerShellError,
    ProductionCheckpointFailed,
    VMNotFound,
)
from bot.hyperv.types import CheckpointType, SnapshotType, VMState
from bot.hyperv.winrm import commands as cmds
from bot.hyperv.winrm import mapping as m
from bot.hyperv.winrm.errors import error_from_records, transport_error
from bot.hyperv.winrm.pool import Cmd, render
from tests.helpers import refused_port

VM_ID = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
CP_ID = "0b1c5f4e-6a1d-4b8e-9f5a-2c3d4e5f6a7b"
HV = "Microsoft.HyperV.PowerShell"


def obj(
    types: list[str],
    adapted: dict[str, Any] | None = None,
    extended: dict[str, Any] | None = None,
    to_string: str | None = None,
) -> GenericComplexObject:
    out = GenericComplexObject()
    out.types = types
    out.adapted_properties = adapted or {}
    out.extended_properties = extended or {}
    out.to_string = to_string
    return out


def enum(type_name: str, name: str, value: int) -> GenericComplexObject:
    """An enum as pypsrp deserializes `<Obj><TN>..</TN><ToString>..</ToString><I32>..`."""
    out = obj([type_name, "System.Enum", "System.ValueType", "System.Object"], to_string=name)
    out.property_sets = [value]
    return out


def vm_props(**overrides: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "Name": "WEB01",
        "VMId": uuid.UUID(VM_ID),
        "State": enum(f"{HV}.VMState", "Running", 2),
        "CheckpointType": enum(f"{HV}.CheckpointType", "Production", 3),
        "AutomaticCheckpointsEnabled": False,
        "OperationalStatus": [enum(f"{HV}.VMOperationalStatus", "Ok", 2)],
        "ReplicationState": enum(f"{HV}.VMReplicationState", "Disabled", 0),
        "ParentSnapshotId": None,
        "Uptime": "PT1H2M3.5S",
        "Path": "D:\\Hyper-V\\WEB01",
    }
    props.update(overrides)
    return props


# -- VMs -----------------------------------------------------------------------


def test_vm_from_live_object_with_enum_objects() -> None:
    vm = m.vm_info(obj([f"{HV}.VirtualMachine"], adapted=vm_props()), "HV01")
    assert vm.vm_id == VM_ID
    assert vm.name == "WEB01"
    assert vm.host == "HV01"
    assert vm.state is VMState.Running
    assert vm.checkpoint_type is CheckpointType.Production
    assert vm.merging is False
    assert vm.replication_state == "Disabled"
    assert vm.parent_checkpoint_id is None
    assert vm.uptime_seconds == 3723


def test_vm_from_select_object_depth1_strings() -> None:
    """PowerShell 5.1 at depth 1: enums as names, lists of names, Guid as text."""
    props = vm_props(
        VMId=VM_ID.upper(),
        State="Off",
        CheckpointType="ProductionOnly",
        OperationalStatus=["Ok", "MergingDisks"],
        ReplicationState="WaitingForStartResynchronize",
        ParentSnapshotId="{" + CP_ID.upper() + "}",
        Uptime="1.02:03:04.5000000",
        AutomaticCheckpointsEnabled="True",
    )
    selected = obj(["Selected.Microsoft.HyperV.PowerShell.VirtualMachine"], extended=props)
    vm = m.vm_info(selected, "HV01")
    assert vm.vm_id == VM_ID
    assert vm.state is VMState.Off
    assert vm.checkpoint_type is CheckpointType.ProductionOnly
    assert vm.merging is True
    assert vm.replication_state == "WaitingForStartResynchronize"
    assert vm.parent_checkpoint_id == CP_ID
    assert vm.uptime_seconds == 93784
    assert vm.automatic_checkpoints is True


def test_vm_enums_as_integers_and_merging_status_integer() -> None:
    props = vm_props(State=9, CheckpointType=5, OperationalStatus=[2, 32772], ReplicationState=4)
    vm = m.vm_info(obj([], adapted=props), "HV01")
    assert vm.state is VMState.Paused
    assert vm.checkpoint_type is CheckpointType.Standard
    assert vm.merging is True
    assert vm.replication_state == "Replicating"


def test_vm_unknown_state_is_other_and_2012r2_has_standard_checkpoints() -> None:
    props = vm_props(State="RunningCritical")
    del props["CheckpointType"]
    vm = m.vm_info(obj([], adapted=props), "HV01")
    assert vm.state is VMState.Other
    assert vm.checkpoint_type is CheckpointType.Standard


def test_vm_property_names_are_case_insensitive_and_notes_win() -> None:
    live = obj([], adapted=vm_props(State="Off"), extended={"state": "Running"})
    assert m.vm_info(live, "HV01").state is VMState.Running


def test_vm_without_id_is_a_mapping_error() -> None:
    props = vm_props()
    del props["VMId"]
    with pytest.raises(m.MappingError, match="VMId"):
        m.vm_info(obj([], adapted=props), "HV01")


def test_all_zero_parent_guid_means_no_parent() -> None:
    vm = m.vm_info(obj([], adapted=vm_props(ParentSnapshotId=uuid.UUID(int=0))), "HV01")
    assert vm.parent_checkpoint_id is None


# -- checkpoints -----------------------------------------------------------------


def snapshot_props(**overrides: Any) -> dict[str, Any]:
    """A production checkpoint of a running VM as Get-VMSnapshot returns it:
    SnapshotType Standard (the module's 0), State Off (no memory held)."""
    props: dict[str, Any] = {
        "Id": uuid.UUID(CP_ID),
        "VMId": uuid.UUID(VM_ID),
        "VMName": "WEB01",
        "Name": "before KB5044284",
        "ParentSnapshotId": None,
        "CreationTime": "2026-11-24T09:00:00.1234567+01:00",
        "SnapshotType": enum(f"{HV}.SnapshotType", "Standard", 0),
        "State": enum(f"{HV}.VMState", "Off", 3),
        "Path": "D:\\Hyper-V\\WEB01\\Snapshots",
        "SizeOfSystemFiles": 4194304,
    }
    props.update(overrides)
    return props


def test_checkpoint_from_live_object() -> None:
    cp = m.checkpoint(obj([f"{HV}.VMSnapshot"], adapted=snapshot_props()), "HV01")
    assert cp.id == CP_ID
    assert cp.vm_id == VM_ID
    assert cp.vm_name == "WEB01"
    assert cp.name == "before KB5044284"
    assert cp.parent_id is None
    assert cp.created_at == datetime(
        2026, 11, 24, 9, 0, 0, 123456, tzinfo=timezone(timedelta(hours=1))
    )
    assert cp.snapshot_type is SnapshotType.Standard
    assert cp.captured_state is VMState.Off
    assert cp.size_bytes == 4194304
    assert cp.path.endswith("Snapshots")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-11-24T08:00:00Z", datetime(2026, 11, 24, 8, tzinfo=UTC)),
        ("2026-11-24T08:00:00", datetime(2026, 11, 24, 8, tzinfo=UTC)),
        ("11/24/2026 8:00:00 AM", datetime(2026, 11, 24, 8, tzinfo=UTC)),
        (datetime(2026, 11, 24, 8, tzinfo=UTC), datetime(2026, 11, 24, 8, tzinfo=UTC)),
    ],
)
def test_checkpoint_creation_time_forms(raw: object, expected: datetime) -> None:
    cp = m.checkpoint(obj([], extended=snapshot_props(CreationTime=raw)), "HV01")
    assert cp.created_at == expected


# Get-VMSnapshot -SnapshotType names Standard, Recovery, Planned, Missing,
# Replica, AppConsistentReplica, SyncedReplica; the module numbers them
# 0, 1, 2, 5, 6, 7, 8 (3 and 4 are VM types).
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Standard", SnapshotType.Standard),
        (0, SnapshotType.Standard),
        (enum(f"{HV}.SnapshotType", "Standard", 0), SnapshotType.Standard),
        (2, SnapshotType.Planned),
        ("Planned", SnapshotType.Planned),
        (5, SnapshotType.Missing),
        (6, SnapshotType.Replica),
        (7, SnapshotType.AppConsistentReplica),
        ("SyncedReplica", SnapshotType.SyncedReplica),
    ],
)
def test_snapshot_type_forms(raw: object, expected: SnapshotType) -> None:
    cp = m.checkpoint(obj([], extended=snapshot_props(SnapshotType=raw)), "HV01")
    assert cp.snapshot_type is expected


@pytest.mark.parametrize("raw", ["Bogus", 3, 4, 99])
def test_a_snapshot_type_no_member_matches_is_unknown_never_a_guess(raw: object) -> None:
    cp = m.checkpoint(obj([], extended=snapshot_props(SnapshotType=raw)), "HV01")
    assert cp.snapshot_type is SnapshotType.Unknown


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Running", VMState.Running),
        (enum(f"{HV}.VMState", "Saved", 6), VMState.Saved),
        (3, VMState.Off),
        ("RunningCritical", VMState.Other),
        (None, None),
    ],
)
def test_the_captured_state_forms(raw: object, expected: VMState | None) -> None:
    cp = m.checkpoint(obj([], extended=snapshot_props(State=raw)), "HV01")
    assert cp.captured_state is expected


def test_a_bad_date_is_a_mapping_error() -> None:
    with pytest.raises(m.MappingError, match="CreationTime"):
        m.checkpoint(obj([], extended=snapshot_props(CreationTime="yesterday")), "HV01")


# -- disks, volumes, KVP -------------------------------------------------------------


def test_disks_shared_and_passthrough() -> None:
    vhdx = m.disk(
        obj(
            [f"{HV}.HardDiskDrive"],
            adapted={
                "Path": "D:\\VMs\\SQL01.vhdx",
                "ControllerType": "SCSI",
                "DiskNumber": None,
                "SupportPersistentReservations": True,
            },
        )
    )
    assert (vhdx.shared, vhdx.passthrough, vhdx.controller) == (True, False, "SCSI")
    physical = m.disk(
        obj(
            [], adapted={"Path": "Disk 2 1.00 TB Bus 0 Lun 1", "DiskNumber": 2, "ControllerType": 0}
        )
    )
    assert physical.passthrough is True
    assert physical.shared is False


def test_volumes_by_letter_mount_path_and_empty() -> None:
    lettered = m.volume(
        obj(
            [],
            extended={
                "DriveLetter": "d",
                "Path": "\\\\?\\Volume{x}\\",
                "Size": 2000,
                "SizeRemaining": 500,
            },
        ),
        "HV01",
    )
    assert lettered is not None
    assert (lettered.path, lettered.capacity_bytes, lettered.free_bytes) == ("D:\\", 2000, 500)
    csv = m.volume(
        obj(
            [],
            extended={
                "DriveLetter": None,
                "Path": "\\\\?\\Volume{y}\\",
                "Size": 10,
                "SizeRemaining": 1,
                "AccessPaths": ["C:\\ClusterStorage\\Volume1", "\\\\?\\Volume{y}\\"],
            },
        ),
        "HV01",
    )
    assert csv is not None and csv.path == "C:\\ClusterStorage\\Volume1\\"
    assert m.volume(obj([], extended={"DriveLetter": "E", "Size": 0}), "HV01") is None
    assert m.volume_for("C:\\ClusterStorage\\Volume1\\VMs\\a.vhdx", [lettered, csv]) == csv
    assert m.volume_for("D:\\Hyper-V\\x.vhdx", [lettered, csv]) == lettered
    assert m.volume_for("E:\\x.vhdx", [lettered, csv]) is None


def kvp_xml(name: str, data: str) -> str:
    return (
        '<INSTANCE CLASSNAME="Msvm_KvpExchangeDataItem">'
        f'<PROPERTY NAME="Data" TYPE="string"><VALUE>{data}</VALUE></PROPERTY>'
        f'<PROPERTY NAME="Name" TYPE="string"><VALUE>{name}</VALUE></PROPERTY>'
        '<PROPERTY NAME="Source" TYPE="uint16"><VALUE>2</VALUE></PROPERTY></INSTANCE>'
    )


def test_kvp_items_from_cim_instance_and_strings() -> None:
    component = obj(
        [
            "Microsoft.Management.Infrastructure.CimInstance#root/virtualization/v2/"
            "Msvm_KvpExchangeComponent"
        ],
        extended={
            "SystemName": VM_ID.upper(),
            "GuestIntrinsicExchangeItems": [
                kvp_xml("FullyQualifiedDomainName", "dc01.corp.example"),
                kvp_xml("OSName", "Windows Server 2022 Datacenter"),
                kvp_xml("ProductType", "2"),
                "<not xml",
                '<!DOCTYPE x [<!ENTITY a "b">]><INSTANCE/>',
            ],
        },
    )
    items = m.kvp_items([component])
    assert items["FullyQualifiedDomainName"] == "dc01.corp.example"
    assert m.kvp_product_type(items) == 2
    assert m.kvp_items([kvp_xml("OSName", "Ubuntu &amp; friends")]) == {
        "OSName": "Ubuntu & friends"
    }
    off = obj([], extended={"GuestIntrinsicExchangeItems": None})
    assert m.kvp_items([off]) == {}
    assert m.kvp_product_type({}) is None


# -- pipelines ---------------------------------------------------------------------


def test_pipelines_address_by_id_and_send_no_script() -> None:
    assert render(cmds.create_checkpoint(VM_ID, "pre-patch")) == (
        f"Get-VM -Id '{VM_ID}' | Checkpoint-VM -SnapshotName 'pre-patch' -Passthru | "
        f"Select-Object -Property {list(cmds.CHECKPOINT_PROPERTIES)!r}"
    )
    own = (
        f"Get-VM -Id '{VM_ID}' | Get-VMSnapshot | "
        f"Where-Object -Property 'Id' -Value ([guid]'{CP_ID}') -EQ"
    )
    found = f"{own} | Select-Object -Property ['Id', 'VMId', 'VMName']; "
    assert render(cmds.restore_checkpoint(CP_ID, VM_ID)) == (
        f"{found}{own} | Restore-VMSnapshot -Confirm:$false -Passthru | "
        "Select-Object -Property ['VMId']; "
        f"Get-VM -Id '{VM_ID}' | Select-Object -Property {list(cmds.VM_PROPERTIES)!r}"
    )
    assert render(cmds.remove_checkpoint(CP_ID, VM_ID, include_children=True)) == (
        f"{found}{own} | Remove-VMSnapshot -IncludeAllChildSnapshots -Confirm:$false "
        "-Passthru | Select-Object -Property ['VMId']"
    )
    # The Id travels as a Guid, the type of a VMSnapshot's Id, not as text.
    where = cmds.restore_checkpoint(CP_ID, VM_ID)[2]
    assert where.name == "Where-Object" and dict(where.params)["Value"] == uuid.UUID(CP_ID)
    assert render(cmds.restore_checkpoint_by_id(CP_ID, VM_ID)) == (
        f"Get-VMSnapshot -Id '{CP_ID}' | Restore-VMSnapshot -Confirm:$false; "
        f"Get-VM -Id '{VM_ID}' | Select-Object -Property {list(cmds.VM_PROPERTIES)!r}"
    )
    assert render(cmds.remove_checkpoint_by_id(CP_ID, include_children=True)) == (
        f"Get-VMSnapshot -Id '{CP_ID}' | "
        "Remove-VMSnapshot -IncludeAllChildSnapshots -Confirm:$false"
    )
    settings = cmds.set_checkpoint_settings(
        VM_ID, checkpoint_type=CheckpointType.ProductionOnly, automatic_checkpoints=False
    )
    assert settings[1] == Cmd(
        "Set-VM",
        (
            ("CheckpointType", "ProductionOnly"),
            ("AutomaticCheckpointsEnabled", False),
            ("Passthru", None),
        ),
    )
    kvp = cmds.kvp(VM_ID)
    assert dict(kvp[0].params)["Filter"] == f"SystemName='{VM_ID.upper()}'"
    with pytest.raises(ValueError, match="validated"):
        cmds.kvp("x' OR 1=1 OR SystemName='y")


@pytest.mark.parametrize(
    "value", ["*", "WEB01; Remove-VM *", "$(Get-VM)", VM_ID.upper(), "{" + VM_ID + "}", 42, None]
)
def test_only_canonical_guids_pass(value: object) -> None:
    assert is_canonical_guid(value) is False


def test_checkpoint_names() -> None:
    assert cmds.checkpoint_name_problem("KB5044284 'quoted' $(x)") is None
    assert cmds.checkpoint_name_problem("two\nlines") is not None
    assert cmds.checkpoint_name_problem("x" * 201) is not None


# -- errors ---------------------------------------------------------------------------


def record(message: str, category: int, error_id: str, info: str = "") -> ErrorRecord:
    exception = obj(["System.Exception"], adapted={"Message": message})
    rec = ErrorRecord()  # type: ignore[no-untyped-call]
    rec.exception = exception
    rec.category = category
    rec.fq_error = error_id
    rec.message = info
    return rec


CMDLETS = "Microsoft.HyperV.PowerShell.Commands"


@pytest.mark.parametrize(
    ("message", "category", "error_id", "cls"),
    [
        (
            'Hyper-V was unable to find a virtual machine with ID "x".',
            5,
            f"InvalidParameter,{CMDLETS}.GetVM",
            VMNotFound,
        ),
        (
            "Unable to find a snapshot matching the given criteria.",
            13,
            f"ObjectNotFound,{CMDLETS}.GetVMSnapshot",
            CheckpointNotFound,
        ),
        (
            "Checkpoint operation failed.\nCheckpoints have been disabled for 'X'.",
            7,
            f"OperationFailed,{CMDLETS}.CheckpointVM",
            CheckpointsDisabled,
        ),
        (
            "Checkpoint operation failed.\nProduction checkpoints cannot be created for 'X'",
            7,
            f"OperationFailed,{CMDLETS}.CheckpointVM",
            ProductionCheckpointFailed,
        ),
        (
            "The maximum number of checkpoints has been reached.",
            7,
            f"OperationFailed,{CMDLETS}.CheckpointVM",
            CheckpointLimitReached,
        ),
        (
            "There is not enough space on the disk. (0x80070070)",
            7,
            f"OperationFailed,{CMDLETS}.CheckpointVM",
            InsufficientSpace,
        ),
        (
            "The operation cannot be performed while the virtual machine is in its current state.",
            7,
            f"InvalidState,{CMDLETS}.RestoreVMSnapshot",
            InvalidVMState,
        ),
        (
            "A parameter cannot be found that matches parameter name 'CheckpointType'.",
            5,
            "NamedParameterNotFound,Microsoft.HyperV.PowerShell.Commands.SetVM",
            PowerShellError,
        ),
    ],
)
def test_error_records_map_to_typed_errors(
    message: str, category: int, error_id: str, cls: type[Exception]
) -> None:
    info = "ObjectNotFound: (:) [Get-VMSnapshot], VirtualizationException"
    error = error_from_records([record(message, category, error_id, info)], host="HV01")
    assert type(error) is cls
    assert error.message == message
    assert error.error_id == error_id
    assert error.category == info
    assert error.host == "HV01"


def test_not_found_without_command_uses_callers_class_and_specific_record_wins() -> None:
    plain = record("gone", 13, "ObjectNotFound")
    assert type(error_from_records([plain], host="H", missing=CheckpointNotFound)) is (
        CheckpointNotFound
    )
    generic = record("something", 0, "Oops")
    disabled = record("Checkpoints have been disabled", 7, "OperationFailed")
    assert type(error_from_records([generic, disabled], host="H")) is CheckpointsDisabled
    bare = error_from_records([generic], host="H")
    assert type(bare) is PowerShellError and bare.category == "NotSpecified"


def test_a_command_the_endpoint_lacks_is_not_a_missing_vm() -> None:
    """CommandNotFoundException's category is ObjectNotFound (13), but
    nothing was looked up: a JEA role without the command."""
    text = (
        "The term 'Where-Object' is not recognized as the name of a cmdlet, function, script "
        "file, or operable program."
    )
    named = record(text, 13, "CommandNotFoundException", "ObjectNotFound: (Where-Object:String)")
    named.target_name = "Where-Object"
    for missing in (VMNotFound, CheckpointNotFound):
        error = error_from_records([named], host="HV01", missing=missing)
        assert type(error) is CommandNotVisible and error.command == "Where-Object"
        assert error.message == text and error.error_id == "CommandNotFoundException"
    unnamed = error_from_records([record(text, 13, "CommandNotFoundException")], host="HV01")
    assert isinstance(unnamed, CommandNotVisible) and unnamed.command == "Where-Object"


def test_transport_errors() -> None:
    what = "Get-VM on HV01"
    assert (
        type(
            transport_error(
                AuthenticationError("Failed to authenticate the user hv with basic"),
                host="HV01",
                what=what,
            )
        )
        is HostAuthError
    )
    assert (
        type(
            transport_error(requests.exceptions.ConnectionError("refused"), host="HV01", what=what)
        )
        is HostUnreachable
    )
    assert (
        type(transport_error(requests.exceptions.ReadTimeout("slow"), host="HV01", what=what))
        is HostTimeout
    )
    assert (
        type(transport_error(requests.exceptions.ConnectTimeout("syn"), host="HV01", what=what))
        is HostUnreachable
    )
    fault = WSManFaultError(
        2150858770, "HV01", "The WS-Management service cannot process", "", "", ""
    )
    assert type(transport_error(fault, host="HV01", what=what)) is HostUnreachable
    denied = WSManFaultError(5, "HV01", "Access is denied.", "", "", "")
    assert type(transport_error(denied, host="HV01", what=what)) is HostAuthError
    http = transport_error(WinRMTransportError("http", 503, "busy"), host="HV01", what=what)
    assert type(http) is HostUnreachable and http.error_id == "HTTP503"


def test_a_connection_that_fails_says_where_and_why_in_an_operators_words() -> None:
    """What requests raises for a real refused connection and a name that
    does not resolve (RFC 2606's .invalid), not urllib3's wrapped repr
    ("HTTPConnectionPool(host=…): Max retries exceeded … NewConnectionError"),
    which the thread and `checkpoint list` showed until 2026-12-05."""
    port = refused_port()
    with pytest.raises(requests.exceptions.ConnectionError) as refused:
        requests.post(f"http://127.0.0.1:{port}/wsman", timeout=5)
    said = transport_error(refused.value, host="HV01", what="Get-VM on HV01")
    assert isinstance(said, HostUnreachable)
    assert str(said.message).startswith(
        f"Get-VM on HV01: cannot connect to 127.0.0.1:{port}: connection refused: no WinRM "
        "listener on that port, or a firewall rejects it"
    )
    assert "Max retries" not in said.message and "NewConnectionError" not in said.message
    with pytest.raises(requests.exceptions.ConnectionError) as unknown:
        requests.post("http://hv99.invalid:5985/wsman", timeout=5)
    named = transport_error(unknown.value, host="HV99", what="Get-VM on HV99")
    assert named.message == (
        "Get-VM on HV99: cannot connect to hv99.invalid:5985: the name does not resolve (DNS): "
        "check address: in the inventory"
    )


@given(st.recursive(st.just(None), lambda inner: st.tuples(inner, inner), max_leaves=8))
def test_a_connection_error_of_any_shape_is_put_in_words(shape: object) -> None:
    def build(node: object) -> BaseException:
        if node is None:
            return OSError("plain")
        left, right = node  # type: ignore[misc]
        outer = requests.exceptions.ConnectionError(build(left))
        outer.__context__ = build(right)
        return outer

    made = build(shape)
    error = (
        made
        if isinstance(made, requests.exceptions.ConnectionError)
        else (requests.exceptions.ConnectionError(made))
    )
    said = transport_error(error, host="HV01", what="Get-VM on HV01")
    assert isinstance(said, HostUnreachable) and said.message.startswith("Get-VM on HV01: cannot")
