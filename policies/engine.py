"""`evaluate()`: every rule runs, the strictest fired effect decides."""

from __future__ import annotations

from collections.abc import Sequence

from policies.model import Context, Decision, Facts, Request, RuleOutcome, combine
from policies.rules import BUILTIN_RULES, Rule


def evaluate(
    request: Request,
    facts: Facts,
    context: Context,
    rules: Sequence[Rule] = BUILTIN_RULES,
) -> Decision:
    """Pure: no I/O, the time comes in `context`."""
    outcomes: tuple[RuleOutcome, ...] = tuple(rule(request, facts) for rule in rules)
    return Decision(verdict=combine(outcomes), outcomes=outcomes)
