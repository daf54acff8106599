"""The five-second table: one row per rule, a mark and one line.

    ✓ passed   ✗ fired ([refused] / [approval required])   ! warning or scheduled
    EN DASH exempt, disabled or not applicable
    ? needs what the VM's host says, and the host could not be asked

Data only; the CLI and Slack templates render it.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.clock import utc_text
from policies.model import Decision, Effect, OutcomeKind, RuleOutcome

MARKS = {"passed": "✓", "blocked": "✗", "note": "!", "skipped": "\u2013", "unanswered": "?"}


@dataclass(frozen=True)
class Unanswered:
    """The VM's host could not be asked, so every fact only it gives is
    unknown with the same words, `why` (its error). The caller says those
    once; a row says `instead` in their place (`HV03 could not be reached`),
    and a rule that failed closed on those facts alone is not a refusal but
    a question left open: it is marked `?` with the facts it needed."""

    host: str
    why: str
    instead: str


def mark(outcome: RuleOutcome) -> str:
    if outcome.outcome is OutcomeKind.PASSED:
        return MARKS["passed"]
    if outcome.outcome is OutcomeKind.FIRED:
        return MARKS["blocked"] if outcome.blocking else MARKS["note"]
    return MARKS["skipped"]


def rows(decision: Decision, unanswered: Unanswered | None = None) -> list[tuple[str, str, str]]:
    """(rule id, mark, one-line message) per rule, in evaluation order."""
    if unanswered is None:
        return [(o.rule, mark(o), _one_line(o, o.message)) for o in decision.outcomes]
    return [_row_without(o, unanswered) for o in decision.outcomes]


def waits_for(outcome: RuleOutcome, unanswered: Unanswered) -> list[str]:
    """The facts `outcome` failed closed on when the host's silence is all
    it lacked ([] otherwise: it answered, or an unknown of another source,
    which the host answering would not settle, made it fire)."""
    if not (outcome.fired and outcome.for_want_of_facts):
        return []
    missing = [(name, f) for name, f in outcome.facts.items() if not f.known]
    if not missing or any(f.value != unanswered.why for _name, f in missing):
        return []
    return [name for name, _f in missing]


def _row_without(outcome: RuleOutcome, unanswered: Unanswered) -> tuple[str, str, str]:
    needs = waits_for(outcome, unanswered)
    if needs:
        said = f"needs {', '.join(needs)} from {unanswered.host}"
        return outcome.rule, MARKS["unanswered"], said
    # The host's error is said once, above the table, not on every line.
    text = outcome.message.replace(unanswered.why, unanswered.instead)
    return outcome.rule, mark(outcome), _one_line(outcome, text)


# What a blocking rule's ✗ means, said on its line: the verdict above may be
# DENY while a rule below only asks for an approval, and a bare ✗ beside
# "a human must approve" read as a contradiction.
BLOCKING_WORDS = {Effect.DENY: "refused", Effect.NEEDS_APPROVAL: "approval required"}


def _one_line(outcome: RuleOutcome, message: str) -> str:
    text = " ".join(message.split())
    if outcome.outcome is OutcomeKind.FIRED and outcome.effect is Effect.SCHEDULE:
        return text
    if outcome.blocking and outcome.effect is not None:
        return f"[{BLOCKING_WORDS[outcome.effect]}] {text}"
    if outcome.outcome in (OutcomeKind.EXEMPT, OutcomeKind.DISABLED):
        return f"[{outcome.outcome.value}] {text}"
    return text


def refused_over_approval(decision: Decision) -> tuple[list[str], list[str]]:
    """When the decision is a refusal and some rules only ask for an
    approval: (the rules that refuse, the rules that ask), so the reader is
    told an approval would not lift the refusal; ([], []) otherwise."""
    fired = [o for o in decision.outcomes if o.blocking]
    refusing = [o.rule for o in fired if o.effect is Effect.DENY]
    asking = [o.rule for o in fired if o.effect is Effect.NEEDS_APPROVAL]
    return (refusing, asking) if refusing and asking else ([], [])


def headline(decision: Decision) -> str:
    """One line for the whole decision: the verdict and the first reason."""
    reasons = decision.reasons
    first = f": {reasons[0]}" if reasons else ""
    more = f" (+{len(reasons) - 1} more)" if len(reasons) > 1 else ""
    when = f", scheduled for {utc_text(decision.schedule_at)}" if decision.schedule_at else ""
    return f"{decision.verdict.value}{when}{first}{more}"
