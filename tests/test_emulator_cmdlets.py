"""The emulated JEA command table, driven by the real pypsrp client over Basic auth."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pypsrp.powershell import PowerShell, RunspacePool

from bot.devtools.emulator import EmulatedFleet
from tests.emulator_support import pool, run, start_fleet

HV = "Microsoft.HyperV.PowerShell"
APP01 = "f3d8a2b5-7e16-4c9d-8a30-e5b9c4d1f672"
WEB01 = "8b3f6e1a-d9c2-4b07-a6e5-1f4d7c9b2e83"
FS01 = "a8f05c39-6d71-4e2a-b94c-3f1e5d7b0a96"
DC01 = "6f1c2a7e-3b8d-4e59-9a41-0c2d7b5e8f13"
FC_NODE1 = "c6b1a7d8-3e94-4a52-9f0b-d4e2c8a1b735"
REPL = "79e2c5a1-4f8b-4a36-8d17-b3f0e6a9c425"


@pytest.fixture(scope="module")
def fleet() -> Iterator[EmulatedFleet]:
    started = start_fleet(["HV01", "HV02", "HV03"])
    yield started
    started.stop()


@pytest.fixture(scope="module")
def hv01(fleet: EmulatedFleet) -> Iterator[RunspacePool]:
    with pool(fleet.port_of("HV01")) as opened:
        yield opened


def error_of(ps: PowerShell) -> Any:
    assert len(ps.streams.error) == 1, [str(e) for e in ps.streams.error]
    return ps.streams.error[0]


def test_get_vm_by_id_has_the_hyperv_shape(hv01: RunspacePool) -> None:
    ps = run(hv01, lambda p: p.add_cmdlet("Get-VM").add_parameter("Id", APP01))
    assert not ps.had_errors and not ps.streams.error
    [vm] = ps.output
    assert vm.types[0] == f"{HV}.VirtualMachine"
    assert f"{HV}.VirtualMachineBase" in vm.types
    props = vm.adapted_properties
    assert props["Name"] == "APP01" and props["VMId"] == uuid.UUID(APP01)
    # Depth 1: enum-valued properties arrive as their string.
    assert props["State"] == "Running"
    assert props["CheckpointType"] == "Production"
    assert props["ReplicationState"] == "Disabled"
    assert props["ReplicationMode"] == "None"
    assert props["AutomaticCheckpointsEnabled"] is False
    assert props["ComputerName"] == "HV01"
    assert props["IsClustered"] is False
    assert props["Path"] == "D:\\Hyper-V\\APP01"
    assert props["ParentSnapshotId"] is None
    assert str(vm) == f"VirtualMachine (Name = 'APP01') [Id = '{APP01}']"


def test_get_vm_name_wildcards_and_missing_name(hv01: RunspacePool) -> None:
    ps = run(hv01, lambda p: p.add_cmdlet("Get-VM").add_parameter("Name", "fs*"))
    assert [o.adapted_properties["Name"] for o in ps.output] == ["FS01"]
    ps = run(hv01, lambda p: p.add_cmdlet("Get-VM").add_parameter("Name", "NOPE"))
    error = error_of(ps)
    assert not ps.had_errors and ps.output == []
    assert str(error) == 'Hyper-V was unable to find a virtual machine with name "NOPE".'
    assert error.fq_error == "InvalidParameter,Microsoft.HyperV.PowerShell.Commands.GetVM"
    assert error.reason == "VirtualizationException"


def test_get_vm_unknown_id_is_the_hosts_text(hv01: RunspacePool) -> None:
    missing = str(uuid.uuid4())
    ps = run(hv01, lambda p: p.add_cmdlet("Get-VM").add_parameter("Id", missing))
    error = error_of(ps)
    assert str(error) == f'Hyper-V was unable to find a virtual machine with ID "{missing}".'
    assert error.message.startswith("InvalidArgument")


def test_checkpoint_then_snapshot_queries_and_restore(hv01: RunspacePool) -> None:
    ps = run(
        hv01,
        lambda p: (
            p.add_cmdlet("Get-VM")
            .add_parameter("Id", WEB01)
            .add_cmdlet("Checkpoint-VM")
            .add_parameter("SnapshotName", "pre-patch")
            .add_parameter("Passthru")
        ),
    )
    assert not ps.streams.error
    [snap] = ps.output
    assert snap.types[0] == f"{HV}.VMSnapshot"
    props = snap.adapted_properties
    assert props["Name"] == "pre-patch" and props["VMName"] == "WEB01"
    # A production checkpoint is a Standard snapshot that holds no memory.
    assert props["SnapshotType"] == "Standard"
    assert props["State"] == "Off"
    assert props["IsAutomaticCheckpoint"] is False
    assert props["ComputerName"] == "HV01" and props["Path"] == "D:\\Hyper-V\\WEB01\\Snapshots"
    assert props["VMId"] == uuid.UUID(WEB01)
    assert isinstance(props["SizeOfSystemFiles"], int)
    assert props["ParentSnapshotId"] is None and isinstance(props["CreationTime"], str)
    snap_id = str(props["Id"])

    ps = run(hv01, lambda p: p.add_cmdlet("Get-VMSnapshot").add_parameter("VMName", "WEB01"))
    assert [str(o.adapted_properties["Id"]) for o in ps.output] == [snap_id]
    ps = run(
        hv01,
        lambda p: p.add_cmdlet("Get-VM").add_parameter("Id", WEB01).add_cmdlet("Get-VMSnapshot"),
    )
    assert [str(o.adapted_properties["Id"]) for o in ps.output] == [snap_id]
    ps = run(hv01, lambda p: p.add_cmdlet("Get-VM").add_parameter("Id", WEB01))
    assert str(ps.output[0].adapted_properties["ParentSnapshotId"]) == snap_id
    assert ps.output[0].adapted_properties["ParentSnapshotName"] == "pre-patch"

    ps = run(
        hv01,
        lambda p: (
            p.add_cmdlet("Get-VMSnapshot")
            .add_parameter("Id", snap_id)
            .add_cmdlet("Restore-VMSnapshot")
            .add_parameter("Confirm", False)
        ),
    )
    assert not ps.had_errors and not ps.streams.error
    ps = run(hv01, lambda p: p.add_cmdlet("Get-VM").add_parameter("Id", WEB01))
    assert ps.output[0].adapted_properties["State"] == "Off"  # production restore

    ps = run(hv01, lambda p: p.add_cmdlet("Start-VM").add_parameter("Name", "WEB01"))
    assert not ps.streams.error
    ps = run(
        hv01,
        lambda p: (
            p.add_cmdlet("Get-VMSnapshot")
            .add_parameter("Id", snap_id)
            .add_cmdlet("Remove-VMSnapshot")
            .add_parameter("IncludeAllChildSnapshots")
        ),
    )
    assert not ps.streams.error
    ps = run(hv01, lambda p: p.add_cmdlet("Get-VM").add_parameter("Id", WEB01))
    vm = ps.output[0].adapted_properties
    assert vm["State"] == "Running" and vm["ParentSnapshotId"] is None
    assert vm["Status"] == "Merging disks"


def test_where_object_compares_as_its_equal_set_documents(hv01: RunspacePool) -> None:
    """Where-Object -Property -Value [-EQ] (EqualSet, the default set): -eq
    converts the value to the property's type, and strings compare without
    regard to case (about_Comparison_Operators)."""
    made = run(
        hv01,
        lambda p: (
            p.add_cmdlet("Get-VM")
            .add_parameter("Id", FS01)
            .add_cmdlet("Checkpoint-VM")
            .add_parameter("SnapshotName", "Before Patch")
            .add_parameter("Passthru")
        ),
    )
    snap_id = made.output[0].adapted_properties["Id"]

    def where(*params: tuple[str, Any]) -> list[Any]:
        def build(p: PowerShell) -> PowerShell:
            p.add_cmdlet("Get-VMSnapshot").add_parameter("VMName", "FS01")
            p.add_cmdlet("Where-Object")
            for name, value in params:
                p.add_parameter(name, value)
            return p

        ps = run(hv01, build)
        assert not ps.streams.error, [str(e) for e in ps.streams.error]
        return [o.adapted_properties["Id"] for o in ps.output]

    assert where(("Property", "Id"), ("Value", snap_id), ("EQ", None)) == [snap_id]  # a Guid
    assert where(("Property", "Id"), ("Value", str(snap_id).upper()), ("EQ", None)) == [snap_id]
    assert where(("Property", "Name"), ("Value", "before patch")) == [snap_id]  # -EQ by default
    assert where(("Property", "Id"), ("Value", str(uuid.uuid4())), ("EQ", None)) == []
    assert where(("Property", "Id"), ("Value", "not a guid"), ("EQ", None)) == []
    assert where(("Property", "NoSuchProperty"), ("Value", "x"), ("EQ", None)) == []

    # Only the comparison form the role lists: no other operator, no script.
    ps = run(
        hv01,
        lambda p: (
            p.add_cmdlet("Get-VMSnapshot")
            .add_parameter("VMName", "FS01")
            .add_cmdlet("Where-Object")
            .add_parameter("Property", "Name")
            .add_parameter("Value", "Before*")
            .add_parameter("Like")
        ),
    )
    assert ps.had_errors and ps.output == []
    assert error_of(ps).fq_error.startswith("NamedParameterNotFound")

    # Remove-VMSnapshot -Passthru passes the checkpoint on; both types its
    # page names carry the VMId.
    ps = run(
        hv01,
        lambda p: (
            p.add_cmdlet("Get-VMSnapshot")
            .add_parameter("Id", str(snap_id))
            .add_cmdlet("Remove-VMSnapshot")
            .add_parameter("Passthru")
        ),
    )
    assert not ps.streams.error
    assert [o.adapted_properties["VMId"] for o in ps.output] == [uuid.UUID(FS01)]


def test_restore_without_confirm_false_fails_like_a_remote_host(hv01: RunspacePool) -> None:
    run(hv01, lambda p: p.add_cmdlet("Checkpoint-VM").add_parameter("Name", "APP01"))
    ps = run(
        hv01,
        lambda p: (
            p.add_cmdlet("Get-VMSnapshot")
            .add_parameter("VMName", "APP01")
            .add_cmdlet("Restore-VMSnapshot")
        ),
    )
    assert ps.had_errors
    error = error_of(ps)
    assert error.fq_error == "HostFunctionNotImplemented"
    assert "does not support user interaction" in str(error)


def test_snapshot_not_found(hv01: RunspacePool) -> None:
    ps = run(hv01, lambda p: p.add_cmdlet("Get-VMSnapshot").add_parameter("Id", str(uuid.uuid4())))
    error = error_of(ps)
    assert str(error) == "Unable to find a snapshot matching the given criteria."
    assert error.fq_error == "ObjectNotFound,Microsoft.HyperV.PowerShell.Commands.GetVMSnapshot"
    assert error.message.startswith("ObjectNotFound")


def test_disabled_checkpoints_is_a_non_terminating_error(fleet: EmulatedFleet) -> None:
    with pool(fleet.port_of("HV02")) as hv02:
        ps = run(hv02, lambda p: p.add_cmdlet("Checkpoint-VM").add_parameter("Name", "LEGACY01"))
    assert not ps.had_errors
    error = error_of(ps)
    assert "Checkpoints have been disabled for 'LEGACY01'" in str(error)
    assert error.fq_error == "OperationFailed,Microsoft.HyperV.PowerShell.Commands.CheckpointVM"


def test_error_action_stop_makes_it_terminating(fleet: EmulatedFleet) -> None:
    with pool(fleet.port_of("HV02")) as hv02:
        ps = run(
            hv02,
            lambda p: (
                p.add_cmdlet("Checkpoint-VM")
                .add_parameter("Name", "LEGACY01")
                .add_parameter("ErrorAction", "Stop")
            ),
        )
    assert ps.had_errors and "disabled" in str(error_of(ps))


def test_set_vm_and_enum_expansion(hv01: RunspacePool) -> None:
    ps = run(
        hv01,
        lambda p: (
            p.add_cmdlet("Get-VM")
            .add_parameter("Id", FS01)
            .add_cmdlet("Set-VM")
            .add_parameter("CheckpointType", "ProductionOnly")
            .add_parameter("AutomaticCheckpointsEnabled", True)
            .add_parameter("Passthru")
        ),
    )
    assert not ps.streams.error
    assert ps.output[0].adapted_properties["CheckpointType"] == "ProductionOnly"
    ps = run(
        hv01,
        lambda p: (
            p.add_cmdlet("Get-VM")
            .add_parameter("Id", FS01)
            .add_cmdlet("Select-Object")
            .add_parameter("ExpandProperty", "CheckpointType")
        ),
    )
    [kind] = ps.output
    # An enum emitted on its own keeps its type and integer.
    assert kind.types[0] == f"{HV}.CheckpointType" and "System.Enum" in kind.types
    assert str(kind) == "ProductionOnly"
    ps = run(
        hv01,
        lambda p: (
            p.add_cmdlet("Set-VM")
            .add_parameter("Name", "FS01")
            .add_parameter("MemoryStartupBytes", 1)
        ),
    )
    assert ps.had_errors
    assert (
        str(error_of(ps))
        == "A parameter cannot be found that matches parameter name 'MemoryStartupBytes'."
    )
    assert (
        error_of(ps).fq_error == "NamedParameterNotFound,Microsoft.HyperV.PowerShell.Commands.SetVM"
    )


def test_select_object_property_and_first_and_statements(hv01: RunspacePool) -> None:
    def build(p: PowerShell) -> None:
        p.add_cmdlet("Get-VM").add_cmdlet("Select-Object").add_parameter(
            "Property", ["Name", "State"]
        )
        p.add_parameter("First", 2)
        p.add_statement()
        p.add_cmdlet("Get-VM").add_parameter("Id", APP01).add_cmdlet("Select-Object")
        p.add_parameter("ExpandProperty", "Name")

    ps = run(hv01, build)
    first, _second, name = ps.output
    assert first.types[0] == f"Selected.{HV}.VirtualMachine"
    assert set(first.extended_properties) == {"Name", "State"}
    assert str(first).startswith("@{Name=")
    assert name == "APP01"


def test_disks_replication_kvp_and_volume(fleet: EmulatedFleet, hv01: RunspacePool) -> None:
    ps = run(
        hv01, lambda p: p.add_cmdlet("Get-VMHardDiskDrive").add_parameter("VMName", "FC-NODE1")
    )
    shared = [
        d.adapted_properties
        for d in ps.output
        if d.adapted_properties["SupportPersistentReservations"]
    ]
    assert len(ps.output) == 2 and len(shared) == 1 and shared[0]["ControllerType"] == "SCSI"
    with pool(fleet.port_of("HV03")) as hv03:
        ps = run(
            hv03, lambda p: p.add_cmdlet("Get-VMHardDiskDrive").add_parameter("VMName", "SAN-VM01")
        )
    assert any(d.adapted_properties["DiskNumber"] is not None for d in ps.output)

    ps = run(
        hv01, lambda p: p.add_cmdlet("Get-VMReplication").add_parameter("VMName", "REPL-APP01")
    )
    assert ps.output[0].types[0] == f"{HV}.VMReplication"
    assert ps.output[0].adapted_properties["State"] == "Replicating"

    ps = run(
        hv01,
        lambda p: (
            p.add_cmdlet("Get-CimInstance")
            .add_parameter("Namespace", "root\\virtualization\\v2")
            .add_parameter("ClassName", "Msvm_KvpExchangeComponent")
            .add_parameter("Filter", f"SystemName='{DC01.upper()}'")
        ),
    )
    [kvp] = ps.output
    items = kvp.adapted_properties["GuestIntrinsicExchangeItems"]
    assert any("<VALUE>ProductType</VALUE>" in i and "<VALUE>2</VALUE>" in i for i in items)
    assert any("FullyQualifiedDomainName" in i for i in items)

    ps = run(hv01, lambda p: p.add_cmdlet("Get-Volume").add_parameter("FilePath", "E:\\VMs\\SQL01"))
    [volume] = ps.output
    assert volume.adapted_properties["DriveLetter"] == "E"
    assert 0 < volume.adapted_properties["SizeRemaining"] <= volume.adapted_properties["Size"]


@pytest.mark.parametrize(
    ("command", "error_id"),
    [
        (name, "CommandNotFoundException")
        for name in ("ForEach-Object", "Invoke-Expression", "Remove-VM")
    ],
)
def test_commands_outside_the_role_are_not_found(
    hv01: RunspacePool, command: str, error_id: str
) -> None:
    ps = run(hv01, lambda p: p.add_cmdlet("Get-VM").add_cmdlet(command))
    assert ps.had_errors and ps.output == []
    error = error_of(ps)
    assert error.fq_error == error_id
    assert str(error).startswith(f"The term '{command}' is not recognized")


def test_scripts_are_refused_and_the_log_shows_what_arrived(
    fleet: EmulatedFleet, hv01: RunspacePool
) -> None:
    ps = run(hv01, lambda p: p.add_script("Get-VM | Remove-VM"))
    assert ps.had_errors
    error = error_of(ps)
    assert error.fq_error == "ScriptsNotAllowed"
    assert "no-language mode" in str(error)
    entries = fleet.log.for_host("HV01")
    assert entries[-1].is_script and entries[-1].cmdlet == "Get-VM | Remove-VM"
    named = [e for e in entries if e.cmdlet == "Get-VM" and "Id" in e.parameters]
    assert named and named[0].parameters == {"Id": APP01} and not named[0].is_script


def test_whole_host_reads_discovery_sends(fleet: EmulatedFleet, hv01: RunspacePool) -> None:
    """What `inventory discover` asks: every VM's KVP component without a
    filter, every replicated VM without naming one, every VM's drives piped
    from Get-VM (each object says which VM it belongs to)."""
    vm_ids = {
        str(o.adapted_properties["VMId"])
        for o in run(hv01, lambda p: p.add_cmdlet("Get-VM")).output
    }
    ps = run(
        hv01,
        lambda p: (
            p.add_cmdlet("Get-CimInstance")
            .add_parameter("Namespace", "root\\virtualization\\v2")
            .add_parameter("ClassName", "Msvm_KvpExchangeComponent")
        ),
    )
    assert not ps.streams.error
    assert {o.adapted_properties["SystemName"] for o in ps.output} == {v.upper() for v in vm_ids}
    ps = run(hv01, lambda p: p.add_cmdlet("Get-VMReplication"))
    assert not ps.streams.error and not ps.had_errors
    assert [str(o.adapted_properties["VMId"]) for o in ps.output] == [REPL]
    ps = run(hv01, lambda p: p.add_cmdlet("Get-VM").add_cmdlet("Get-VMHardDiskDrive"))
    owners = {str(d.adapted_properties["VMId"]) for d in ps.output}
    assert owners == vm_ids
    shared = {
        str(d.adapted_properties["VMId"])
        for d in ps.output
        if d.adapted_properties["SupportPersistentReservations"]
    }
    assert shared == {FC_NODE1}


def test_remove_vm_behind_the_bots_back() -> None:
    """Remove-VM (https://learn.microsoft.com/powershell/module/hyper-v/remove-vm):
    the VM and its checkpoints are gone from the host."""
    web02 = "2a7c9d4f-e613-4b8a-9d52-6b0e3f8a1c57"
    with start_fleet(["HV02"]) as own:
        model = own.host("HV02")
        model.checkpoint_vm(web02, "before")
        model.remove_vm(web02)
        assert web02 not in {vm.vm_id for vm in model.get_vms()}
        assert not [s for s in model.get_snapshots() if s.vm_id == web02]
        with pool(own.port_of("HV02")) as hv02:
            ps = run(hv02, lambda p: p.add_cmdlet("Get-VM").add_parameter("Id", web02))
        error = error_of(ps)
        assert str(error) == f'Hyper-V was unable to find a virtual machine with ID "{web02}".'
