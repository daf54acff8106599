"""The guardrail policy engine: pure rules over facts with provenance."""

from policies.engine import evaluate
from policies.model import (
    Action,
    Context,
    Decision,
    Effect,
    Fact,
    Facts,
    Request,
    RuleOutcome,
    Verdict,
)

__all__ = [
    "Action",
    "Context",
    "Decision",
    "Effect",
    "Fact",
    "Facts",
    "Request",
    "RuleOutcome",
    "Verdict",
    "evaluate",
]
