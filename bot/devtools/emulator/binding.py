"""Parameter binding, the part of PowerShell's binder a JEA session shows.

    CmdletDef        what a visible cmdlet accepts (names, kinds, aliases, positions)
    bind(def, args)  names resolved (case-insensitive, unique prefixes, aliases),
                     values converted; raises BindingError with the engine's record

Arguments arrive as [MS-PSRP] 2.2.3.11 Command `Args`: (name, value) pairs,
name None for a positional argument. A switch is present when its value is
None (`add_parameter("Passthru")`) or true.
"""

from __future__ import annotations

import fnmatch
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from bot.devtools.emulator import messages as msg
from bot.devtools.emulator.messages import ErrorInfo


class Kind(Enum):
    SWITCH = "System.Management.Automation.SwitchParameter"
    STRING = "System.String"
    STRINGS = "System.String[]"
    GUIDS = "System.Guid[]"
    BOOL = "System.Boolean"
    INT = "System.Int32"
    OBJECT = "System.Object"
    CHECKPOINT_TYPE = "Microsoft.HyperV.PowerShell.CheckpointType"
    ACTION = "System.Management.Automation.ActionPreference"


COMMON: dict[str, Kind] = {
    "Verbose": Kind.SWITCH,
    "Debug": Kind.SWITCH,
    "ErrorAction": Kind.ACTION,
    "WarningAction": Kind.ACTION,
    "InformationAction": Kind.ACTION,
    "ErrorVariable": Kind.STRING,
    "WarningVariable": Kind.STRING,
    "InformationVariable": Kind.STRING,
    "OutVariable": Kind.STRING,
    "OutBuffer": Kind.INT,
    "PipelineVariable": Kind.STRING,
}
SHOULD_PROCESS: dict[str, Kind] = {"WhatIf": Kind.SWITCH, "Confirm": Kind.SWITCH}
_GUID_FORMAT = "Guid should contain 32 digits with 4 dashes (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)."
_ACTIONS = ("SilentlyContinue", "Stop", "Continue", "Inquire", "Ignore", "Suspend", "Break")
_CHECKPOINT_TYPES = ("Disabled", "Production", "ProductionOnly", "Standard")


class BindingError(Exception):
    """A terminating ParameterBindingException (the pipeline fails)."""

    def __init__(self, info: ErrorInfo) -> None:
        super().__init__(info.message)
        self.info = info


@dataclass(frozen=True)
class CmdletDef:
    name: str
    command_type: str  # the implementing type, the second half of error ids
    params: Mapping[str, Kind]
    run: Callable[..., list[Any]]
    pipeline: str | None = None  # the parameter that takes pipeline input by value
    positions: tuple[str, ...] = ()
    aliases: Mapping[str, str] = field(default_factory=dict)
    should_process: bool = False
    confirm_impact_high: bool = False

    def all_params(self) -> dict[str, Kind]:
        found = dict(self.params)
        found.update(COMMON)
        if self.should_process:
            found.update(SHOULD_PROCESS)
        return found


def _resolve(cmdlet: CmdletDef, given: str) -> str:
    names = cmdlet.all_params()
    key = given.lstrip("-").casefold()
    lookup = {n.casefold(): n for n in names}
    lookup.update({a.casefold(): target for a, target in cmdlet.aliases.items()})
    if key in lookup:
        return lookup[key]
    matches = sorted({target for k, target in lookup.items() if k.startswith(key)})
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise BindingError(
            msg.ambiguous_parameter(given, matches, cmdlet.name, cmdlet.command_type)
        )
    raise BindingError(msg.named_parameter_not_found(given, cmdlet.name, cmdlet.command_type))


def bind(cmdlet: CmdletDef, args: list[tuple[str | None, Any]]) -> dict[str, Any]:
    kinds = cmdlet.all_params()
    bound: dict[str, Any] = {}
    positional = list(cmdlet.positions)
    for name, value in args:
        if name is None:
            free = [p for p in positional if p not in bound]
            if not free:
                raise BindingError(
                    msg.positional_not_found(value, cmdlet.name, cmdlet.command_type)
                )
            bound[free[0]] = _convert(cmdlet, free[0], kinds[free[0]], value)
            continue
        canonical = _resolve(cmdlet, name)
        bound[canonical] = _convert(cmdlet, canonical, kinds[canonical], value)
    return bound


def _convert(cmdlet: CmdletDef, name: str, kind: Kind, value: Any) -> Any:
    def fail(detail: str) -> BindingError:
        return BindingError(
            msg.cannot_convert(name, value, kind.value, detail, cmdlet.name, cmdlet.command_type)
        )

    if kind is Kind.SWITCH:
        return True if value is None else bool(value)
    if value is None:
        raise BindingError(msg.missing_argument(name, kind.value, cmdlet.name, cmdlet.command_type))
    if kind is Kind.STRING:
        return str(value)
    if kind is Kind.STRINGS:
        return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]
    if kind is Kind.GUIDS:
        items = value if isinstance(value, list | tuple) else [value]
        try:
            return [str(uuid.UUID(str(v))) for v in items]
        except ValueError:
            raise fail(_GUID_FORMAT) from None
    if kind is Kind.BOOL:
        if isinstance(value, bool):
            return value
        raise fail(f'Cannot convert value "{value}" to type "{kind.value}".')
    if kind is Kind.INT:
        try:
            return int(value)
        except (TypeError, ValueError):
            raise fail("Input string was not in a correct format.") from None
    if kind is Kind.CHECKPOINT_TYPE:
        return _enum_member(value, _CHECKPOINT_TYPES, fail)
    if kind is Kind.ACTION:
        return _enum_member(value, _ACTIONS, fail)
    return value


def _enum_member(value: Any, names: tuple[str, ...], fail: Callable[[str], BindingError]) -> str:
    text = str(getattr(value, "name", value)).strip()
    for member in names:
        if member.casefold() == text.casefold():
            return member
    raise fail(
        f"Unable to match the identifier name {text} to a valid enumerator name. Specify one "
        f"of the following enumerator names and try again:\n{', '.join(names)}"
    )


def has_wildcard(text: str) -> bool:
    return any(c in text for c in "*?[")


def like(text: str, pattern: str) -> bool:
    """PowerShell's WildcardPattern, case-insensitive (`*`, `?`, `[a-z]`)."""
    return fnmatch.fnmatchcase(text.casefold(), pattern.casefold())
