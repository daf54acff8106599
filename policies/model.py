"""The engine's data: what is asked, what is known, what is decided."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


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
    DENY = "deny"
    NEEDS_APPROVAL = "needs_approval"
    WARN = "warn"


_SEVERITY = {Verdict.ALLOW: 0, Verdict.NEEDS_APPROVAL: 1, Verdict.DENY: 2}


@dataclass(frozen=True)
class Fact:
    """A value with its provenance. `known=False` means nobody could tell;
    rules treat that as a reason to refuse, never to allow."""

    value: Any
    source: str
    observed_at: datetime | None = None
    known: bool = True

    @classmethod
    def unknown(cls, source: str, why: str = "") -> Fact:
        return cls(value=why or None, source=source, known=False)


@dataclass(frozen=True)
class Request:
    action: Action
    vm_name: str
    vm_id: str
    requester: str
    checkpoint_type: str | None = None


@dataclass(frozen=True)
class Facts:
    """Named facts about one VM (and its surroundings)."""

    values: dict[str, Fact] = field(default_factory=dict)

    def get(self, name: str, source: str = "nowhere") -> Fact:
        return self.values.get(name) or Fact.unknown(source, f"fact '{name}' was not gathered")


@dataclass(frozen=True)
class Context:
    now: datetime


@dataclass(frozen=True)
class RuleOutcome:
    rule: str
    fired: bool
    effect: Effect | None
    message: str
    remediation: str = ""
    facts: dict[str, Fact] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    outcomes: tuple[RuleOutcome, ...]
    adjustments: dict[str, Any] = field(default_factory=dict)

    @property
    def fired(self) -> tuple[RuleOutcome, ...]:
        return tuple(o for o in self.outcomes if o.fired)

    @property
    def reasons(self) -> list[str]:
        return [o.message for o in self.fired if o.effect is not Effect.WARN]

    @property
    def warnings(self) -> list[str]:
        return [o.message for o in self.fired if o.effect is Effect.WARN]

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value,
            "rules": [
                {
                    "rule": o.rule,
                    "fired": o.fired,
                    "effect": o.effect.value if o.effect else None,
                    "message": o.message,
                    "remediation": o.remediation,
                    "facts": {
                        k: {"value": f.value, "source": f.source, "known": f.known}
                        for k, f in o.facts.items()
                    },
                }
                for o in self.outcomes
            ],
            "adjustments": self.adjustments,
        }


def combine(outcomes: tuple[RuleOutcome, ...]) -> Verdict:
    """The strictest effect among fired rules decides; warnings don't."""
    verdict = Verdict.ALLOW
    for o in outcomes:
        if not o.fired or o.effect in (None, Effect.WARN):
            continue
        candidate = Verdict.DENY if o.effect is Effect.DENY else Verdict.NEEDS_APPROVAL
        if _SEVERITY[candidate] > _SEVERITY[verdict]:
            verdict = candidate
    return verdict
