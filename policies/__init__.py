"""The guardrail policy engine: pure rules over facts with provenance.

`evaluate(request, facts, context)` is the whole engine; `load_policy()` (the
one place that reads files) builds the `Policy` every `Context` carries.
"""

from policies.access import approvers_for, authorize, check_approver, is_admin
from policies.config import (
    PolicyError,
    default_policy_path,
    load_policy,
    parse_policy,
    validate_policy_file,
)
from policies.engine import evaluate
from policies.explain import rows
from policies.model import (
    Action,
    ApprovalRequirement,
    Decision,
    Effect,
    ExemptionNote,
    Fact,
    Facts,
    OutcomeKind,
    Permission,
    Request,
    RuleOutcome,
    Verdict,
)
from policies.policy import Context, Policy
from policies.registry import BUILTIN_RULES, PERMISSIONS_RULE, RULES

__all__ = [
    "BUILTIN_RULES",
    "PERMISSIONS_RULE",
    "RULES",
    "Action",
    "ApprovalRequirement",
    "Context",
    "Decision",
    "Effect",
    "ExemptionNote",
    "Fact",
    "Facts",
    "OutcomeKind",
    "Permission",
    "Policy",
    "PolicyError",
    "Request",
    "RuleOutcome",
    "Verdict",
    "approvers_for",
    "authorize",
    "check_approver",
    "default_policy_path",
    "evaluate",
    "is_admin",
    "load_policy",
    "parse_policy",
    "rows",
    "validate_policy_file",
]
