"""Does a scope cover this VM? Yes, no, or unknown (a fact it needs is unknown).

Tri-state on purpose: a scope that cannot be decided must not quietly fall
back to the looser default, so callers fail closed on `None`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
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
    """A scope made ready once, when the policy loads: its values casefolded
    and its name globs compiled into one regular expression, so a decision
    compiles nothing (bench/policy_eval.py)."""

    scope: Scope
    description: str
    everything: bool
    tags: tuple[tuple[str, str], ...]
    names: re.Pattern[str] | None
    host_groups: frozenset[str]
    domains: frozenset[str]
    roles: frozenset[str]

    def matches(self, facts: Facts) -> tuple[bool | None, dict[str, Fact]]:
        """(True | False | None, the facts consulted). All given criteria must
        match; every criterion is consulted, so the facts named are the same
        whichever fails."""
        if self.everything:
            return True, {}
        used: dict[str, Fact] = {}
        results: list[bool | None] = []
        if self.tags:
            results.append(_check(facts, "tags", used, self._tags_match))
        if self.names is not None:
            names = self.names
            results.append(
                _check(facts, "vm_name", used, lambda v: names.match(str(v).casefold()) is not None)
            )
        if self.host_groups:
            wanted = self.host_groups
            results.append(
                _check(
                    facts, "host_group", used, lambda v: v is not None and v.casefold() in wanted
                )
            )
        if self.domains:
            domains = self.domains
            results.append(
                _check(facts, "domain", used, lambda v: v is not None and v.casefold() in domains)
            )
        if self.roles:
            roles = self.roles
            results.append(_check(facts, "roles", used, lambda v: not roles.isdisjoint(v)))
        if False in results:
            return False, used
        if None in results:
            return None, used
        return True, used

    def _tags_match(self, have: object) -> bool:
        if not isinstance(have, dict):
            return False
        return all(str(have.get(k, "")).casefold() == v for k, v in self.tags)


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


def _check(
    facts: Facts, name: str, used: dict[str, Fact], test: Callable[[Any], bool]
) -> bool | None:
    fact = facts.get(name)
    used[name] = fact
    if not fact.known:
        return None
    return bool(test(fact.value))
