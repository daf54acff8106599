"""`policy explain` (the CLI) and `/checkpoint policy` (Slack): what the
guardrails say to an action on a VM, rule by rule, changing nothing.

    explain(ctx, vm, action, who) -> Explanation

It decides on whatever could be read. A host that could not be asked (it
did not answer, or the bot could not log in) leaves the question open, as
it does for a request ("could not check WEB02: HV02 could not be reached
(…); nothing was decided or recorded", bot.service.locate): a fault of the
connection is never a refusal. The explanation then has no verdict
(`cannot_decide`), names the host and why once, and shows each rule as far
as the inventory and the request settle it (policies.explain.Unanswered);
the CLI exits 3, as a create does. Unless a rule refuses on what is known
(a domain controller in a domain with another): no host fact undoes that,
so the answer is DENY, with the rules that needed the host marked `?`.
docs/host-truth.md, "A host that cannot be asked".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.service.deciding import Preview, Principal
from bot.service.errors import BadRequest
from bot.service.finding import resolve_vm
from bot.service.locate import HostUnavailable
from bot.service.policy_lint import notes_for
from policies import Action, Decision, Effect, Facts
from policies.explain import Unanswered, rows
from policies.lint import RuleNote

if TYPE_CHECKING:
    from bot.service.deps import ServiceDeps

__all__ = ["CANNOT_DECIDE", "Explanation", "explain"]

# The verdict of an explanation whose host could not be asked (`--json`).
CANNOT_DECIDE = "cannot_decide"


@dataclass(frozen=True)
class Explanation:
    """The decision, and why there is none when the VM's host could not be
    asked: `undecided` is then the error a request would have stopped at,
    in its words, and `unanswered` what the facts it would have given say
    instead (one `why` for all of them, said once)."""

    decision: Decision
    undecided: HostUnavailable | None = None
    unanswered: Unanswered | None = None
    # The facts unknown because that host was not asked (`--json`).
    unasked: tuple[str, ...] = ()
    # Per rule: the overrides that apply to the VM, and where a safety
    # guardrail was weakened for it (bot/service/policy_lint.py).
    notes: Mapping[str, RuleNote] = field(default_factory=dict)

    @classmethod
    def of(cls, preview: Preview) -> Explanation:
        stopped = preview.undecided
        if stopped is None:
            return cls(preview.decision)
        why = _silence(preview.facts, stopped)
        unasked = tuple(
            sorted(
                name
                for name, fact in preview.facts.values.items()
                if not fact.known and fact.value == why
            )
        )
        unanswered = Unanswered(
            host=stopped.host, why=why, instead=f"{stopped.host} {what(stopped)}"
        )
        if refused_on_what_is_known(preview.decision):
            # Nothing the host could say undoes a refusal the inventory and
            # the request settle (every rule answers alone, and a fact only
            # ever adds a refusal): decided, and said as DENY.
            return cls(preview.decision, None, unanswered, unasked)
        return cls(preview.decision, stopped, unanswered, unasked)

    @property
    def verdict(self) -> str:
        return CANNOT_DECIDE if self.undecided else self.decision.verdict.value

    @property
    def rows(self) -> list[tuple[str, str, str]]:
        """(rule id, mark, one line) per rule (policies.explain.rows)."""
        return rows(self.decision, self.unanswered)

    def to_dict(self) -> dict[str, Any]:
        """The decision's shape (`verdict`, `rules`, `adjustments`,
        `approval`, `schedule_at`) and `cannot_decide`: null when decided,
        else {host, reason: unreachable | login_failed, error (the host's
        words), message (what the CLI's error line and a create say), facts
        (the names unknown because the host was not asked)}. Undecided, the
        verdict is `cannot_decide` and what only a decision carries (an
        approval, a schedule) is null; each rule's own answer is kept."""
        data = self.decision.to_dict()
        for rule in data["rules"]:
            note = self.notes.get(rule["id"])
            rule |= note.to_dict() if note else {"overrides": [], "weakened": None}
        stopped = self.undecided
        if stopped is None:
            return data | {"cannot_decide": None}
        return data | {
            "verdict": CANNOT_DECIDE,
            "approval": None,
            "schedule_at": None,
            "cannot_decide": {
                "host": stopped.host,
                "reason": "login_failed" if stopped.login_failed else "unreachable",
                "error": stopped.error,
                "message": stopped.message,
                "facts": list(self.unasked),
            },
        }


def refused_on_what_is_known(decision: Decision) -> bool:
    """Whether a rule refuses on facts that are known (not for want of one)."""
    return any(
        o.fired and o.effect is Effect.DENY and not o.for_want_of_facts for o in decision.outcomes
    )


def what(stopped: HostUnavailable) -> str:
    """What happened to the host, after its name (as `checkpoint list` says it)."""
    return "could not be logged in to" if stopped.login_failed else "could not be reached"


def _silence(facts: Facts, stopped: HostUnavailable) -> str:
    """The words every fact the host would have given carries: why it said
    nothing, which the facts provider also gives as why `contradictions` is
    unknown (bot.facts.gather), whichever way the host failed."""
    said = facts.get("contradictions")
    return str(said.value) if not said.known and said.value else stopped.message


def explain(
    ctx: ServiceDeps,
    vm_name: str,
    action: str,
    who: Principal,
    *,
    checkpoint_type: str | None = None,
    at: datetime | None = None,
) -> Explanation:
    vm = resolve_vm(ctx, vm_name)
    try:
        act = Action(action)
    except ValueError:
        raise BadRequest(
            f"unknown action '{action}': use one of {', '.join(a.value for a in Action)}"
        ) from None
    # Decided on whatever could be read, even with the host down: what the
    # inventory and the request settle is still worth showing.
    preview = ctx.decider.preview(vm, act, who, checkpoint_type=checkpoint_type, now=at)
    explanation = Explanation.of(preview)
    outcomes = {o.rule: o.outcome for o in explanation.decision.outcomes}
    today = (at or ctx.clock()).date()
    notes = notes_for(ctx.policy, ctx.inventory, vm, ctx.settings.policy_files, today, outcomes)
    return replace(explanation, notes=notes)
