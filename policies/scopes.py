"""Does a scope cover this VM? Yes, no, or unknown (a fact it needs is unknown).

Tri-state on purpose: a scope that cannot be decided must not quietly fall
back to the looser default, so callers fail closed on `None`.
"""

from __future__ import annotations

from collections.abc import Callable
from fnmatch import fnmatchcase
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


def scope_matches(scope: Scope, facts: Facts) -> tuple[bool | None, dict[str, Fact]]:
    """(True | False | None, the facts consulted). All given criteria must match."""
    if scope.is_everything:
        return True, {}
    used: dict[str, Fact] = {}
    results: list[bool | None] = []
    if scope.tags:
        results.append(_check(facts, "tags", used, lambda v: _tags_match(scope.tags, v)))
    if scope.names:
        results.append(
            _check(
                facts,
                "vm_name",
                used,
                lambda v: any(fnmatchcase(str(v).casefold(), p.casefold()) for p in scope.names),
            )
        )
    if scope.host_groups:
        wanted = {g.casefold() for g in scope.host_groups}
        results.append(
            _check(facts, "host_group", used, lambda v: v is not None and v.casefold() in wanted)
        )
    if scope.domains:
        domains = {d.casefold().rstrip(".") for d in scope.domains}
        results.append(
            _check(facts, "domain", used, lambda v: v is not None and v.casefold() in domains)
        )
    if scope.roles:
        roles = set(scope.roles)
        results.append(_check(facts, "roles", used, lambda v: bool(roles & set(v))))
    if False in results:
        return False, used
    if None in results:
        return None, used
    return True, used


def _tags_match(wanted: dict[str, str], have: object) -> bool:
    if not isinstance(have, dict):
        return False
    return all(str(have.get(k, "")).casefold() == v.casefold() for k, v in wanted.items())


def _check(
    facts: Facts, name: str, used: dict[str, Fact], test: Callable[[Any], bool]
) -> bool | None:
    fact = facts.get(name)
    used[name] = fact
    if not fact.known:
        return None
    return bool(test(fact.value))
