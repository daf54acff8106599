"""A loaded policy, ready to answer "which settings apply to this VM?", and
the `Context` an evaluation carries it in.

Built by `policies.config` (which validates everything); pure and immutable
from then on, so one Policy can serve every evaluation concurrently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from policies.model import Effect, Fact, Facts, Permission
from policies.params import ResolvedRule, RuleParams
from policies.schema import ExemptionConfig, PermissionConfig, PermissionsConfig, Principals, Scope
from policies.scopes import ScopeMatcher, compile_scope
from policies.windows import Window

# Settings merged for one combination of matching overrides are kept (they
# depend on nothing else); a rule with many overrides keeps at most this many.
_MERGED_KEPT = 256


@dataclass(frozen=True)
class CompiledOverride:
    scope: Scope
    enabled: bool | None
    effect: Effect | None
    params: Mapping[str, Any]  # validated values of just the keys it sets
    matcher: ScopeMatcher = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "matcher", compile_scope(self.scope))


@dataclass(frozen=True)
class CompiledRule:
    """One rule as loaded: its base settings, made once, and its overrides.

    What a decision needs is ready before the first one: the base
    `ResolvedRule`, each override's compiled scope, and (kept as they are
    first met) the settings merged for each combination of overrides, so no
    decision copies a params model (bench/policy_eval.py)."""

    id: str
    enabled: bool
    effect: Effect
    params: RuleParams
    overrides: tuple[CompiledOverride, ...] = ()
    base: ResolvedRule = field(init=False, repr=False, compare=False)
    _merged: dict[tuple[int, ...], ResolvedRule] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        base = ResolvedRule(self.id, self.enabled, self.effect, self.params)
        object.__setattr__(self, "base", base)

    def merged(self, matched: tuple[int, ...]) -> ResolvedRule:
        """The settings with the overrides at `matched` applied in order
        (later ones win, key by key)."""
        found = self._merged.get(matched)
        if found is not None:
            return found
        enabled, effect = self.enabled, self.effect
        update: dict[str, Any] = {}
        for index in matched:
            override = self.overrides[index]
            enabled = enabled if override.enabled is None else override.enabled
            effect = effect if override.effect is None else override.effect
            update.update(override.params)
        params = self.params.model_copy(update=update) if update else self.params
        scopes = tuple(self.overrides[i].matcher.description for i in matched)
        found = ResolvedRule(self.id, enabled, effect, params, scopes)
        if len(self._merged) < _MERGED_KEPT:
            # Racing threads store equal values: the merge is a pure function.
            self._merged[matched] = found
        return found


@dataclass(frozen=True)
class ScopeUnknown:
    """An override's scope could not be decided: the rule's settings for this
    VM are unknown, so it must fail closed with its base `on_unknown`."""

    base: ResolvedRule
    facts: Mapping[str, Fact]


@dataclass(frozen=True)
class Policy:
    rules: Mapping[str, CompiledRule]
    admins: Principals
    permissions: PermissionsConfig
    windows: tuple[Window, ...] = ()
    exemptions: tuple[ExemptionConfig, ...] = ()
    sources: tuple[str, ...] = ()
    _exemptions_by_rule: Mapping[str, tuple[ExemptionConfig, ...]] = field(
        init=False, repr=False, compare=False
    )
    # What the engine and the permission check work out once per policy and
    # then reuse (policies.engine, policies.access): pure functions of this
    # immutable policy, so a policy loaded anew starts empty.
    memo: dict[Any, Any] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        by_rule: dict[str, list[ExemptionConfig]] = {}
        for e in self.exemptions:
            by_rule.setdefault(e.rule, []).append(e)
        object.__setattr__(
            self, "_exemptions_by_rule", {rule: tuple(es) for rule, es in by_rule.items()}
        )

    def permission(self, permission: Permission) -> PermissionConfig:
        found: PermissionConfig = getattr(self.permissions, permission.value)
        return found

    def resolve(self, rule_id: str, facts: Facts) -> ResolvedRule | ScopeUnknown:
        """The rule's settings for this VM: base, then each matching override
        in order (later ones win, key by key)."""
        compiled = self.rules[rule_id]
        if not compiled.overrides:
            return compiled.base
        matched: list[int] = []
        undecided = False
        for index, override in enumerate(compiled.overrides):
            matches = override.matcher.decide(facts)
            if matches is None:
                undecided = True
            elif matches:
                matched.append(index)
        if undecided:
            # Rare: now name the unknown facts of every undecided scope.
            unknown: dict[str, Fact] = {}
            for override in compiled.overrides:
                matches, used = override.matcher.matches(facts)
                if matches is None:
                    unknown.update({k: f for k, f in used.items() if not f.known})
            return ScopeUnknown(compiled.base, unknown)
        if not matched:
            return compiled.base
        return compiled.merged(tuple(matched))

    def exemptions_for(self, rule_id: str) -> tuple[ExemptionConfig, ...]:
        """The exemptions naming `rule_id`, in the policy's order."""
        return self._exemptions_by_rule.get(rule_id, ())

    def rule_settings(self, rule_id: str, facts: Facts) -> tuple[ResolvedRule, bool]:
        """The rule's settings for this VM and whether its scope was decided:
        where an override's scope cannot be told, the base settings. For
        callers that need a value (a default TTL, who may approve); a rule
        deciding a verdict uses `resolve` and fails closed instead."""
        resolved = self.resolve(rule_id, facts)
        if isinstance(resolved, ScopeUnknown):
            return resolved.base, False
        return resolved, True


@dataclass(frozen=True, slots=True)
class Context:
    """Everything besides the request and the facts: the time, the policy,
    and who is asking from where (groups resolved by the caller)."""

    now: datetime
    # Required: the shipped policy is a YAML file, and reading it is I/O the
    # engine must not do. Build it once with `load_policy()` at the entry point.
    policy: Policy
    groups: frozenset[str] = frozenset()
    channel: str | None = None

    def __post_init__(self) -> None:
        if self.now.tzinfo is None:
            raise ValueError("Context.now must be timezone-aware (windows are DST-sensitive)")
