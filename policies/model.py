"""The engine's data: what is asked, what is known, what is decided.

Fact names the facts provider (`bot/facts.py`) supplies — rules may rely on
exactly these; any of them may be unknown (`Fact.known is False`, and then
`Fact.value` carries the reason):

    from the inventory (source "inventory <file>"):
      vm_name            str
      roles              list[str]   Role values, e.g. "domain_controller"
      tags               dict[str, str]
      domain             str         unknown when the inventory gives none
      domain_dcs         list[str]   names of every DC (RW or RO) of `domain`
      host               str
      host_group         str | None
      app_group          str | None  AG / DAG / cluster / DFS-R group name
      inv_shared_disk    bool        shared_vhdx or vhd_set in the inventory
      inv_passthrough    bool
      inv_fibre_channel  bool
      inv_hyperv_replica bool
      inv_checkpoint_type str        "Production" | "ProductionOnly" | "Standard" | "Disabled"
    from discovery on the host (source "host <name>", with observed_at):
      kvp_product_type   int         2 = domain controller (unknown: VM not running, no KVP
                                     exchange, or the endpoint's role hides Get-CimInstance;
                                     the unknown fact's value says which)
      disk_shared        bool        any disk with SupportPersistentReservations
      disk_passthrough   bool
      disk_fibre_channel bool
      replication_enabled bool
      checkpoint_count   int
      volume_free_bytes  int
      volume_capacity_bytes int
      vm_checkpoint_type str         the VM's CheckpointType setting now
      vm_state           str         "Running", "Off", ...
      owner_host         str         the node that has the VM now (a clustered VM moves)
      host_vm_name       str         the VM's name on the host (Rename-VM keeps its VMId)
    from the change record (source "change CHG-n"), for rollback/merge/extend:
      expires_at         datetime
      ttl_seconds        int
      change_created_at  datetime    when the change was opened (the lifetime's start)
    derived by the provider:
      contradictions     list[str]   where discovery disagrees with the inventory (only
                                     pairs both sides of which are known; the drift rule
                                     names the pairs that were not compared)

Where the inventory and discovery both speak to one risk, the rules take the
riskier reading: either source saying "yes" is a known "yes"; "no" needs both.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from typing import Any

from bot.domain import group_mention, user_mention


class Action(enum.StrEnum):
    CREATE = "create"
    ROLLBACK = "rollback"
    MERGE = "merge"
    EXTEND = "extend"


class Verdict(enum.StrEnum):
    ALLOW = "allow"
    NEEDS_APPROVAL = "needs_approval"
    DENY = "deny"


class Effect(enum.StrEnum):
    """What a fired rule does to the verdict. `schedule` keeps the verdict
    and sets `Decision.schedule_at`; `warn` only informs."""

    DENY = "deny"
    NEEDS_APPROVAL = "needs_approval"
    SCHEDULE = "schedule"
    WARN = "warn"


class OutcomeKind(enum.StrEnum):
    FIRED = "fired"  # the rule objects (or warns): see `effect`
    PASSED = "passed"  # the rule looked and found nothing wrong
    EXEMPT = "exempt"  # it would have fired, but a live exemption covers this VM
    DISABLED = "disabled"  # switched off for this VM's scope by the policy
    NOT_APPLICABLE = "not_applicable"  # the rule has nothing to say about this action


class Permission(enum.StrEnum):
    REQUEST = "request"
    APPROVE = "approve"
    ROLLBACK = "rollback"
    MERGE = "merge"
    EXTEND = "extend"

    @property
    def verb(self) -> str:
        """The permission as a verb in a sentence ("may roll back"); the
        value stays the policy file's key (`permissions.rollback`)."""
        return "roll back" if self is Permission.ROLLBACK else self.value


# The permission each action needs; creating a checkpoint is "requesting" one.
ACTION_PERMISSION = {
    Action.CREATE: Permission.REQUEST,
    Action.ROLLBACK: Permission.ROLLBACK,
    Action.MERGE: Permission.MERGE,
    Action.EXTEND: Permission.EXTEND,
}


def jsonable(value: Any) -> Any:
    """Fact values as JSON: datetimes as ISO text, durations as seconds."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return int(value.total_seconds())
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted(jsonable(v) for v in value)
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


@dataclass(frozen=True, slots=True)
class Fact:
    """A value with its provenance. `known=False` means nobody could tell;
    rules treat that as a reason to refuse, never to allow.

    Slotted: a fleet's facts are most of the objects the garbage collector
    walks while decisions are made (bench/policy_eval.py), and a slotted
    one is a third of the size, without an instance dict."""

    value: Any
    source: str
    observed_at: datetime | None = None
    known: bool = True

    @classmethod
    def unknown(cls, source: str, why: str = "") -> Fact:
        return cls(value=why or None, source=source, known=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": jsonable(self.value),
            "source": self.source,
            "known": self.known,
            "observed_at": self.observed_at.isoformat() if self.observed_at else None,
        }


@dataclass(frozen=True, slots=True)
class Request:
    action: Action
    vm_name: str
    vm_id: str
    requester: str
    # a CheckpointKind word (bot.domain), or None (the VM's setting)
    checkpoint_type: str | None = None
    ttl: timedelta | None = None  # create: requested lifetime; None = the scope's default
    extend_to: datetime | None = None  # extend: the new expiry
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class Facts:
    """Named facts about one VM (and its surroundings)."""

    values: Mapping[str, Fact] = field(default_factory=dict)

    def get(self, name: str, source: str = "nowhere") -> Fact:
        found = self.values.get(name)
        if found is not None:
            return found
        return _not_gathered(name, source)


@functools.lru_cache(maxsize=256)
def _not_gathered(name: str, source: str) -> Fact:
    # Immutable, and the same for every VM that lacks the fact: made once.
    return Fact.unknown(source, f"fact '{name}' was not gathered")


@dataclass(frozen=True)
class ApprovalRequirement:
    """Who may approve: `required` distinct people, each listed in `users`
    (or "*" = anyone) or a member of one of `groups`; never one of `excluded`
    (the requester)."""

    required: int
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
    # Also message each listed user directly when an approval is asked
    # (the approvals rule's `dm`); the thread pings them either way.
    dm: bool = False

    @property
    def anyone(self) -> bool:
        return "*" in self.users or "*" in self.groups

    def describe(self) -> str:
        noun = "approval" if self.required == 1 else "approvals"
        if self.anyone:
            who = "anyone"
        else:
            # The requester is never an approver, so never named as one (nor
            # pinged by the "Approval needed" reply that shows this).
            items = [user_mention(u) for u in self.users if u not in self.excluded]
            if self.groups:
                items.append("a member of " + " or ".join(group_mention(g) for g in self.groups))
            if items:
                who = _or_list(items)
            elif self.users:
                return f"{self.required} {noun}, but the policy names no approver but the requester"
            else:
                who = "nobody (no approvers configured)"
        return f"{self.required} {noun} from {who} (not the requester)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "required": self.required,
            "users": list(self.users),
            "groups": list(self.groups),
            "excluded": list(self.excluded),
            "dm": self.dm,
            "description": self.describe(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ApprovalRequirement:
        """Back from `to_dict()` (as stored with a pending approval);
        `description` is derived, so it is ignored."""
        return cls(
            required=int(data.get("required", 1)),
            users=tuple(str(u) for u in data.get("users", ())),
            groups=tuple(str(g) for g in data.get("groups", ())),
            excluded=tuple(str(e) for e in data.get("excluded", ())),
            dm=bool(data.get("dm", False)),
        )


def _or_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


@dataclass(frozen=True)
class ExemptionNote:
    """The exemption that covered a rule (or had expired) for this VM."""

    vm: str
    reason: str
    approved_by: str
    expires: date
    expired: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "vm": self.vm,
            "reason": self.reason,
            "approved_by": self.approved_by,
            "expires": self.expires.isoformat(),
            "expired": self.expired,
        }


class _Empty(Mapping[str, Any]):
    """The one empty, read-only mapping outcomes share when they name no
    facts or adjustments (most do not), instead of two new dicts each."""

    __slots__ = ()

    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "{}"

    def __reduce__(self) -> str:
        return "EMPTY"  # pickled by name: unpickles to this same object


EMPTY: Mapping[str, Any] = _Empty()


@dataclass(frozen=True, slots=True, init=False)
class RuleOutcome:
    """One rule's answer. `message` always explains, also when it passed
    (the dry-run explanation `policy explain` shows).

    Immutable, so one outcome may stand in many decisions (the cached
    `not_applicable` and permission answers). Slotted, and its `__init__`
    written out: a decision makes a dozen of these, and a frozen dataclass's
    own `__init__` (each field through `object.__setattr__`) plus an instance
    dict each were a third of a decision's time (bench/policy_eval.py)."""

    rule: str
    outcome: OutcomeKind
    effect: Effect | None
    message: str
    remediation: str = ""
    facts: Mapping[str, Fact] = field(default_factory=dict)
    adjustments: Mapping[str, Any] = field(default_factory=dict)
    approval: ApprovalRequirement | None = None
    schedule_at: datetime | None = None
    exemption: ExemptionNote | None = None
    # Fired because a fact it needs is unknown (fail closed), not because
    # of what a known fact says: knowing more may settle it either way.
    for_want_of_facts: bool = False

    def __init__(
        self,
        rule: str,
        outcome: OutcomeKind,
        effect: Effect | None,
        message: str,
        remediation: str = "",
        facts: Mapping[str, Fact] | None = None,
        adjustments: Mapping[str, Any] | None = None,
        approval: ApprovalRequirement | None = None,
        schedule_at: datetime | None = None,
        exemption: ExemptionNote | None = None,
        for_want_of_facts: bool = False,
    ) -> None:
        # The slots' own setters: what object.__setattr__ ends in, without
        # the frozen check on the way.
        _set_rule(self, rule)
        _set_outcome(self, outcome)
        _set_effect(self, effect)
        _set_message(self, message)
        _set_remediation(self, remediation)
        _set_facts(self, facts or EMPTY)
        _set_adjustments(self, adjustments or EMPTY)
        _set_approval(self, approval)
        _set_schedule_at(self, schedule_at)
        _set_exemption(self, exemption)
        _set_for_want_of_facts(self, for_want_of_facts)

    @property
    def fired(self) -> bool:
        return self.outcome is OutcomeKind.FIRED

    @property
    def blocking(self) -> bool:
        return self.outcome is OutcomeKind.FIRED and (
            self.effect is Effect.DENY or self.effect is Effect.NEEDS_APPROVAL
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.rule,
            "rule": self.rule,  # kept for records written before `id`
            "outcome": self.outcome.value,
            "fired": self.fired,
            "effect": self.effect.value if self.effect else None,
            "message": self.message,
            "remediation": self.remediation,
            "facts": {k: f.to_dict() for k, f in self.facts.items()},
            "adjustments": jsonable(self.adjustments),
            "exemption": self.exemption.to_dict() if self.exemption else None,
            "schedule_at": self.schedule_at.isoformat() if self.schedule_at else None,
        }


(
    _set_rule,
    _set_outcome,
    _set_effect,
    _set_message,
    _set_remediation,
    _set_facts,
    _set_adjustments,
    _set_approval,
    _set_schedule_at,
    _set_exemption,
    _set_for_want_of_facts,
) = (getattr(RuleOutcome, f.name).__set__ for f in fields(RuleOutcome))


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    outcomes: tuple[RuleOutcome, ...]
    adjustments: Mapping[str, Any] = field(default_factory=dict)
    approval: ApprovalRequirement | None = None
    # Set when a change window defers the work: the verdict is not deny, and
    # the caller schedules the action for this instant (UTC) instead of now.
    schedule_at: datetime | None = None

    @property
    def fired(self) -> tuple[RuleOutcome, ...]:
        return tuple([o for o in self.outcomes if o.outcome is OutcomeKind.FIRED])

    @property
    def reasons(self) -> list[str]:
        return [o.message for o in self.fired if o.effect is not Effect.WARN]

    @property
    def warnings(self) -> list[str]:
        return [o.message for o in self.fired if o.effect is Effect.WARN]

    @property
    def refusals(self) -> list[str]:
        """What refuses it: the deny rules that fired (not an approval a
        refused request would also have needed)."""
        return [o.message for o in self.fired if o.effect is Effect.DENY]

    def outcome(self, rule: str) -> RuleOutcome | None:
        return next((o for o in self.outcomes if o.rule == rule), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value,
            "rules": [o.to_dict() for o in self.outcomes],
            "adjustments": jsonable(self.adjustments),
            "approval": self.approval.to_dict() if self.approval else None,
            "schedule_at": self.schedule_at.isoformat() if self.schedule_at else None,
        }
