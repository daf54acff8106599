"""The five-second table: one row per rule, a mark and one line.

    ✓ passed   ✗ fired (deny / needs approval)   ! warning or scheduled
    EN DASH exempt, disabled or not applicable

Data only; the CLI and Slack templates render it.
"""

from __future__ import annotations

from bot.clock import utc_text
from policies.model import Decision, Effect, OutcomeKind, RuleOutcome

MARKS = {"passed": "✓", "blocked": "✗", "note": "!", "skipped": "\u2013"}


def mark(outcome: RuleOutcome) -> str:
    if outcome.outcome is OutcomeKind.PASSED:
        return MARKS["passed"]
    if outcome.outcome is OutcomeKind.FIRED:
        return MARKS["blocked"] if outcome.blocking else MARKS["note"]
    return MARKS["skipped"]


def rows(decision: Decision) -> list[tuple[str, str, str]]:
    """(rule id, mark, one-line message) per rule, in evaluation order."""
    return [(o.rule, mark(o), _one_line(o)) for o in decision.outcomes]


def _one_line(outcome: RuleOutcome) -> str:
    text = " ".join(outcome.message.split())
    if outcome.outcome is OutcomeKind.FIRED and outcome.effect is Effect.SCHEDULE:
        return text
    if outcome.outcome in (OutcomeKind.EXEMPT, OutcomeKind.DISABLED):
        return f"[{outcome.outcome.value}] {text}"
    return text


def headline(decision: Decision) -> str:
    """One line for the whole decision: the verdict and the first reason."""
    reasons = decision.reasons
    first = f": {reasons[0]}" if reasons else ""
    more = f" (+{len(reasons) - 1} more)" if len(reasons) > 1 else ""
    when = f", scheduled for {utc_text(decision.schedule_at)}" if decision.schedule_at else ""
    return f"{decision.verdict.value}{when}{first}{more}"
