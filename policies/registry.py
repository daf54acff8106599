"""Every built-in rule, in the order they are evaluated and shown.

The order is for humans (the table reads from "who may" through "never do
this" to "when"); the verdict does not depend on it.
"""

from __future__ import annotations

from collections.abc import Mapping

from policies.rules import checkpoints, directory, drift, lifetime, replication, schedule
from policies.rules.base import RuleSpec

PERMISSIONS_RULE = "permissions"

BUILTIN_RULES: tuple[RuleSpec, ...] = (
    *directory.SPECS,
    *replication.SPECS,
    *checkpoints.SPECS,
    *lifetime.SPECS,
    *schedule.SPECS,
    *drift.SPECS,
)

RULES: Mapping[str, RuleSpec] = {spec.id: spec for spec in BUILTIN_RULES}
