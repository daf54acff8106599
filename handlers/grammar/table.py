"""The `/checkpoint` command table: every command, its arguments, options and examples.

The parser (`grammar.parser`) and the help (`grammar.help`) both read
this table, so what help promises is what the parser accepts.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from bot.domain import BatchRef, ChangeRef, CheckpointKind, single_vm
from bot.reasons import REJECT_EXAMPLE
from handlers.grammar.requests import (
    ApproveRequest,
    BatchRequest,
    ChangesRequest,
    CreateRequest,
    ExtendRequest,
    HelpRequest,
    ListRequest,
    MergeRequest,
    OpenCreateModal,
    PolicyRequest,
    RejectRequest,
    RollbackRequest,
    SettingsRequest,
    SlashRequest,
    StatusRequest,
    WaveRequest,
    WindowsRequest,
    WithdrawRequest,
)
from templates import mrkdwn_escape

__all__ = [
    "BY_NAME",
    "COMMANDS",
    "SLASH",
    "CommandSpec",
    "Invalid",
    "Kind",
    "Param",
    "Values",
    "either",
    "normalize_batch_ref",
    "normalize_change_ref",
]

SLASH = "/checkpoint"


def normalize_change_ref(text: str) -> str | None:
    """`CHG-12`, `chg12` or `CHG-0012` → `CHG-0012`; anything else → None."""
    ref = ChangeRef.parse(text)
    return str(ref) if ref else None


def normalize_batch_ref(text: str) -> str | None:
    """`BAT-7`, `bat7` or `BAT-0007` → `BAT-0007`; anything else → None."""
    ref = BatchRef.parse(text)
    return str(ref) if ref else None


def either(words: tuple[str, ...] | list[str]) -> str:
    """`a`, `a or b`, `a, b or c`."""
    items = list(words)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


class Invalid(Exception):
    """A problem inside one command; `parse` adds that command's usage as the hint."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- the table ---------------------------------------------------------------------------


class Kind(enum.Enum):
    VM = "a VM name"
    TARGET = "a VM, host, cluster or group name"
    CHANGE = "a change id like CHG-0042"
    CHANGE_OR_VM = "a change id like CHG-0042 or a VM name"
    BATCH = "a batch id like BAT-0007"
    CHANGE_OR_BATCH = "a change id like CHG-0042 or a batch id like BAT-0007"
    NAME = "a group or host name, or a tag key=value"
    DURATION = "a duration like 24h"
    CHOICE = "a choice"
    TEXT = "some text"
    COMMAND = "a command name"


@dataclass(frozen=True)
class Param:
    """A positional argument (shown as `metavar`) or an option (`--key`)."""

    key: str
    kind: Kind
    metavar: str
    help: str = ""
    choices: tuple[str, ...] = ()
    required: bool = True  # positional arguments only
    # An option the command cannot go without (reject's --reason): usage
    # shows it unbracketed; the command's builder says what is missing.
    needed: bool = False
    example: str = ""

    @property
    def shown(self) -> str:
        return "|".join(self.choices) if self.choices else self.metavar

    @property
    def noun(self) -> str:
        return f"one of {either(self.choices)}" if self.choices else self.kind.value


class Values:
    """What the parser bound for one command, by `Param.key`, already validated."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)

    def get(self, key: str) -> str | None:
        return self._values.get(key)

    def need(self, key: str) -> str:
        return self._values[key]  # required parameters are bound before `build` runs


@dataclass(frozen=True)
class CommandSpec:
    name: str
    summary: str
    build: Callable[[Values], SlashRequest]
    args: tuple[Param, ...] = ()
    options: tuple[Param, ...] = ()
    rest: Param | None = None  # words after the arguments (create's free-text reason)
    # Words after the arguments when `rest` was given as an option: more of
    # the last argument (create's further VMs: `create WEB01 WEB02 --reason …`).
    more: Param | None = None
    bare: Callable[[], SlashRequest] | None = None  # what the command means with nothing after it
    bare_help: str = ""
    examples: tuple[str, ...] = ()
    details: str = ""
    # Words people type for this command; only used to suggest it, never accepted.
    synonyms: tuple[str, ...] = ()
    # Two arguments, the second a choice, taken in either order: `policy
    # rollback SQL01` as well as `policy SQL01 rollback` (and so the CLI).
    either_order: bool = False

    def option(self, key: str) -> Param | None:
        return next((o for o in self.options if o.key == key), None)


def _create(v: Values) -> SlashRequest:
    names = [*filter(None, [v.get("vm")]), *(v.get("more") or "").split()]
    group, host, tag, cluster = v.get("group"), v.get("host"), v.get("tag"), v.get("cluster")
    adders = [word for word in (group, host, cluster) if word]
    vm = single_vm(names, tags=[tag] if tag else [], adders=adders)
    if vm is None and (any(name.strip() for name in names) or adders or tag):
        if not v.get("reason"):
            raise Invalid(
                f"a reason is required: say why, e.g. {SLASH} create --group web-tier "
                '--reason "KB5044284"'
            )
        return WaveRequest(
            names=tuple(names),
            group=group,
            host=host,
            tag=tag,
            reason=v.need("reason"),
            checkpoint_type=v.get("type"),
            ttl_text=v.get("ttl"),
            at_text=v.get("at"),
            cluster=cluster,
        )
    if vm is None:
        raise Invalid(
            f"create needs a VM, --group, --host or --tag, e.g. {SLASH} create WEB01 patching "
            f"KB5044284 ({SLASH} create alone opens a form)"
        )
    if not v.get("reason"):
        shown = mrkdwn_escape(f'"{vm}"' if " " in vm else vm)
        raise Invalid(
            f'a reason is required: say why, e.g. {SLASH} create {shown} --reason "KB5044284"'
        )
    return CreateRequest(vm, v.need("reason"), v.get("type"), v.get("ttl"), v.get("at"))


def _reject(v: Values) -> SlashRequest:
    # The Reject… form has always required a reason; the command asks for
    # the same, naming its own syntax with the change it was given.
    ref, action = v.need("change"), v.get("request")
    reason = v.get("reason")
    if not reason:
        which = f" {action}" if action else ""
        raise Invalid(
            f"a reason is required to reject: say why, e.g. {SLASH} reject {ref}{which} "
            f'--reason "{REJECT_EXAMPLE}"'
        )
    return RejectRequest(ref, reason, action)


def _change_or_vm(v: Values) -> tuple[str | None, str | None]:
    """(CHG-n, None) or (None, a VM's name): a VM's name stands for its one
    change the action fits (bot/service/vm_target.py)."""
    target = v.need("target")
    ref = normalize_change_ref(target)
    return (ref, None) if ref else (None, target)


def _rollback(v: Values) -> SlashRequest:
    ref, vm = _change_or_vm(v)
    return RollbackRequest(change_ref=ref, vm=vm)


def _merge(v: Values) -> SlashRequest:
    ref, vm = _change_or_vm(v)
    return MergeRequest(change_ref=ref, vm=vm)


def _extend(v: Values) -> SlashRequest:
    ref, vm = _change_or_vm(v)
    return ExtendRequest(ref, v.need("duration"), vm=vm)


def _settings(v: Values) -> SlashRequest:
    automatic = v.get("automatic")
    return SettingsRequest(
        v.need("vm"),
        v.get("type"),
        None if automatic is None else automatic == "on",
        v.get("reason"),
    )


_TYPES = tuple(CheckpointKind)
_ACTIONS = ("create", "rollback", "merge", "extend")
_VM = Param("vm", Kind.VM, "VM")
_CHANGE = Param("change", Kind.CHANGE, "CHG-n")
# Which of a change's waiting requests: needed only when more than one waits.
_REQUEST = Param("request", Kind.CHOICE, "REQUEST", choices=_ACTIONS, required=False)

COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec(
        "create",
        "take a checkpoint before a risky change",
        _create,
        args=(Param("vm", Kind.VM, "VM", required=False),),
        options=(
            Param(
                "group",
                Kind.NAME,
                "NAME",
                help="a patch wave: the VMs of an inventory group (several VMs, --host and "
                "--tag make a wave too); you see a preview before anything is taken",
                example="web-tier",
            ),
            Param("host", Kind.NAME, "HOST", help="a wave of every VM on a host", example="HV01"),
            Param(
                "cluster",
                Kind.NAME,
                "CLUSTER",
                help="a wave of every VM on a failover cluster's nodes",
                example="prod-cluster",
            ),
            Param(
                "tag",
                Kind.NAME,
                "KEY=VALUE",
                help="a wave of the VMs with this tag (narrows --group and --host)",
                example="env=staging",
            ),
            Param(
                "type",
                Kind.CHOICE,
                "TYPE",
                help="production (VSS, no memory), production-only "
                "(fail rather than fall back) or standard (with memory)",
                choices=_TYPES,
                example="production",
            ),
            Param(
                "ttl",
                Kind.DURATION,
                "24h",
                help="how long before it must be merged or rolled back",
                example="48h",
            ),
            Param(
                "at",
                Kind.TEXT,
                '"2026-12-10 22:00"',
                help="take it then, not now: read in your Slack time zone (or write one "
                "after it, e.g. Europe/Berlin); the change windows still apply",
                example='"2026-12-10 22:00"',
            ),
            Param(
                "reason",
                Kind.TEXT,
                '"..."',
                help="why; required, and plain words after the VM work too",
                example='"KB5044284"',
            ),
        ),
        rest=Param("reason", Kind.TEXT, "REASON"),
        more=Param("more", Kind.VM, "VM"),
        bare=OpenCreateModal,
        bare_help=f"{SLASH} create alone opens a form",
        # The first is the one `/checkpoint help` shows: it names --reason,
        # which every create needs; the plain-words form comes last.
        examples=(
            'create WEB01 --reason "patching KB5044284"',
            'create STG-WEB01 --type production-only --ttl 48h --reason "IIS upgrade"',
            'create WEB01 WEB02 --reason "KB5044284"',
            'create --group web-tier --reason "KB5044284"',
            'create --group web-tier --at "2026-12-10 22:00" --reason "KB5044284"',
            "create WEB01 patching KB5044284",
        ),
        synonyms=("new", "take", "snapshot", "checkpoint", "make", "add"),
    ),
    CommandSpec(
        "list",
        "list checkpoints, everywhere or of one VM, host, cluster or group",
        lambda v: ListRequest(v.get("target")),
        args=(Param("target", Kind.TARGET, "VM|host|cluster|group", required=False),),
        examples=("list", "list WEB01", "list HV01", "list web-tier"),
        synonyms=("ls", "show", "checkpoints", "all"),
    ),
    CommandSpec(
        "rollback",
        "restore a change's checkpoint, discarding everything since",
        _rollback,
        args=(Param("target", Kind.CHANGE_OR_VM, "CHG-n|VM"),),
        examples=("rollback CHG-0042", "rollback WEB01"),
        details="A VM name means that VM's one active change (with several, name the change); "
        "CHG-n always means a change.",
        synonyms=("restore", "revert", "undo", "apply"),
    ),
    CommandSpec(
        "merge",
        "keep the change: delete the checkpoint, merging its disk",
        _merge,
        args=(Param("target", Kind.CHANGE_OR_VM, "CHG-n|VM"),),
        examples=("merge CHG-0042", "merge WEB01"),
        details="A VM name means that VM's one active or rolled-back change (with several, "
        "name the change).",
        synonyms=("keep", "commit", "delete", "remove", "done", "finish"),
    ),
    CommandSpec(
        "extend",
        "give a change's checkpoint more time",
        _extend,
        args=(
            Param("target", Kind.CHANGE_OR_VM, "CHG-n|VM"),
            Param("duration", Kind.DURATION, "24h"),
        ),
        examples=("extend CHG-0042 24h", "extend WEB01 24h"),
        details="A VM name means that VM's one active change (with several, name the change).",
        synonyms=("renew", "prolong", "postpone", "snooze", "ttl"),
    ),
    CommandSpec(
        "approve",
        "approve what a change waits for (a checkpoint, a rollback, a merge, an extension)",
        lambda v: ApproveRequest(v.need("change"), v.get("request")),
        args=(_CHANGE, _REQUEST),
        examples=("approve CHG-0042", "approve CHG-0042 rollback"),
        details="The answer names what you approved. When more than one thing waits, "
        "say which; never your own request.",
        synonyms=("ok", "allow", "accept", "yes", "lgtm"),
    ),
    CommandSpec(
        "reject",
        "reject what a change waits for",
        _reject,
        args=(_CHANGE, _REQUEST),
        options=(
            Param(
                "reason",
                Kind.TEXT,
                '"..."',
                help="why, for the record; required",
                example=f'"{REJECT_EXAMPLE}"',
                needed=True,
            ),
        ),
        examples=(
            'reject CHG-0042 --reason "not during the quarter-end close"',
            'reject CHG-0042 rollback --reason "wait for the backup"',
        ),
        details="The reason is required: the requester and the record get it. "
        "When more than one thing waits, say which.",
        synonyms=("deny", "refuse", "no", "decline"),
    ),
    CommandSpec(
        "withdraw",
        "take back your own request while it waits (for approval, or for its time)",
        lambda v: WithdrawRequest(v.need("change"), v.get("request")),
        args=(Param("change", Kind.CHANGE_OR_BATCH, "CHG-n|BAT-n"), _REQUEST),
        examples=("withdraw CHG-0042", "withdraw CHG-0042 rollback", "withdraw BAT-0007"),
        details="Only the requester can; nothing runs for it. When more than one of "
        "your requests waits, say which. A wave (BAT-n) withdraws what still waits in "
        "it: its checkpoints if the wave is yours, the wave's rollback or merge if you "
        "asked for it (`withdraw BAT-0007 rollback`: only that).",
        synonyms=("retract", "unrequest"),
    ),
    CommandSpec(
        "status",
        "show a change: state, owner, reason, deadline, history; alone, the open changes",
        lambda v: StatusRequest(v.need("change")),
        args=(_CHANGE,),
        bare=ChangesRequest,
        examples=("status CHG-0042", "status"),
        details="With nothing after it: the open changes, newest first, and what each "
        "waits for (`checkpoint-bot change list` on the CLI).",
        synonyms=("info", "get", "change", "changes", "state", "describe", "open"),
    ),
    CommandSpec(
        "batch",
        "show a patch wave: each VM, its host, state and checkpoint taken",
        lambda v: BatchRequest(v.need("batch")),
        args=(Param("batch", Kind.BATCH, "BAT-n"),),
        examples=("batch BAT-0007",),
        details=f"Waves are made with `{SLASH} create WEB01 WEB02 …` or "
        f"`{SLASH} create --group NAME`.",
        synonyms=("wave", "waves"),
    ),
    CommandSpec(
        "policy",
        "explain what the guardrails say about an action on a VM",
        lambda v: PolicyRequest(v.need("vm"), v.get("action") or "create"),
        args=(_VM, Param("action", Kind.CHOICE, "ACTION", choices=_ACTIONS, required=False)),
        examples=("policy CORP-DC01", "policy SQL01 rollback"),
        details="The action defaults to create, and may come before the VM.",
        synonyms=("explain", "why", "can", "rules", "check", "guardrails"),
        either_order=True,
    ),
    CommandSpec(
        "windows",
        "show the change windows",
        lambda v: WindowsRequest(),
        examples=("windows",),
        synonyms=("window", "maintenance", "schedule", "when"),
    ),
    CommandSpec(
        "settings",
        "show a VM's checkpoint settings, or change them",
        _settings,
        args=(_VM,),
        options=(
            Param(
                "type",
                Kind.CHOICE,
                "TYPE",
                help="checkpoint type the VM takes",
                choices=(*_TYPES, "disabled"),
                example="production",
            ),
            Param(
                "automatic",
                Kind.CHOICE,
                "on|off",
                help="Hyper-V automatic checkpoints when the VM starts",
                choices=("on", "off"),
                example="off",
            ),
            Param(
                "reason",
                Kind.TEXT,
                '"..."',
                help="why, for the record (needed to change them)",
                example='"no checkpoints at boot"',
            ),
        ),
        examples=(
            "settings WEB01",
            'settings WEB01 --type production --automatic off --reason "no checkpoints at boot"',
        ),
        details="Without options it only shows them; a change needs a reason.",
        synonyms=("set", "config", "configure", "setting", "vm"),
    ),
    CommandSpec(
        "help",
        "this help; help COMMAND shows one command",
        lambda v: HelpRequest(v.get("topic")),
        args=(Param("topic", Kind.COMMAND, "COMMAND", required=False),),
        examples=("help create",),
        synonyms=("?", "usage", "commands", "man"),
    ),
)

BY_NAME: Mapping[str, CommandSpec] = MappingProxyType({c.name: c for c in COMMANDS})
