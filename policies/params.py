"""A rule's settings: the params every rule's config extends, and one rule's
settings for one VM after the scoped overrides (what `Policy.resolve` gives)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict

from policies.model import Effect


class RuleParams(BaseModel):
    """Base of every rule's params; extra keys are config errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    # What the rule answers when a fact it needs is unknown: never "allow".
    on_unknown: Literal["deny", "needs_approval"] = "deny"


@dataclass(frozen=True)
class ResolvedRule:
    """One rule's settings for one VM, after scoped overrides."""

    id: str
    enabled: bool
    effect: Effect
    params: RuleParams
    scopes: tuple[str, ...] = field(default=())  # descriptions of the overrides applied

    @property
    def on_unknown(self) -> Effect:
        return Effect(self.params.on_unknown)
