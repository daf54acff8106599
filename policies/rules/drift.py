"""Where discovery on the host disagrees with the inventory.

The other rules already take the riskier reading of the two; this one makes
the disagreement visible, so someone fixes the inventory instead of the bot
quietly guessing forever.

A pair the provider could not compare (the guest's KVP is silent, the VM's
roles are not set yet) is not agreement: the rule says which and why. It
holds nothing by default (`on_unknown: warn`): the rules that decide on each
of those facts fail closed on them themselves.
"""

from __future__ import annotations

from typing import Literal

from policies.model import Action, Effect, Fact, Facts, Request, RuleOutcome
from policies.params import ResolvedRule, RuleParams
from policies.policy import Context
from policies.rules.base import (
    UNKNOWN_REMEDIATION,
    RuleSpec,
    fire,
    not_applicable,
    passed,
    unknown_fact,
    unknown_then,
)


class DriftParams(RuleParams):
    # A pair it could not compare is said, not passed over as agreement; by
    # default only said (`warn`, this rule's own effect for a contradiction
    # it knows): each fact compared is decided on by a rule of its own that
    # takes the riskier reading and fails closed on it (domain_controller,
    # guest_cluster, hyperv_replica, checkpoints_disabled), so an approval
    # here would add nothing those do not ask already, or ask one for a VM
    # whose inventory already gives the riskier reading (an off lone DC).
    # `needs_approval` or `deny` makes the gap itself hold a request.
    # Wider than RuleParams' own: only this rule may merely warn on an unknown.
    on_unknown: Literal["deny", "needs_approval", "warn"] = "warn"  # type: ignore[assignment]


# What the facts provider compares (bot/facts.py `contradictions`): the
# inventory's fact, the host's, and what the two speak to. Kept here so the
# rule can tell a pair that agreed from one that was never compared; a
# test holds the two lists together.
COMPARED: tuple[tuple[str, str, str], ...] = (
    ("roles", "kvp_product_type", "whether it is a domain controller"),
    ("inv_shared_disk", "disk_shared", "a shared disk"),
    ("inv_passthrough", "disk_passthrough", "a pass-through disk"),
    ("inv_fibre_channel", "disk_fibre_channel", "virtual Fibre Channel"),
    ("inv_hyperv_replica", "replication_enabled", "Hyper-V Replica"),
    ("host", "owner_host", "which host has it"),
    ("inv_checkpoint_type", "vm_checkpoint_type", "its CheckpointType"),
    ("vm_name", "host_vm_name", "its name"),
)

# Host facts said as what could not be read, for a reader who does not know
# the fact's name (the explain output lists the names too).
_READ_AS = {"kvp_product_type": "the guest's product type"}

_STRICTNESS = {Effect.WARN: 0, Effect.SCHEDULE: 0, Effect.NEEDS_APPROVAL: 1, Effect.DENY: 2}

# The actions whose rules decide on the compared facts (a DC, a guest
# cluster, replication, disks: create and rollback only). A merge or an
# extension rests on none of them, so a pair not compared is said there,
# as a warning, instead of holding up the merge of a VM that is off.
_DECIDED_ON_THEM = (Action.CREATE, Action.ROLLBACK)

_SAID_ONLY = "said only: the rules that decide on these facts take them as they stand"


def _not_compared(facts: Facts, used: dict[str, Fact]) -> list[str]:
    """Each pair with a side unknown, said with why; `used` gets every fact
    of every pair, so `--json` shows what was and was not known."""
    gaps: list[str] = []
    for inv, host, what in COMPARED:
        declared, seen = facts.get(inv), facts.get(host)
        used[inv], used[host] = declared, seen
        sides: list[str] = []
        if not declared.known:
            sides.append(unknown_fact(inv, declared))
        if not seen.known and host in _READ_AS:
            why = seen.value or "no reason given"
            sides.append(f"{_READ_AS[host]} could not be read ({why}; from {seen.source})")
        elif not seen.known:
            sides.append(unknown_fact(host, seen))
        if sides:
            gaps.append(f"on {what}: {' and '.join(sides)}")
    return gaps


def inventory_drift(req: Request, facts: Facts, ctx: Context, rule: ResolvedRule) -> RuleOutcome:
    vm = req.vm_name
    found = facts.get("contradictions")
    used: dict[str, Fact] = {"contradictions": found}
    if not found.known:
        # The host said nothing: every other rule fails closed on its facts.
        return not_applicable(rule, f"nothing to compare: {found.value}")
    gaps = _not_compared(facts, used)
    disagreement = (
        f"the host disagrees with the inventory: {'; '.join(found.value)} "
        "(the guardrails use the riskier reading)"
        if found.value
        else ""
    )
    fix = "correct the VM's entry in the inventory (or the VM) so both agree"
    if gaps:
        uncompared = f"cannot compare the host with the inventory {'; '.join(gaps)}"
        said = f"{disagreement}; and {uncompared}" if disagreement else uncompared
        remediation = f"{fix}; {UNKNOWN_REMEDIATION}" if disagreement else UNKNOWN_REMEDIATION
        if req.action not in _DECIDED_ON_THEM:
            # A known contradiction keeps its own effect; the gap is only said.
            then = f"nothing a {req.action.value} decides rests on it"
            effect = rule.effect if disagreement else Effect.WARN
            return fire(
                rule,
                f"{vm}: {said}; {then}",
                remediation,
                used,
                effect=effect,
                for_want_of_facts=not disagreement,
            )
        # Whichever is stricter: a known contradiction keeps its own effect.
        stricter = _STRICTNESS[rule.on_unknown] > _STRICTNESS[rule.effect]
        then = unknown_then(rule) if stricter else _SAID_ONLY
        return fire(
            rule,
            f"{vm}: {said}; {then}",
            remediation,
            used,
            effect=rule.on_unknown if stricter else rule.effect,
            for_want_of_facts=stricter,
        )
    if not disagreement:
        return passed(rule, f"what {vm}'s host reports agrees with the inventory", used)
    return fire(rule, f"{vm}: {disagreement}", fix, used)


SPECS = (
    RuleSpec(
        "inventory_drift",
        inventory_drift,
        DriftParams,
        Effect.WARN,
        "discovery on the host contradicts the inventory",
    ),
)
