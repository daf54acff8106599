"""What a parsed `/checkpoint` command is: one frozen dataclass per command, and the error.

Errors::

    ValueError
    └── GrammarError    `.message` says what was wrong and what would be right;
                        `.hint` is the command's usage line (or a pointer to help);
                        `.command` names the command when it was recognised.
                        Both texts are Slack mrkdwn with echoed input escaped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from bot.durations import parse_duration

__all__ = [
    "BatchRequest",
    "ChangesRequest",
    "CreateRequest",
    "ExtendRequest",
    "GrammarError",
    "HelpRequest",
    "ListRequest",
    "MergeRequest",
    "OpenCreateModal",
    "PolicyRequest",
    "RollbackRequest",
    "SettingsRequest",
    "SlashRequest",
    "StatusRequest",
    "WaveRequest",
    "WindowsRequest",
]


@dataclass(frozen=True)
class CreateRequest:
    vm: str
    reason: str
    checkpoint_type: str | None = None
    ttl_text: str | None = None
    # `--at "2026-12-10 22:00"`: as typed; read in the requester's Slack
    # time zone by the handler (bot.service.at_time).
    at_text: str | None = None

    @property
    def ttl(self) -> timedelta | None:
        return parse_duration(self.ttl_text) if self.ttl_text is not None else None


@dataclass(frozen=True)
class OpenCreateModal:
    """`/checkpoint create` alone: ask for everything in a form instead."""


@dataclass(frozen=True)
class ListRequest:
    target: str | None = None  # a VM or host name, unresolved; None means everything


class _ChangeOrVM:
    """A request that names exactly one of a change (`change_ref`, CHG-0042)
    or a VM (`vm`: its one change the action fits, bot/service/vm_target.py)."""

    change_ref: str | None
    vm: str | None

    def __post_init__(self) -> None:
        if (self.change_ref is None) == (self.vm is None):
            raise ValueError(f"{type(self).__name__} needs exactly one of change_ref or vm")

    @property
    def target(self) -> str:
        """What the service reads: the change's ref, else the VM's name."""
        return self.change_ref or self.vm or ""


@dataclass(frozen=True)
class RollbackRequest(_ChangeOrVM):
    """A VM's name means its one active change."""

    change_ref: str | None = None
    vm: str | None = None


@dataclass(frozen=True)
class MergeRequest(_ChangeOrVM):
    """A VM's name means its one active or rolled-back change."""

    change_ref: str | None = None
    vm: str | None = None


@dataclass(frozen=True)
class ExtendRequest(_ChangeOrVM):
    """A VM's name means its one active change."""

    change_ref: str | None
    duration_text: str
    vm: str | None = None

    @property
    def duration(self) -> timedelta:
        return parse_duration(self.duration_text)


@dataclass(frozen=True)
class ApproveRequest:
    """Approve what a change waits for; `action` says which when several wait."""

    change_ref: str
    action: str | None = None  # create | rollback | merge | extend


@dataclass(frozen=True)
class RejectRequest:
    """Reject what a change waits for, saying why (always: the grammar
    refuses a rejection without a reason)."""

    change_ref: str
    reason: str
    action: str | None = None


@dataclass(frozen=True)
class WithdrawRequest:
    """The requester takes back their own request while it waits."""

    change_ref: str
    action: str | None = None


@dataclass(frozen=True)
class StatusRequest:
    change_ref: str


@dataclass(frozen=True)
class ChangesRequest:
    """`/checkpoint status` with nothing after it: the open changes."""


@dataclass(frozen=True)
class WaveRequest:
    """`/checkpoint create WEB01 WEB02 …` or with --group / --host / --tag:
    a patch wave, previewed before anything is taken (docs/batches.md)."""

    names: tuple[str, ...]
    reason: str
    group: str | None = None
    host: str | None = None
    tag: str | None = None
    checkpoint_type: str | None = None
    ttl_text: str | None = None
    at_text: str | None = None
    cluster: str | None = None


@dataclass(frozen=True)
class BatchRequest:
    """`/checkpoint batch BAT-n`: a patch wave's card (docs/batches.md)."""

    batch_ref: str


@dataclass(frozen=True)
class PolicyRequest:
    vm: str
    action: str = "create"


@dataclass(frozen=True)
class WindowsRequest:
    pass


@dataclass(frozen=True)
class SettingsRequest:
    vm: str
    checkpoint_type: str | None = None  # production | production-only | standard | disabled
    automatic: bool | None = None
    reason: str | None = None  # why, for the record (a change needs one)

    @property
    def is_change(self) -> bool:
        """False: only show the settings."""
        return self.checkpoint_type is not None or self.automatic is not None


@dataclass(frozen=True)
class HelpRequest:
    topic: str | None = None  # a command name, already checked


SlashRequest = (
    CreateRequest
    | OpenCreateModal
    | ListRequest
    | RollbackRequest
    | MergeRequest
    | ExtendRequest
    | ApproveRequest
    | RejectRequest
    | WithdrawRequest
    | StatusRequest
    | ChangesRequest
    | BatchRequest
    | WaveRequest
    | PolicyRequest
    | WindowsRequest
    | SettingsRequest
    | HelpRequest
)


class GrammarError(ValueError):
    def __init__(self, message: str, hint: str = "", *, command: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.command = command

    def __str__(self) -> str:
        return f"{self.message}  {self.hint}" if self.hint else self.message
