"""A rule's settings: the params every rule's config extends, and one rule's
settings for one VM after the scoped overrides (what `Policy.resolve` gives)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict

from policies.model import Effect


class RuleParams(BaseModel):
    """Base of every rule's params; extra keys are config errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    # What the rule answers when a fact it needs is unknown: never "allow".
    on_unknown: Literal["deny", "needs_approval"] = "deny"


class ParamsConflict(ValueError):
    """Two params of one rule that contradict each other (a TTL `default`
    longer than its `max`). Raised from a params model's validator, where
    only the values are known; the loader (policies/config.py) knows which
    file set each key, so it points at the key the later file set and says
    where the other one came from. Left at the params section, the error
    would name the shipped file when a deployment set only one of the two.

    `str(self)` is the whole conflict in one line, for a caller without the
    files. `blame[key]` is what is wrong with `key`'s value when the other
    key was set elsewhere, `{origin}` standing for where; `together` is the
    key to point at, and `together_text` what to say there, when both were
    set in the same place."""

    def __init__(
        self, message: str, *, blame: Mapping[str, str], together: str, together_text: str
    ) -> None:
        super().__init__(message)
        self.blame = dict(blame)
        self.together = together
        self.together_text = together_text

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self.blame)


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
