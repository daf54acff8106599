"""Does a scope cover this VM? Yes, no, or unknown (a fact it needs is unknown).

Tri-state on purpose: a scope that cannot be decided must not quietly fall
back to the looser default, so callers fail closed on `None`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import translate
from typing import Any

from policies.model import Fact, Facts
from policies.schema import Scope

# What each criterion reads.
SCOPE_FACTS = {
    "tags": "tags",
    "names": "vm_name",
    "host_groups": "host_group",
    "domains": "domain",
    "roles": "roles",
}


@dataclass(frozen=True)
class ScopeMatcher:
    """A scope made ready once, when the policy loads: its values casefolded,
    its name globs compiled into one regular expression, and the list of
    (fact, test) it checks built, so a decision compiles and builds nothing
    (bench/policy_eval.py)."""

    scope: Scope
    description: str
    everything: bool
    tags: tuple[tuple[str, str], ...]
    names: re.Pattern[str] | None
    host_groups: frozenset[str]
    domains: frozenset[str]
    roles: frozenset[str]
    checks: tuple[tuple[str, Callable[[Any], bool]], ...] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        checks: list[tuple[str, Callable[[Any], bool]]] = []
        if self.tags:
            checks.append(("tags", self._tags_match))
        if self.names is not None:
            checks.append(("vm_name", self._name_match))
        if self.host_groups:
            checks.append(("host_group", self._host_group_match))
        if self.domains:
            checks.append(("domain", self._domain_match))
        if self.roles:
            checks.append(("roles", self._roles_match))
        object.__setattr__(self, "checks", tuple(checks))

    def matches(self, facts: Facts) -> tuple[bool | None, dict[str, Fact]]:
        """(True | False | None, the facts consulted). All given criteria must
        match: one that does not makes it False, else one whose fact is
        unknown makes it None. Every criterion is consulted, so the facts
        named are the same whichever fails."""
        if self.everything:
            return True, {}
        used: dict[str, Fact] = {}
        answer: bool | None = True
        for name, test in self.checks:
            fact = facts.get(name)
            used[name] = fact
            if not fact.known:
                if answer:
                    answer = None
            elif not test(fact.value):
                answer = False
        return answer, used

    def decide(self, facts: Facts) -> bool | None:
        """`matches` without the facts consulted, for callers that need only
        the answer (which settings apply): a criterion that does not match
        settles it at once."""
        if self.everything:
            return True
        answer: bool | None = True
        for name, test in self.checks:
            fact = facts.get(name)
            if not fact.known:
                answer = None
            elif not test(fact.value):
                return False
        return answer

    def _tags_match(self, have: object) -> bool:
        if not isinstance(have, dict):
            return False
        # A loop, not all(): no generator made per decision.
        for key, wanted in self.tags:  # noqa: SIM110
            if str(have.get(key, "")).casefold() != wanted:
                return False
        return True

    def _name_match(self, name: object) -> bool:
        assert self.names is not None
        return self.names.match(str(name).casefold()) is not None

    def _host_group_match(self, group: Any) -> bool:
        return group is not None and group.casefold() in self.host_groups

    def _domain_match(self, domain: Any) -> bool:
        return domain is not None and domain.casefold() in self.domains

    def _roles_match(self, roles: Any) -> bool:
        return not self.roles.isdisjoint(roles)


def compile_scope(scope: Scope) -> ScopeMatcher:
    names = None
    if scope.names:
        # fnmatchcase(name, glob) is re.match(translate(glob), name) (the
        # fnmatch module's own definition); one alternation of them all.
        names = re.compile("|".join(f"(?:{translate(p.casefold())})" for p in scope.names))
    return ScopeMatcher(
        scope=scope,
        description=scope.describe(),
        everything=scope.is_everything,
        tags=tuple((k, v.casefold()) for k, v in scope.tags.items()),
        names=names,
        host_groups=frozenset(g.casefold() for g in scope.host_groups),
        domains=frozenset(d.casefold().rstrip(".") for d in scope.domains),
        roles=frozenset(scope.roles),
    )


def scope_matches(scope: Scope, facts: Facts) -> tuple[bool | None, dict[str, Fact]]:
    """(True | False | None, the facts consulted), for a scope asked once; the
    policy's own scopes are compiled when it loads (`compile_scope`)."""
    return compile_scope(scope).matches(facts)
