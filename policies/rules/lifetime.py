"""How long a checkpoint lives, and what its growth does to the volume.

A checkpoint is short-term protection: the differencing disk grows with every
write, slows the VM and, if the volume fills, pauses every VM on it.
"""

from __future__ import annotations

import functools
from datetime import timedelta
from typing import Literal, Self

from pydantic import Field, model_validator

from bot.clock import utc_text
from bot.durations import format_duration
from policies.model import Action, Effect, Facts, OutcomeKind, Request, RuleOutcome
from policies.params import ParamsConflict, ResolvedRule, RuleParams
from policies.policy import Context
from policies.rules.base import RuleSpec, fire, not_applicable, passed, unknown
from policies.schema import Duration

_GB = 1024**3
_MB = 1024**2
# The settings' durations come back in every decision's message: their text
# is made once (durations are immutable, the text a pure function of them).
_duration_text = functools.lru_cache(maxsize=256)(format_duration)


class TTLParams(RuleParams):
    # Peer practice: VMware advises at most 72 hours per snapshot; monitoring
    # tools alert after 7-14 days.
    default: Duration = timedelta(hours=72)
    max: Duration = timedelta(days=7)
    # Going past the maximum lifetime on extend is a judgement call, not a refusal.
    beyond_max_on_extend: Literal["deny", "needs_approval"] = "needs_approval"
    # The change's start being unknown costs at most an approval.
    on_unknown: Literal["deny", "needs_approval"] = "needs_approval"
    # Reminders to the requester and the thread, this long before expiry.
    remind_before: list[Duration] = Field(
        default_factory=lambda: [timedelta(hours=24), timedelta(hours=1)]
    )
    # Merge (keep) a checkpoint this long after it expired, if nobody
    # decided; for scopes whose owners agreed to it. Never a rollback.
    auto_merge: bool = False
    auto_merge_grace: Duration = timedelta(hours=1)

    @model_validator(mode="after")
    def _default_fits(self) -> Self:
        if any(point <= timedelta(0) for point in self.remind_before):
            raise ValueError("remind_before: every reminder must be some time before expiry")
        if self.auto_merge_grace < timedelta(0):
            raise ValueError("auto_merge_grace must not be negative")
        if self.default > self.max:
            raise ttl_conflict(self.default, self.max)
        return self


def ttl_conflict(default: timedelta, most: timedelta) -> ParamsConflict:
    """A `default` longer than `max`, worded for whichever of the two the
    policy file set last (the other may be the shipped policy's)."""
    d, m = format_duration(default), format_duration(most)
    return ParamsConflict(
        f"default ({d}) is longer than max ({m})",
        blame={
            "default": f"{d} is longer than the max ({m}, from {{origin}}); set max too",
            "max": f"{m} is shorter than the default ({d}, from {{origin}}); set default too",
        },
        together="default",
        together_text=f"{d} is longer than max ({m}): make default at most {m}, or raise max",
    )


def ttl_past_maximum(asked: str, most: str) -> tuple[str, str]:
    """A TTL longer than the maximum, in the rule's words: (message,
    remediation). `asked` as the person wrote it, so a TTL past any
    duration's bound (a year, which the create form checks before the
    policy is asked: bot.service.lookups.ttl_refusal) reads as this rule's
    refusal does, not as the parser's."""
    return (
        f"a TTL of {asked} is more than the maximum of {most}: "
        "a checkpoint is short-term protection, not a backup",
        f"ask for at most {most}",
    )


@functools.lru_cache(maxsize=64)
def _default_ttl(rule: str, default: timedelta) -> RuleOutcome:
    # The same answer for every create that asks for no TTL in this scope:
    # made once (outcomes are immutable).
    return RuleOutcome(
        rule,
        OutcomeKind.PASSED,
        None,
        f"no TTL asked for: the checkpoint expires after the default {_duration_text(default)}",
        adjustments={"ttl_seconds": int(default.total_seconds())},
    )


def ttl(req: Request, facts: Facts, ctx: Context, rule: ResolvedRule) -> RuleOutcome:
    p = rule.params
    assert isinstance(p, TTLParams)
    most = _duration_text(p.max)
    if req.action is Action.CREATE:
        if req.ttl is None:
            return _default_ttl(rule.id, p.default)
        if req.ttl <= timedelta(0):
            return fire(rule, "the TTL must be longer than zero", f"ask for at most {most}", {})
        if req.ttl > p.max:
            return fire(rule, *ttl_past_maximum(format_duration(req.ttl), most), {})
        return passed(rule, f"a TTL of {format_duration(req.ttl)} is within the {most} maximum", {})
    if req.action is not Action.EXTEND:
        return not_applicable(rule, f"{req.action.value} does not change the lifetime")
    if req.extend_to is None:
        return fire(rule, "extend needs the new expiry", "say how long to extend by", {})
    if req.extend_to <= ctx.now:
        return fire(rule, "the new expiry is in the past", "ask for an expiry after now", {})
    created = facts.get("change_created_at")
    used = {"change_created_at": created}
    if not created.known or created.value is None:
        return unknown(rule, req.vm_name, used, "when the change began (its lifetime so far)")
    lifetime = req.extend_to - created.value
    if lifetime > p.max:
        return fire(
            rule,
            f"extending to {utc_text(req.extend_to)} makes the checkpoint live "
            f"{format_duration(lifetime)} in all, more than the {most} maximum",
            "merge it and take a fresh one after the change, or get an approval",
            used,
            effect=Effect(p.beyond_max_on_extend),
        )
    return passed(
        rule, f"a total lifetime of {format_duration(lifetime)} is within the {most} maximum", used
    )


class StorageParams(RuleParams):
    min_free_percent: float = Field(default=15, ge=0, lt=100)
    # Expected differencing-disk growth. 1000 MB/h (~24 GB a day) is on the
    # safe side for ordinary servers; give data-heavy scopes their own figure.
    write_mb_per_hour: float = Field(default=1000, ge=0)


def storage_headroom(req: Request, facts: Facts, ctx: Context, rule: ResolvedRule) -> RuleOutcome:
    p = rule.params
    assert isinstance(p, StorageParams)
    vm = req.vm_name
    if req.action is Action.CREATE:
        hours = _create_ttl(req, facts, ctx).total_seconds() / 3600
    elif req.action is Action.EXTEND and req.extend_to is not None:
        hours = max(0.0, (req.extend_to - ctx.now).total_seconds() / 3600)
    else:
        return not_applicable(rule, f"{req.action.value} does not grow a checkpoint")
    free, capacity = facts.get("volume_free_bytes"), facts.get("volume_capacity_bytes")
    used = {"volume_free_bytes": free, "volume_capacity_bytes": capacity}
    if not (free.known and capacity.known) or not capacity.value:
        return unknown(rule, vm, used, "how much space its checkpoint volume has")
    growth = p.write_mb_per_hour * _MB * hours
    after = float(free.value) - growth
    percent = 100 * after / float(capacity.value)
    numbers = (
        f"{free.value / _GB:,.0f} GB free of {capacity.value / _GB:,.0f} GB, minus "
        f"{growth / _GB:,.0f} GB expected growth ({p.write_mb_per_hour:g} MB/h for {hours:g}h)"
        f" leaves {percent:.1f}%"
    )
    if percent < p.min_free_percent:
        return fire(
            rule,
            f"the checkpoint volume of {vm} would drop below {p.min_free_percent:g}% free: "
            f"{numbers}; a full volume pauses every VM on it",
            "free space on the volume, merge old checkpoints, or ask for a shorter TTL",
            used,
        )
    return passed(rule, f"enough space: {numbers} (minimum {p.min_free_percent:g}%)", used)


def _create_ttl(req: Request, facts: Facts, ctx: Context) -> timedelta:
    """The lifetime the checkpoint will get: asked for, else the ttl rule's default."""
    if req.ttl is not None:
        return req.ttl
    # Unknown scope: the base default; the ttl rule itself fails closed on it.
    params = ctx.policy.rule_settings("ttl", facts)[0].params
    return params.default if isinstance(params, TTLParams) else TTLParams().default


SPECS = (
    RuleSpec(
        "storage_headroom",
        storage_headroom,
        StorageParams,
        Effect.DENY,
        "the volume keeps `min_free_percent` free after the expected growth over the TTL",
    ),
    RuleSpec(
        "ttl",
        ttl,
        TTLParams,
        Effect.DENY,
        "default and maximum checkpoint lifetime",
    ),
)
