"""The strictest of several decisions: what a patch wave needs when its
members' needs differ (docs/batches.md): a refusal over a need for
approval over an allow; among needs for approval, the one asking for the
most approvers."""

from __future__ import annotations

from collections.abc import Sequence

from policies import Decision, Verdict

# Why a wave's approvers are asked, as the wave's "Approval needed" says it
# (seen: "… need 1 approval from anyone, what its strictest member needs",
# which left the reader to work out whose need and why it applies to all).
WHY_THE_WAVE_ASKS = (
    "the wave is approved as a whole, so it asks for the most that any one of its members needs"
)

_SEVERITY = {Verdict.ALLOW: 0, Verdict.NEEDS_APPROVAL: 1, Verdict.DENY: 2}


def strictest(decisions: Sequence[Decision]) -> Decision:
    """The decision the whole batch gets: a refusal over a need for
    approval over an allow; among needs for approval, the one asking for
    the most approvers (with a tie, one that names its approvers over one
    that lets anyone approve)."""
    if not decisions:
        raise ValueError("a batch action needs at least one member")

    def weight(d: Decision) -> tuple[int, int, int]:
        need = d.approval
        return (
            _SEVERITY[d.verdict],
            need.required if need else 0,
            0 if need is None or need.anyone else 1,
        )

    return max(decisions, key=weight)
