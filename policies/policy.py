"""A loaded policy, ready to answer "which settings apply to this VM?", and
the `Context` an evaluation carries it in.

Built by `policies.config` (which validates everything); pure and immutable
from then on, so one Policy can serve every evaluation concurrently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from policies.model import Effect, Fact, Facts, Permission
from policies.params import ResolvedRule, RuleParams
from policies.schema import ExemptionConfig, PermissionConfig, PermissionsConfig, Principals, Scope
from policies.scopes import scope_matches
from policies.windows import Window


@dataclass(frozen=True)
class CompiledOverride:
    scope: Scope
    enabled: bool | None
    effect: Effect | None
    params: Mapping[str, Any]  # validated values of just the keys it sets


@dataclass(frozen=True)
class CompiledRule:
    id: str
    enabled: bool
    effect: Effect
    params: RuleParams
    overrides: tuple[CompiledOverride, ...] = ()


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

    def permission(self, permission: Permission) -> PermissionConfig:
        found: PermissionConfig = getattr(self.permissions, permission.value)
        return found

    def resolve(self, rule_id: str, facts: Facts) -> ResolvedRule | ScopeUnknown:
        """The rule's settings for this VM: base, then each matching override
        in order (later ones win, key by key)."""
        compiled = self.rules[rule_id]
        base = ResolvedRule(compiled.id, compiled.enabled, compiled.effect, compiled.params)
        enabled, effect = compiled.enabled, compiled.effect
        update: dict[str, Any] = {}
        scopes: list[str] = []
        undecided: dict[str, Fact] = {}
        for override in compiled.overrides:
            matches, used = scope_matches(override.scope, facts)
            if matches is None:
                undecided.update({k: f for k, f in used.items() if not f.known})
                continue
            if not matches:
                continue
            scopes.append(override.scope.describe())
            enabled = enabled if override.enabled is None else override.enabled
            effect = effect if override.effect is None else override.effect
            update.update(override.params)
        if undecided:
            return ScopeUnknown(base, undecided)
        if not scopes:
            return base
        params = compiled.params.model_copy(update=update) if update else compiled.params
        return ResolvedRule(compiled.id, enabled, effect, params, tuple(scopes))

    def rule_settings(self, rule_id: str, facts: Facts) -> tuple[ResolvedRule, bool]:
        """The rule's settings for this VM and whether its scope was decided:
        where an override's scope cannot be told, the base settings. For
        callers that need a value (a default TTL, who may approve); a rule
        deciding a verdict uses `resolve` and fails closed instead."""
        resolved = self.resolve(rule_id, facts)
        if isinstance(resolved, ScopeUnknown):
            return resolved.base, False
        return resolved, True


@dataclass(frozen=True)
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
