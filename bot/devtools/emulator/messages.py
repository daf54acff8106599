"""The error records the emulated session writes, as PowerShell writes them.

    ErrorInfo         one ErrorRecord: message, CategoryInfo, FullyQualifiedErrorId
    from_host_error() a modelled host's error (bot.devtools.hostmodel.errors) as a record

Engine texts (command not found, parameter binding, no-language mode, no
host for a confirmation prompt) are PowerShell's own; where one was not seen
verbatim it says "modelled". FullyQualifiedErrorIds are `<id>,<command type>`
as the engine builds them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.devtools.hostmodel.errors import HostError

_PBE = "System.Management.Automation.ParameterBindingException"
VIRTUALIZATION_EXCEPTION = "Microsoft.HyperV.PowerShell.VirtualizationException"


@dataclass(frozen=True)
class ErrorInfo:
    message: str
    category: str  # an ErrorCategory member name
    error_id: str  # FullyQualifiedErrorId
    exception_type: str  # the .NET exception's full type name
    activity: str = ""
    target_name: str = ""
    target_object: Any = None

    @property
    def reason(self) -> str:
        """CategoryInfo.Reason: the exception's short type name."""
        return self.exception_type.rsplit(".", 1)[-1]


def from_host_error(exc: HostError, *, activity: str, target: str = "") -> ErrorInfo:
    """A Hyper-V cmdlet's error record for a modelled host's error (its own
    text, category and id, e.g. `ObjectNotFound,Microsoft.HyperV...GetVMSnapshot`)."""
    return ErrorInfo(
        message=exc.message,
        category=exc.category or "NotSpecified",
        error_id=exc.error_id or f"Unspecified,{activity}",
        exception_type=VIRTUALIZATION_EXCEPTION,
        activity=activity,
        target_name=target,
        target_object=target or None,
    )


def vm_name_not_found(name: str, *, activity: str, command_type: str) -> ErrorInfo:
    # Verbatim text, InvalidArgument / InvalidParameter (VirtualEngine/
    # Lability#294; hostmodel.errors.vm_not_found models the by-Id form on it).
    return ErrorInfo(
        message=f'Hyper-V was unable to find a virtual machine with name "{name}".',
        category="InvalidArgument",
        error_id=f"InvalidParameter,{command_type}",
        exception_type=VIRTUALIZATION_EXCEPTION,
        activity=activity,
        target_name=name,
        target_object=name,
    )


def command_not_found(name: str) -> ErrorInfo:
    # Verbatim engine text; in a JEA session every command the role does not
    # make visible fails this way.
    return ErrorInfo(
        message=f"The term '{name}' is not recognized as the name of a cmdlet, function, script "
        "file, or operable program. Check the spelling of the name, or if a path was included, "
        "verify that the path is correct and try again.",
        category="ObjectNotFound",
        error_id="CommandNotFoundException",
        exception_type="System.Management.Automation.CommandNotFoundException",
        activity="",
        target_name=name,
        target_object=name,
    )


def scripts_not_allowed() -> ErrorInfo:
    # Verbatim message; category and exception type modelled.
    return ErrorInfo(
        message="The syntax is not supported by this runspace. This can occur if the runspace "
        "is in no-language mode.",
        category="ParserError",
        error_id="ScriptsNotAllowed",
        exception_type="System.Management.Automation.ParseException",
    )


def _binding(
    message: str, error_id: str, command: str, command_type: str, target: str
) -> ErrorInfo:
    return ErrorInfo(
        message=message,
        category="InvalidArgument",
        error_id=f"{error_id},{command_type}",
        exception_type=_PBE,
        activity=command,
        target_name=target,
    )


def named_parameter_not_found(name: str, command: str, command_type: str) -> ErrorInfo:
    # Verbatim (a WS2012 R2 host asked for -CheckpointType, which it lacks).
    return _binding(
        f"A parameter cannot be found that matches parameter name '{name}'.",
        "NamedParameterNotFound",
        command,
        command_type,
        name,
    )


def ambiguous_parameter(
    name: str, matches: list[str], command: str, command_type: str
) -> ErrorInfo:
    found = " ".join(f"-{m}" for m in matches)
    return _binding(
        f"Parameter cannot be processed because the parameter name '{name}' is ambiguous. "
        f"Possible matches include: {found}.",
        "AmbiguousParameter",
        command,
        command_type,
        name,
    )


def positional_not_found(value: object, command: str, command_type: str) -> ErrorInfo:
    return _binding(
        f"A positional parameter cannot be found that accepts argument '{value}'.",
        "PositionalParameterNotFound",
        command,
        command_type,
        str(value),
    )


def missing_argument(name: str, type_name: str, command: str, command_type: str) -> ErrorInfo:
    return _binding(
        f"Missing an argument for parameter '{name}'. Specify a parameter of type "
        f"'{type_name}' and try again.",
        "MissingArgument",
        command,
        command_type,
        name,
    )


def missing_mandatory(names: list[str], command: str, command_type: str) -> ErrorInfo:
    # In a session without a host the engine cannot prompt for the value.
    return _binding(
        "Cannot process command because of one or more missing mandatory parameters: "
        f"{' '.join(names)}.",
        "MissingMandatoryParameter",
        command,
        command_type,
        names[0],
    )


def cannot_convert(
    name: str, value: object, type_name: str, detail: str, command: str, command_type: str
) -> ErrorInfo:
    return _binding(
        f"Cannot bind parameter '{name}'. Cannot convert value \"{value}\" to type "
        f'"{type_name}". Error: "{detail}"',
        "CannotConvertArgumentNoMessage",
        command,
        command_type,
        name,
    )


def input_not_bound(command: str, command_type: str, target: object) -> ErrorInfo:
    return ErrorInfo(
        message="The input object cannot be bound to any parameters for the command either "
        "because the command does not take pipeline input or the input and its properties do "
        "not match any of the parameters that take pipeline input.",
        category="InvalidArgument",
        error_id=f"InputObjectNotBound,{command_type}",
        exception_type=_PBE,
        activity=command,
        target_object=str(target),
    )


def confirmation_needs_host(question: str, command: str) -> ErrorInfo:
    # A ConfirmImpact=High cmdlet prompts; a remote session with no console
    # has no host UI to prompt with: HostFunctionNotImplemented.
    return ErrorInfo(
        message="A command that prompts the user failed because the host program or the command "
        "type does not support user interaction. The host was attempting to request "
        f"confirmation with the following message: {question}",
        category="NotImplemented",
        error_id="HostFunctionNotImplemented",
        exception_type="System.Management.Automation.Host.HostException",
        activity=command,
    )


def cim_error(text: str, hresult: str, category: str) -> ErrorInfo:
    # `Invalid class` 0x80041010 / `Invalid namespace` 0x8004100E /
    # `Invalid query` 0x80041017 as Get-CimInstance reports WMI errors.
    return ErrorInfo(
        message=text,
        category=category,
        error_id=f"HRESULT {hresult},Microsoft.Management.Infrastructure.CimCmdlets."
        "GetCimInstanceCommand",
        exception_type="Microsoft.Management.Infrastructure.CimException",
        activity="Get-CimInstance",
    )


def volume_not_found(what: tuple[str, str]) -> ErrorInfo:
    # Modelled on the Storage module's CDXML "No MSFT_Volume objects found".
    return ErrorInfo(
        message=f"No MSFT_Volume objects found with property '{what[0]}' equal to '{what[1]}'. "
        "Verify the value of the property and retry.",
        category="ObjectNotFound",
        error_id=f"CmdletizationQuery_NotFound_{what[0]},Get-Volume",
        exception_type="Microsoft.PowerShell.Cmdletization.Cim.CimJobException",
        activity="Get-Volume",
        target_object=what[1],
    )
