"""A NoLanguage, JEA-like command table that runs on a modelled host.

    run_pipeline(commands, input, context, sink)   one PSRP pipeline
    TABLE                                          the visible cmdlets (bodies: hyperv_cmdlets)

Only the cmdlets in `TABLE` are visible, with only their listed parameters
(a JEA role capability's VisibleCmdlets). Scripts are refused as in a
NoLanguage session; every other command is `CommandNotFoundException`.
Statements (`add_statement`) run in order; within a statement each command
gets the previous one's output as pipeline input, bound by value (a
VirtualMachine to `-VM`, a VMSnapshot to `-VMSnapshot`).

Errors follow PowerShell: binding errors, unknown commands, scripts and a
confirmation prompt without a host are terminating (the pipeline fails,
`had_errors`); a cmdlet's per-object failure (VM not found, checkpoints
disabled) is a non-terminating ErrorRecord and the pipeline completes,
unless `-ErrorAction Stop` makes it terminating.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from bot.devtools.emulator import hyperv_cmdlets as hv
from bot.devtools.emulator import messages as msg
from bot.devtools.emulator.binding import BindingError, CmdletDef, Kind, bind
from bot.devtools.emulator.hyperv_cmdlets import Call, PipelineFailed, PipelineStopped, RunContext
from bot.devtools.emulator.log import LogEntry
from bot.devtools.emulator.messages import ErrorInfo
from bot.devtools.emulator.objects import to_remoting
from bot.devtools.hostmodel.errors import HostError

__all__ = ["Invocation", "PipelineFailed", "PipelineStopped", "RunContext", "Sink", "run_pipeline"]

_HV = "Microsoft.HyperV.PowerShell.Commands"


@dataclass(frozen=True)
class Invocation:
    """One command of a pipeline, as received ([MS-PSRP] 2.2.3.11)."""

    name: str
    parameters: list[tuple[str | None, Any]]
    is_script: bool = False
    end_of_statement: bool = False


class Sink(Protocol):
    def output(self, value: Any) -> None: ...

    def error(self, info: ErrorInfo) -> None: ...


def _def(name: str, type_name: str, run: Callable[[Call], list[Any]], **kw: Any) -> CmdletDef:
    return CmdletDef(name=name, command_type=type_name, run=run, **kw)


_S, _SS, _G, _SW = Kind.STRINGS, Kind.STRINGS, Kind.GUIDS, Kind.SWITCH
TABLE: dict[str, CmdletDef] = {
    d.name.casefold(): d
    for d in (
        _def("Get-VM", f"{_HV}.GetVM", hv.get_vm, params={"Name": _SS, "Id": _G},
             positions=("Name",), aliases={"VMName": "Name"}),
        _def("Get-VMSnapshot", f"{_HV}.GetVMSnapshot", hv.get_vm_snapshot,
             params={"VMName": _SS, "VM": Kind.OBJECT, "Id": _G, "Name": Kind.STRING},
             pipeline="VM", positions=("VMName", "Name")),
        _def("Checkpoint-VM", f"{_HV}.CheckpointVM", hv.checkpoint_vm,
             params={"Name": _SS, "VM": Kind.OBJECT, "SnapshotName": Kind.STRING, "Passthru": _SW},
             pipeline="VM", positions=("Name", "SnapshotName"), aliases={"VMName": "Name"},
             should_process=True),
        _def("Restore-VMSnapshot", f"{_HV}.RestoreVMSnapshot", hv.restore_vm_snapshot,
             params={"VMSnapshot": Kind.OBJECT, "Name": Kind.STRING, "VMName": _SS,
                     "Passthru": _SW},
             pipeline="VMSnapshot", aliases={"VMCheckpoint": "VMSnapshot"},
             should_process=True, confirm_impact_high=True),
        _def("Remove-VMSnapshot", f"{_HV}.RemoveVMSnapshot", hv.remove_vm_snapshot,
             params={"VMSnapshot": Kind.OBJECT, "Name": Kind.STRING, "VMName": _SS,
                     "IncludeAllChildSnapshots": _SW, "Passthru": _SW},
             pipeline="VMSnapshot", aliases={"VMCheckpoint": "VMSnapshot"},
             should_process=True),
        _def("Start-VM", f"{_HV}.StartVM", hv.start_vm,
             params={"Name": _SS, "VM": Kind.OBJECT, "Passthru": _SW}, pipeline="VM",
             positions=("Name",), aliases={"VMName": "Name"}, should_process=True),
        _def("Set-VM", f"{_HV}.SetVM", hv.set_vm,
             params={"Name": _SS, "VM": Kind.OBJECT, "CheckpointType": Kind.CHECKPOINT_TYPE,
                     "AutomaticCheckpointsEnabled": Kind.BOOL, "Passthru": _SW},
             pipeline="VM", positions=("Name",), aliases={"VMName": "Name"},
             should_process=True),
        _def("Get-VMHardDiskDrive", f"{_HV}.GetVMHardDiskDrive", hv.get_vm_hard_disk_drive,
             params={"VMName": _SS, "VM": Kind.OBJECT}, pipeline="VM", positions=("VMName",)),
        _def("Get-VMFibreChannelHba", f"{_HV}.GetVMFibreChannelHba",
             hv.get_vm_fibre_channel_hba, params={"VMName": _SS, "VM": Kind.OBJECT},
             pipeline="VM", positions=("VMName",)),
        _def("Get-VMReplication", f"{_HV}.GetVMReplication", hv.get_vm_replication,
             params={"VMName": _SS, "VM": Kind.OBJECT}, pipeline="VM", positions=("VMName",)),
        _def("Get-CimInstance",
             "Microsoft.Management.Infrastructure.CimCmdlets.GetCimInstanceCommand",
             hv.get_cim_instance,
             params={"Namespace": Kind.STRING, "ClassName": Kind.STRING, "Filter": Kind.STRING},
             positions=("ClassName",)),
        _def("Get-Volume", "Get-Volume", hv.get_volume,
             params={"DriveLetter": _S, "FilePath": Kind.STRING}, positions=("DriveLetter",)),
        # Not visible in a RestrictedRemoteServer session by default; the
        # bot's role capability lists it (deploy/jea/CheckpointBot.psrc).
        _def("Where-Object", "Microsoft.PowerShell.Commands.WhereObjectCommand", hv.where_object,
             params={"Property": Kind.STRING, "Value": Kind.OBJECT, "EQ": _SW,
                     "InputObject": Kind.OBJECT},
             pipeline="InputObject", positions=("Property", "Value"), aliases={"IEQ": "EQ"}),
        _def("Select-Object", "Microsoft.PowerShell.Commands.SelectObjectCommand", hv.select_object,
             params={"Property": _SS, "ExpandProperty": Kind.STRING, "First": Kind.INT,
                     "InputObject": Kind.OBJECT},
             pipeline="InputObject", positions=("Property",)),
    )
}  # fmt: skip
# Parameters a command must get, by name or (when not first) from the pipeline.
_MANDATORY = {"checkpoint-vm": "Name", "start-vm": "Name", "set-vm": "Name"}


def _statements(commands: list[Invocation]) -> list[list[Invocation]]:
    found: list[list[Invocation]] = [[]]
    for command in commands:
        found[-1].append(command)
        if command.end_of_statement:
            found.append([])
    return [s for s in found if s]


def _plain(value: Any) -> Any:
    """A received argument as plain Python for the log."""
    if type(value) is str:
        return value  # the common case, before isinstance() on psrpcore objects
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)


def _log(ctx: RunContext, command: Invocation) -> None:
    parameters: dict[str, Any] = {}
    for index, (name, value) in enumerate(command.parameters):
        parameters[name if name is not None else f"#{index}"] = _plain(value)
    ctx.log.append(
        LogEntry(
            host=ctx.host.name,
            cmdlet=command.name,
            parameters=parameters,
            is_script=command.is_script,
            at=datetime.now(UTC),
        )
    )


def _prepare(statement: list[Invocation]) -> list[tuple[CmdletDef, dict[str, Any]]]:
    """Resolve and bind a whole statement before any of it runs, as the
    engine does; raises PipelineFailed."""
    prepared = []
    for index, command in enumerate(statement):
        if command.is_script:
            raise PipelineFailed(msg.scripts_not_allowed())
        cmdlet = TABLE.get(command.name.strip().casefold())
        if cmdlet is None:
            raise PipelineFailed(msg.command_not_found(command.name))
        try:
            args = bind(cmdlet, command.parameters)
        except BindingError as exc:
            raise PipelineFailed(exc.info) from None
        needed = _MANDATORY.get(cmdlet.name.casefold())
        if needed and index == 0 and needed not in args and (cmdlet.pipeline or "") not in args:
            raise PipelineFailed(msg.missing_mandatory([needed], cmdlet.name, cmdlet.command_type))
        prepared.append((cmdlet, args))
    return prepared


def run_pipeline(
    commands: list[Invocation],
    input_objects: list[Any],
    ctx: RunContext,
    sink: Sink,
    *,
    to_wire: Callable[[Any], Any] = to_remoting,
) -> None:
    """Runs every statement; raises PipelineFailed or PipelineStopped.
    `to_wire` makes what `sink.output` gets from each output object; the
    WinRM session passes them as they are and serializes them itself
    (wirecache.py)."""
    for command in commands:
        _log(ctx, command)
    pending = list(input_objects)
    hidden = ctx.hidden()
    for statement in _statements(commands):
        for command in statement:
            if command.name.strip().casefold() in hidden:
                raise PipelineFailed(msg.command_not_found(command.name))
        objects, pending = pending, []
        for index, (cmdlet, args) in enumerate(_prepare(statement)):
            errors: list[ErrorInfo] = []
            call = Call(ctx, cmdlet, args, objects, index == 0, errors)
            if cmdlet.pipeline and cmdlet.pipeline in args:
                # -VM / -VMSnapshot given as a parameter: a deserialized
                # object only binds by property name; accept it as input.
                value = args.pop(cmdlet.pipeline)
                call.input = [*call.input, *(value if isinstance(value, list) else [value])]
            with ExitStack() as busy:
                # The VMs it works on report it in progress until it is done
                # or stopped, whoever waits for the answer (hv.working_on).
                for vm_id, status in hv.working_on(call):
                    busy.enter_context(ctx.host.operation(vm_id, status))
                delay = ctx.slow().get(cmdlet.name.casefold(), 0)
                if delay:
                    # Fault injection: a slow host; a stop cuts the wait short.
                    ctx.stop.wait(delay / 1000)
                if cmdlet.name.casefold() in ctx.hang():
                    # Fault injection: never finishes until the client stops it.
                    ctx.stop.wait()
                if ctx.stop.is_set():
                    raise PipelineStopped()
                try:
                    objects = cmdlet.run(call)
                except HostError as exc:
                    errors.append(msg.from_host_error(exc, activity=cmdlet.name))
                    objects = []
            _report(errors, args.get("ErrorAction", "Continue"), sink)
            late = ctx.late().get(cmdlet.name.casefold(), 0)
            if late and ctx.stop.wait(late / 1000):
                # Fault injection: the work is done; the answer never came
                # back before the client stopped waiting (faults.py).
                raise PipelineStopped()
        for value in objects:
            sink.output(to_wire(value))


def _report(errors: list[ErrorInfo], action: str, sink: Sink) -> None:
    if action in ("SilentlyContinue", "Ignore"):
        return
    for info in errors:
        if action == "Stop":
            raise PipelineFailed(info)
        sink.error(info)
