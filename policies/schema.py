"""The policy file's shape, as pydantic models (unknown fields are errors).

Structure only: what needs the rule registry (rule ids, each rule's params)
is checked by `policies.config`, which also knows the file and line.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from bot.domain import Role, checked_channel_id
from bot.durations import DurationError, parse_duration
from policies.model import Effect
from policies.recurrence import parse_rrule

__all__ = [
    "Duration",
    "ExemptionConfig",
    "OverrideConfig",
    "PermissionConfig",
    "PermissionsConfig",
    "PolicyDoc",
    "Principals",
    "RuleConfig",
    "Scope",
    "WindowConfig",
]

_ROLES = tuple(r.value for r in Role)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


def _duration(value: object) -> object:
    """A duration is text with a unit (`72h`, `7d`). A bare number is
    refused: `default: 24` would otherwise be read by pydantic as 24
    seconds, a lifetime or window nobody meant."""
    if isinstance(value, timedelta):  # already one (a model built in code)
        return value
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except DurationError as exc:
            raise ValueError(str(exc)) from None
    if isinstance(value, int | float) and not isinstance(value, bool):
        if isinstance(value, int) and value > 0:
            write = f"write {value}h, {value}m or {value}d"
        else:
            write = "write a number and a unit, like 90m, 24h or 7d"
        raise ValueError(f"{value} has no unit: {write}")
    # YAML `yes`, a list, a mapping: nothing pydantic should try to read as one.
    if isinstance(value, bool):
        shown = "true" if value else "false"
    elif isinstance(value, Mapping):
        shown = "a mapping"
    elif isinstance(value, list):
        shown = "a list"
    else:
        shown = "nothing" if value is None else type(value).__name__
    raise ValueError(f"expected a duration like 72h or 7d, got {shown}")


Duration = Annotated[timedelta, BeforeValidator(_duration)]
NonEmpty = Annotated[str, Field(min_length=1)]


def _role(value: object) -> object:
    if isinstance(value, str) and value.strip().lower() not in _ROLES:
        raise ValueError(f"unknown role {value!r} (expected one of: {', '.join(_ROLES)})")
    return value.strip().lower() if isinstance(value, str) else value


RoleName = Annotated[str, BeforeValidator(_role)]


class Scope(_Model):
    """Which VMs a setting is for. Every criterion given must match (AND);
    within one criterion any listed value matches (OR). Empty = every VM."""

    tags: dict[str, str] = Field(default_factory=dict)
    names: list[NonEmpty] = Field(default_factory=list)  # fnmatch, case-insensitive
    host_groups: list[NonEmpty] = Field(default_factory=list)
    domains: list[NonEmpty] = Field(default_factory=list)
    roles: list[RoleName] = Field(default_factory=list)

    @property
    def is_everything(self) -> bool:
        return not (self.tags or self.names or self.host_groups or self.domains or self.roles)

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in self.tags.items()]
        for label, values in (
            ("name", self.names),
            ("host group", self.host_groups),
            ("domain", self.domains),
            ("role", self.roles),
        ):
            if values:
                parts.append(f"{label} {'/'.join(values)}")
        return ", ".join(parts) or "every VM"


class OverrideConfig(_Model):
    scope: Scope
    enabled: bool | None = None
    effect: Effect | None = None
    params: dict[str, Any] = Field(default_factory=dict)


class RuleConfig(_Model):
    enabled: bool = True
    effect: Effect | None = None  # None: the rule's own default
    params: dict[str, Any] = Field(default_factory=dict)
    # Later matching overrides win, key by key.
    overrides: list[OverrideConfig] = Field(default_factory=list)


class Principals(_Model):
    """Slack user ids and user-group ids; "*" means anyone."""

    users: list[NonEmpty] = Field(default_factory=list)
    groups: list[NonEmpty] = Field(default_factory=list)


class PermissionConfig(Principals):
    channels: list[NonEmpty] = Field(default_factory=list)  # empty or "*": any channel
    # May it be used from the CLI (`cli:NAME`)? The CLI's operator is who
    # CHECKPOINT_BOT_USER (else $USER) says: nothing proves it, unlike a
    # Slack identity, so `false` keeps this permission for Slack users only.
    cli: bool = True

    @field_validator("channels")
    @classmethod
    def _channel_ids(cls, value: list[str]) -> list[str]:
        # A request names its channel by id: a name here would match none,
        # and refuse every request "ask again in #ops" with no way to comply.
        return [c if c == "*" else checked_channel_id(c) for c in value]


def _anyone() -> PermissionConfig:
    return PermissionConfig(users=["*"])


class PermissionsConfig(_Model):
    request: PermissionConfig = Field(default_factory=_anyone)
    approve: PermissionConfig = Field(default_factory=_anyone)
    rollback: PermissionConfig = Field(default_factory=_anyone)
    merge: PermissionConfig = Field(default_factory=_anyone)
    extend: PermissionConfig = Field(default_factory=_anyone)


class WindowNoticesConfig(_Model):
    """How long before a window opens and closes its notices go out, and
    whether a notice goes out when nothing in the window's scope is
    scheduled or holds a checkpoint (`always: false`: it does not)."""

    opening: Duration = timedelta(minutes=30)
    closing: Duration = timedelta(minutes=30)
    always: bool = False


class WindowConfig(_Model):
    """A recurring change window: opens at each `cron` match (or `rrule`
    occurrence) in `timezone` (wall-clock time, so DST moves it with the
    clock) and lasts `duration`."""

    name: NonEmpty
    cron: NonEmpty | None = None
    rrule: NonEmpty | None = None
    duration: Duration
    timezone: NonEmpty = "UTC"
    scope: Scope = Field(default_factory=Scope)
    # The Slack channel for its notices (default: slack.changes_channel).
    channel: NonEmpty | None = None
    notices: WindowNoticesConfig = Field(default_factory=WindowNoticesConfig)

    @field_validator("channel")
    @classmethod
    def _channel_id(cls, value: str | None) -> str | None:
        return checked_channel_id(value) if value is not None else None

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        # Imported only for a policy with cron windows (bench/cli_start.py).
        from croniter import croniter  # type: ignore[import-untyped]

        if value is not None and (len(value.split()) != 5 or not croniter.is_valid(value)):
            raise ValueError(
                f"{value!r} is not a cron expression: use five fields "
                "(minute hour day-of-month month day-of-week), e.g. '0 22 * * 6'"
            )
        return value

    @field_validator("rrule")
    @classmethod
    def _valid_rrule(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if any(part in value.upper() for part in ("COUNT=", "UNTIL=")):
            raise ValueError("a change window recurs without end: drop COUNT and UNTIL")
        try:
            parse_rrule(value)
        except (ValueError, TypeError) as exc:
            raise ValueError(
                f"{value!r} is not an RRULE ({exc}): e.g. 'FREQ=WEEKLY;BYDAY=SA;BYHOUR=22;"
                "BYMINUTE=0'"
            ) from None
        return value

    @model_validator(mode="after")
    def _one_schedule(self) -> WindowConfig:
        if (self.cron is None) == (self.rrule is None):
            raise ValueError("give exactly one of `cron` and `rrule`")
        return self

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown timezone {value!r}: use an IANA name like Europe/Berlin or UTC"
            ) from None
        return value

    @field_validator("duration")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than zero")
        return value


class ExemptionConfig(_Model):
    rule: NonEmpty
    vm: NonEmpty  # a VM name or fnmatch pattern, case-insensitive
    reason: NonEmpty
    approved_by: NonEmpty
    # Required: an exemption without an end is a hole in the fence. It applies
    # up to and including the day before `expires` (UTC).
    expires: date


class PolicyDoc(_Model):
    admins: Principals = Field(default_factory=Principals)
    permissions: PermissionsConfig = Field(default_factory=PermissionsConfig)
    rules: dict[str, RuleConfig] = Field(default_factory=dict)
    windows: list[WindowConfig] = Field(default_factory=list)
    exemptions: list[ExemptionConfig] = Field(default_factory=list)
