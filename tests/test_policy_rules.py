"""The built-in rules on the demo estate, table-driven.

Facts come from the real provider (`inventory_facts` + `discovered_facts`)
over a `VMFacts` built the way a healthy host would report the VM.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import pytest

from bot.facts import contradictions, discovered_facts, inventory_facts, unreachable_facts
from bot.hyperv.types import DiskInfo, VMFacts, VMInfo, VMState, Volume
from bot.inventory import Inventory, load_inventory
from bot.inventory.inventory import demo_inventory_path
from policies import (
    Action,
    ApprovalRequirement,
    Context,
    Decision,
    Effect,
    Fact,
    Facts,
    OutcomeKind,
    Policy,
    Request,
    Verdict,
    authorize,
    check_approver,
    evaluate,
    load_policy,
    parse_policy,
    rows,
)

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # a Tuesday
GB = 1024**3


@cache
def demo() -> Inventory:
    return load_inventory(demo_inventory_path())


@cache
def shipped() -> Policy:
    return load_policy()


def vm_facts(name: str, *, checkpoints: int = 0, **disc: Any) -> VMFacts:
    """What a healthy host would report for the demo VM `name` (override with `disc`)."""
    inv = demo()
    vm = inv.vm(name)
    # The VM's own host's volume, or its cluster's shared volume (a CSV).
    volume = inv.volume_for(vm)
    assert volume is not None
    found = VMFacts(
        vm=VMInfo(vm.vm_id, vm.name, vm.host, VMState.Running, vm.checkpoint_type),
        disks=(
            DiskInfo(
                "disk0.vhdx",
                shared=vm.disks.shared,
                passthrough=vm.disks.passthrough,
            ),
        ),
        fibre_channel=vm.disks.virtual_fibre_channel,
        kvp_product_type=2 if vm.is_domain_controller else 3,
        replication_enabled=vm.hyperv_replica,
        checkpoint_count=checkpoints,
        volume=Volume(
            vm.host,
            volume.path,
            int(volume.capacity_gb * GB),
            int((volume.capacity_gb - volume.used_gb) * GB),
        ),
    )
    return replace(found, **disc)


def facts_for(
    name: str,
    *,
    reachable: bool = True,
    change_created: datetime | None = None,
    **disc: Any,
) -> Facts:
    inv = demo()
    vm = inv.vm(name)
    values = inventory_facts(inv, vm, "inventory demo-inventory.yaml", NOW)
    if reachable:
        values |= discovered_facts(vm_facts(name, **disc), f"host {vm.host}", NOW)
        # As `gather` adds it: the node that answered for the VM.
        values["owner_host"] = Fact(vm.host, f"host {vm.host}", NOW)
    else:
        values |= unreachable_facts(f"host {vm.host}", "connection refused")
    if change_created is not None:
        values["change_created_at"] = Fact(change_created, "change CHG-0001", NOW)
    if reachable:
        values["contradictions"] = Fact(contradictions(values), "facts provider", NOW)
    else:
        # As `gather` says it: a host that said nothing compared nothing.
        silent = "host not asked: connection refused"
        values["contradictions"] = Fact.unknown("facts provider", silent)
    return Facts(values)


def ask(
    name: str,
    action: Action = Action.CREATE,
    *,
    policy: Policy | None = None,
    now: datetime = NOW,
    requester: str = "U0ALICE",
    groups: frozenset[str] = frozenset(),
    facts: Facts | None = None,
    **request: object,
) -> Decision:
    vm = demo().vm(name)
    req = Request(action, vm.name, vm.vm_id, requester, **request)  # type: ignore[arg-type]
    ctx = Context(now=now, policy=policy or shipped(), groups=groups)
    return evaluate(req, facts or facts_for(name), ctx)


def text(decision: Decision) -> str:
    return " ".join(decision.reasons + decision.warnings)


def fired(decision: Decision) -> set[str]:
    return {o.rule for o in decision.fired if o.effect is not Effect.WARN}


# --- the demo estate -------------------------------------------------------------


@pytest.mark.parametrize(
    ("vm", "rule", "words"),
    [
        ("CORP-DC01", "domain_controller", "USN rollback"),
        ("FC-NODE1", "guest_cluster", "cluster"),
        ("SQL01", "replicating_application", "availability group"),
        ("EXCH01", "replicating_application", "does not support VM snapshots"),
        ("FS01", "replicating_application", "DFS Replication"),
        ("LEGACY01", "checkpoints_disabled", "disabled"),
        ("SAN-VM01", "unsupported_disks", "pass-through"),
    ],
)
def test_dangerous_vms_are_refused_with_their_own_reason(vm: str, rule: str, words: str) -> None:
    decision = ask(vm)
    assert decision.verdict is Verdict.DENY
    outcome = decision.outcome(rule)
    assert outcome is not None and outcome.fired and outcome.effect is Effect.DENY
    assert words in outcome.message
    assert outcome.remediation


def test_multi_dc_rollback_is_refused_too() -> None:
    decision = ask("CORP-DC02", Action.ROLLBACK)
    assert decision.verdict is Verdict.DENY and "USN rollback" in text(decision)


def test_single_dc_domain_is_production_only_with_a_warning() -> None:
    decision = ask("LAB-DC01")
    assert decision.verdict is Verdict.ALLOW
    assert decision.adjustments["checkpoint_type"] == "production-only"
    assert any("only domain controller" in w for w in decision.warnings)
    standard = ask("LAB-DC01", checkpoint_type="standard")
    assert standard.verdict is Verdict.DENY
    assert "checkpoint_type" in fired(standard)


def test_sql_never_gets_standard_and_production_becomes_production_only() -> None:
    policy = parse_policy("rules: {replicating_application: {enabled: false}}")
    decision = ask("SQL01", policy=policy, checkpoint_type="production")
    assert decision.adjustments["checkpoint_type"] == "production-only"
    standard = ask("SQL01", policy=policy, checkpoint_type="standard")
    assert standard.verdict is Verdict.DENY
    assert "not a VSS-consistent" in text(standard)


def test_rodc_is_never_restored() -> None:
    inv = demo()
    vm = inv.vm("LAB-DC01")
    values = dict(facts_for("LAB-DC01").values)
    values["roles"] = Fact(["read_only_domain_controller"], "inventory")
    req = Request(Action.ROLLBACK, vm.name, vm.vm_id, "U0ALICE")
    decision = evaluate(req, Facts(values), Context(now=NOW, policy=shipped()))
    assert decision.verdict is Verdict.DENY and "read-only domain controller" in text(decision)


def test_hyperv_replica_rollback_needs_approval() -> None:
    decision = ask("REPL-APP01", Action.ROLLBACK)
    assert decision.verdict is Verdict.NEEDS_APPROVAL
    replica = decision.outcome("hyperv_replica")
    assert replica is not None and replica.effect is Effect.NEEDS_APPROVAL
    assert "Resynchronization Required" in replica.message
    assert decision.approval is not None and "U0ALICE" in decision.approval.excluded


def test_hyperv_replica_create_only_warns() -> None:
    decision = ask("REPL-APP01")
    assert decision.verdict is Verdict.ALLOW
    assert any("Resynchronization Required" in w for w in decision.warnings)


def test_ordinary_vm_create_is_allowed_and_every_rule_explains_itself() -> None:
    decision = ask("WEB01", ttl=timedelta(hours=24))
    assert decision.verdict is Verdict.ALLOW, text(decision)
    assert all(o.message for o in decision.outcomes)
    assert {o.outcome for o in decision.outcomes} <= {
        OutcomeKind.PASSED,
        OutcomeKind.NOT_APPLICABLE,
    }
    headroom = decision.outcome("storage_headroom")
    assert headroom is not None and "1000 MB/h for 24h" in headroom.message
    assert decision.schedule_at is None and decision.approval is None


def test_default_ttl_is_an_adjustment() -> None:
    decision = ask("WEB01")
    assert decision.adjustments["ttl_seconds"] == 72 * 3600


def test_prod_rollback_needs_one_approval_and_lists_approvers() -> None:
    policy = parse_policy(
        "admins: {users: [U0ADMIN]}\n"
        "rules: {approvals: {overrides: [{scope: {tags: {env: prod}},"
        " params: {count: 1, users: [U123, U456], groups: [S0APPROVERS]}}]}}"
    )
    decision = ask("WEB01", Action.ROLLBACK, policy=policy)
    assert decision.verdict is Verdict.NEEDS_APPROVAL
    assert decision.approval == ApprovalRequirement(
        1, ("U123", "U456", "U0ADMIN"), ("S0APPROVERS",), ("U0ALICE",)
    )
    assert decision.approval.describe() == (
        "1 approval from <@U123>, <@U456>, <@U0ADMIN> or a member of <!subteam^S0APPROVERS> "
        "(not the requester)"
    )
    assert ask("STG-WEB01", Action.ROLLBACK, policy=policy).verdict is Verdict.ALLOW


def test_create_needs_no_approval_in_the_shipped_policy() -> None:
    assert ask("APP01").verdict is Verdict.ALLOW


def test_describe_matches_the_documented_example() -> None:
    req = ApprovalRequirement(1, ("U123", "U456"), ("S0APPROVERS",), ("U0ALICE",))
    assert req.describe() == (
        "1 approval from <@U123>, <@U456> or a member of <!subteam^S0APPROVERS> (not the requester)"
    )


# --- counts, storage, lifetime ------------------------------------------------


def test_a_fourth_checkpoint_is_refused() -> None:
    assert ask("WEB01", facts=facts_for("WEB01", checkpoints=2)).verdict is Verdict.ALLOW
    decision = ask("WEB01", facts=facts_for("WEB01", checkpoints=3))
    assert decision.verdict is Verdict.DENY
    assert "already has 3 checkpoints" in text(decision)


def test_checkpoint_count_is_capped_at_hyperv_limit() -> None:
    from policies import PolicyError

    with pytest.raises(PolicyError, match="at most 50"):
        parse_policy("rules: {checkpoint_count: {params: {max: 60}}}")


def test_storage_headroom_refuses_a_nearly_full_volume_and_shows_numbers() -> None:
    volume = Volume("HV01", "D:\\", 2000 * GB, 320 * GB)
    decision = ask("WEB01", facts=facts_for("WEB01", volume=volume))
    assert decision.verdict is Verdict.DENY
    outcome = decision.outcome("storage_headroom")
    assert outcome is not None
    assert "320 GB free of 2,000 GB" in outcome.message and "72h" in outcome.message


def test_ttl_above_the_maximum_is_refused() -> None:
    decision = ask("WEB01", ttl=timedelta(days=10))
    assert decision.verdict is Verdict.DENY and "ask for at most 7d" in " ".join(
        o.remediation for o in decision.fired
    )
    assert "7d" in text(decision)


def test_extend_within_and_beyond_the_maximum_lifetime() -> None:
    created = NOW - timedelta(days=2)
    facts = facts_for("WEB01", change_created=created)
    within = ask("WEB01", Action.EXTEND, facts=facts, extend_to=NOW + timedelta(days=3))
    assert within.verdict is Verdict.ALLOW, text(within)
    beyond = ask("WEB01", Action.EXTEND, facts=facts, extend_to=NOW + timedelta(days=6))
    assert beyond.verdict is Verdict.NEEDS_APPROVAL
    assert "8d" in text(beyond) and beyond.approval is not None


def test_extend_without_the_change_start_is_not_allowed() -> None:
    decision = ask("WEB01", Action.EXTEND, extend_to=NOW + timedelta(days=1))
    assert decision.verdict is not Verdict.ALLOW
    assert "change_created_at is unknown" in text(decision)


# --- windows ------------------------------------------------------------------

WINDOWS = """
windows:
  - name: weekend
    cron: "0 22 * * 6"
    duration: 6h
    timezone: Europe/Berlin
    scope: {tags: {tier: web}, names: ["web*"]}
"""
SAT_23H_BERLIN = datetime(2026, 11, 28, 22, 0, tzinfo=UTC)  # 23:00 CET, inside


def test_inside_the_window_is_allowed() -> None:
    decision = ask("WEB01", policy=parse_policy(WINDOWS), now=SAT_23H_BERLIN)
    assert decision.verdict is Verdict.ALLOW, text(decision)
    window = decision.outcome("change_window")
    assert window is not None and "inside change window 'weekend'" in window.message


def test_outside_the_window_is_refused_with_the_next_opening() -> None:
    decision = ask("WEB01", policy=parse_policy(WINDOWS))
    assert decision.verdict is Verdict.DENY
    assert "opens 2026-11-28 21:00 UTC" in text(decision)
    assert decision.schedule_at is None


def test_outside_the_window_with_schedule_is_deferred_not_refused() -> None:
    policy = parse_policy(WINDOWS, "rules: {change_window: {effect: schedule}}")
    decision = ask("WEB01", policy=policy)
    assert decision.verdict is Verdict.ALLOW
    assert decision.schedule_at == datetime(2026, 11, 28, 21, 0, tzinfo=UTC)


def test_a_rollback_outside_a_scheduling_window_is_refused_with_the_next_opening() -> None:
    # Only a create has a state to wait in; queueing a rollback to fail later
    # ("window is closed") or running a merge at once would both be wrong.
    policy = parse_policy(
        WINDOWS,
        "rules: {change_window: {effect: schedule, params: {actions: [create, rollback, merge]}}}",
    )
    for action in (Action.ROLLBACK, Action.MERGE):
        decision = ask("WEB01", action, policy=policy)
        assert decision.verdict is Verdict.DENY, text(decision)
        assert decision.schedule_at is None
        assert "only creates are" in text(decision)
        assert "opens 2026-11-28 21:00 UTC" in text(decision)
    created = ask("WEB01", policy=policy)
    assert created.verdict is Verdict.ALLOW and created.schedule_at is not None


def test_window_follows_daylight_saving_time() -> None:
    policy = parse_policy(WINDOWS, "rules: {change_window: {effect: schedule}}")
    summer = ask("WEB01", policy=policy, now=datetime(2026, 7, 1, 12, tzinfo=UTC))
    assert summer.schedule_at == datetime(2026, 7, 4, 20, 0, tzinfo=UTC)  # 22:00 CEST
    # The Saturday before the end of DST (Oct 25 2026): opens 22:00 CEST,
    # closes 6h later at 03:00 CET (the clock went back in between).
    before = ask("WEB01", policy=policy, now=datetime(2026, 10, 24, 20, 30, tzinfo=UTC))
    assert before.schedule_at is None and before.verdict is Verdict.ALLOW
    closed = ask("WEB01", policy=policy, now=datetime(2026, 10, 25, 2, 1, tzinfo=UTC))
    assert closed.schedule_at == datetime(2026, 10, 31, 21, 0, tzinfo=UTC)


def test_vms_no_window_applies_to_pass() -> None:
    decision = ask("APP01", policy=parse_policy(WINDOWS))
    window = decision.outcome("change_window")
    assert window is not None and window.outcome is OutcomeKind.PASSED
    assert "no change window applies" in window.message


# --- exemptions, overrides, disabling -------------------------------------------


def test_live_exemption_turns_a_denial_into_exempt() -> None:
    policy = parse_policy(
        "exemptions: [{rule: checkpoint_count, vm: web0*, reason: vendor upgrade,"
        " approved_by: U0ADMIN, expires: 2026-12-01}]"
    )
    decision = ask("WEB01", policy=policy, facts=facts_for("WEB01", checkpoints=3))
    assert decision.verdict is Verdict.ALLOW
    outcome = decision.outcome("checkpoint_count")
    assert outcome is not None and outcome.outcome is OutcomeKind.EXEMPT
    assert "vendor upgrade" in outcome.message and "already has 3" in outcome.message


def test_expired_exemption_says_so_and_the_rule_applies() -> None:
    policy = parse_policy(
        "exemptions: [{rule: checkpoint_count, vm: APP01, reason: vendor upgrade,"
        " approved_by: U0ADMIN, expires: 2026-11-01}]"
    )
    decision = ask("APP01", policy=policy, facts=facts_for("APP01", checkpoints=3))
    assert decision.verdict is Verdict.DENY
    assert "exemption for APP01 expired on 2026-11-01, so the rule applies" in text(decision)
    outcome = decision.outcome("checkpoint_count")
    assert outcome is not None and outcome.exemption is not None and outcome.exemption.expired


def test_scoped_override_changes_params_for_that_scope_only() -> None:
    policy = parse_policy(
        "rules: {checkpoint_count: {overrides: [{scope: {tags: {env: staging}},"
        " params: {max: 5}}]}}"
    )
    assert ask("STG-WEB01", policy=policy, facts=facts_for("STG-WEB01", checkpoints=4)).verdict is (
        Verdict.ALLOW
    )
    assert ask("WEB01", policy=policy, facts=facts_for("WEB01", checkpoints=4)).verdict is (
        Verdict.DENY
    )


def test_disabled_rule_is_shown_as_disabled() -> None:
    policy = parse_policy(
        "rules: {checkpoint_count: {overrides: [{scope: {names: [WEB*]}, enabled: false}]}}"
    )
    decision = ask("WEB01", policy=policy, facts=facts_for("WEB01", checkpoints=9))
    outcome = decision.outcome("checkpoint_count")
    assert outcome is not None and outcome.outcome is OutcomeKind.DISABLED
    assert decision.verdict is Verdict.ALLOW


# --- permissions and approvers ----------------------------------------------------

RESTRICTED = """
admins: {users: [U0ADMIN]}
permissions:
  request: {users: [U0ALICE], groups: [S0OPS]}
  rollback: {groups: [S0OPS], channels: [C0CHANGES]}
"""


def test_permissions_deny_a_user_not_listed() -> None:
    policy = parse_policy(RESTRICTED)
    decision = ask("WEB01", policy=policy, requester="U0MALLORY")
    assert decision.verdict is Verdict.DENY
    perm = decision.outcome("permissions")
    assert perm is not None and "<@U0MALLORY> may not request" in perm.message
    assert ask("WEB01", policy=policy, requester="U0BOB", groups=frozenset({"S0OPS"})).verdict is (
        Verdict.ALLOW
    )
    assert ask("WEB01", policy=policy, requester="U0ADMIN").verdict is Verdict.ALLOW


def test_permissions_can_require_a_channel() -> None:
    policy = parse_policy(RESTRICTED)
    facts = facts_for("STG-WEB01")
    ops = frozenset({"S0OPS"})
    elsewhere = authorize(policy, "rollback", facts, "U0BOB", ops, "C0RANDOM")
    assert elsewhere.fired and "only in <#C0CHANGES>" in elsewhere.message
    assert not authorize(policy, "rollback", facts, "U0BOB", ops, "C0CHANGES").fired
    assert not authorize(policy, "rollback", facts, "U0ADMIN", (), None).fired


def test_the_requester_can_never_approve() -> None:
    decision = ask("REPL-APP01", Action.ROLLBACK, requester="U0ALICE")
    assert decision.approval is not None and decision.approval.anyone
    ok, why = check_approver(decision, "U0ALICE", (), requester="U0ALICE")
    assert not ok and "cannot approve" in why
    assert check_approver(decision, "U0BOB", (), requester="U0ALICE")[0]


def test_who_asked_for_a_rollback_is_told_so_and_never_named_as_its_approver() -> None:
    # Seen in the playground: carol asked to roll back alice's change, then
    # tried to approve it, and read "<@U0CAROL> asked for this change …; it
    # needs 1 approval from <@U0CAROL> or a member of …": she asked for the
    # rollback, not the change, and the requester is never an approver.
    req = ApprovalRequirement(1, ("U0CAROL",), ("S0APPROVERS",), ("U0CAROL",))
    assert (
        req.describe() == "1 approval from a member of <!subteam^S0APPROVERS> (not the requester)"
    )
    ok, why = check_approver(req, "U0CAROL", (), "U0CAROL", "approve", "rollback")
    assert not ok
    assert why == (
        "<@U0CAROL> asked for this rollback and cannot approve it; it needs "
        "1 approval from a member of <!subteam^S0APPROVERS> (not the requester)"
    )
    alone = ApprovalRequirement(1, ("U0CAROL",), (), ("U0CAROL",))
    assert alone.describe() == "1 approval, but the policy names no approver but the requester"


def test_check_approver_explains_who_may() -> None:
    req = ApprovalRequirement(1, ("U123",), ("S0APPROVERS",), ("U0ALICE",))
    assert check_approver(req, "U999", {"S0APPROVERS"}, "U0ALICE") == (
        True,
        "<@U999> may approve as a member of <!subteam^S0APPROVERS>",
    )
    ok, why = check_approver(req, "U777", set(), "U0ALICE")
    assert not ok and "<@U123> or a member of <!subteam^S0APPROVERS>" in why
    assert check_approver(ask("WEB01"), "U1", (), "U0ALICE") == (
        False,
        "this decision needs no approval",
    )


# --- unknown facts ------------------------------------------------------------------


def test_unreachable_host_never_allows_and_names_the_missing_fact() -> None:
    decision = ask("WEB01", facts=facts_for("WEB01", reachable=False))
    assert decision.verdict is Verdict.DENY
    count = decision.outcome("checkpoint_count")
    assert count is not None and count.fired
    assert "checkpoint_count is unknown (host not asked: connection refused" in count.message


def test_known_risk_wins_even_when_the_host_is_unreachable() -> None:
    decision = ask("SAN-VM01", facts=facts_for("SAN-VM01", reachable=False))
    disks = decision.outcome("unsupported_disks")
    assert disks is not None and "pass-through" in disks.message


def test_guest_that_claims_to_be_a_dc_is_treated_as_one() -> None:
    decision = ask("APP01", facts=facts_for("APP01", kvp_product_type=2))
    assert decision.verdict is Verdict.DENY and "USN rollback" in text(decision)


def test_vm_off_cannot_confirm_it_is_not_a_dc_so_a_human_does() -> None:
    decision = ask("APP01", facts=facts_for("APP01", kvp_product_type=None))
    assert decision.verdict is Verdict.NEEDS_APPROVAL
    assert "kvp_product_type is unknown" in text(decision)


def test_unknown_domain_for_a_scope_fails_closed() -> None:
    policy = parse_policy(
        "rules: {checkpoint_count: {overrides: [{scope: {domains: [lab.example]},"
        " params: {max: 10}}]}}"
    )
    values = dict(facts_for("WEB01").values)
    values["domain"] = Fact.unknown("inventory", "the inventory gives no domain for this VM")
    decision = ask("WEB01", policy=policy, facts=Facts(values))
    count = decision.outcome("checkpoint_count")
    assert count is not None and count.fired and "which checkpoint_count settings" in count.message


# --- output ---------------------------------------------------------------------------


def test_to_dict_is_json_and_complete() -> None:
    decision = ask("REPL-APP01", Action.ROLLBACK)
    data = json.loads(json.dumps(decision.to_dict()))
    assert data["verdict"] == "needs_approval"
    assert {"adjustments", "approval", "schedule_at", "rules"} <= set(data)
    rule = next(r for r in data["rules"] if r["id"] == "hyperv_replica")
    assert rule["outcome"] == "fired" and rule["effect"] == "needs_approval"
    assert set(rule["facts"]["replication_enabled"]) == {"value", "source", "known", "observed_at"}
    assert data["approval"]["required"] == 1


def test_rows_are_a_five_second_table() -> None:
    table = rows(ask("CORP-DC01"))
    assert table[0][0] == "permissions"
    marks = {rule: mark for rule, mark, _ in table}
    assert marks["domain_controller"] == "✗" and marks["ttl"] == "✓"
    assert all("\n" not in line for _, _, line in table)


def test_approval_requirement_round_trips_through_its_dict() -> None:
    decision = ask("REPL-APP01", Action.ROLLBACK)
    assert decision.approval is not None
    stored = json.loads(json.dumps(decision.to_dict()["approval"]))
    assert ApprovalRequirement.from_dict(stored) == decision.approval


def test_discovery_contradicting_the_inventory_is_reported() -> None:
    from bot.facts import contradictions, inventory_facts
    from bot.inventory import demo_inventory_path, load_inventory
    from policies import Action, Context, Fact, Facts, Request, evaluate, load_policy

    inventory = load_inventory(demo_inventory_path())
    vm = inventory.vm("WEB01")
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    values = inventory_facts(inventory, vm, "inventory", now)
    values["kvp_product_type"] = Fact(2, "host HV01", now)
    values["contradictions"] = Fact(contradictions(values), "facts provider", now)
    decision = evaluate(
        Request(Action.CREATE, vm.name, vm.vm_id, "U1"),
        Facts(values),
        Context(now=now, policy=load_policy()),
    )
    drift = decision.outcome("inventory_drift")
    assert drift is not None and drift.fired
    assert "ProductType 2" in drift.message
    # The riskier reading: the guest says DC, so the DC rule does not pass.
    dc = decision.outcome("domain_controller")
    assert dc is not None and dc.fired


# --- inventory drift: a comparison not made is not agreement ---------------------------


def drift_of(decision: Decision) -> Any:
    outcome = decision.outcome("inventory_drift")
    assert outcome is not None
    return outcome


def test_drift_agrees_only_when_every_comparison_was_made() -> None:
    drift = drift_of(ask("WEB01"))
    assert drift.outcome is OutcomeKind.PASSED
    assert "agrees with the inventory" in drift.message
    # It names what it compared, so a fact that goes unknown shows in --json.
    assert {"contradictions", "roles", "kvp_product_type", "owner_host"} <= set(drift.facts)


def test_drift_never_calls_an_unread_product_type_agreement() -> None:
    """The guest's KVP is silent: the DC comparison was not made. The rule
    says the product type could not be read, and why; it holds nothing
    itself (`on_unknown: warn`): domain_controller, which owns that fact,
    asks a human for the same silence."""
    why = "the VM is Off: only a running guest publishes KVP items"
    values = dict(facts_for("WEB01").values)
    values["kvp_product_type"] = Fact.unknown("host HV01", why)
    decision = ask("WEB01", facts=Facts(values))
    drift = drift_of(decision)
    assert drift.outcome is OutcomeKind.FIRED
    assert drift.effect is Effect.WARN and not drift.for_want_of_facts
    assert "agrees" not in drift.message
    assert "product type could not be read" in drift.message
    assert why in drift.message and "host HV01" in drift.message
    assert "said only: the rules that decide on these facts take them" in drift.message
    assert not drift.facts["kvp_product_type"].known
    assert decision.verdict is Verdict.NEEDS_APPROVAL
    dc = decision.outcome("domain_controller")
    assert dc is not None and dc.effect is Effect.NEEDS_APPROVAL and dc.for_want_of_facts


@pytest.mark.parametrize(
    ("on_unknown", "effect", "then"),
    [
        ("deny", Effect.DENY, "refused until it is known"),
        ("needs_approval", Effect.NEEDS_APPROVAL, "a human must approve instead"),
    ],
)
def test_drift_on_an_unread_product_type_follows_on_unknown(
    on_unknown: str, effect: Effect, then: str
) -> None:
    policy = parse_policy(f"rules: {{inventory_drift: {{params: {{on_unknown: {on_unknown}}}}}}}")
    decision = ask("LAB-DC01", policy=policy, facts=facts_for("LAB-DC01", kvp_product_type=None))
    drift = drift_of(decision)
    assert drift.effect is effect and drift.for_want_of_facts and then in drift.message
    assert decision.verdict is (Verdict.DENY if effect is Effect.DENY else Verdict.NEEDS_APPROVAL)


@pytest.mark.parametrize("action", [Action.MERGE, Action.EXTEND])
def test_an_unread_product_type_is_only_said_where_nothing_rests_on_it(action: Action) -> None:
    """Keeping a checkpoint of a VM that is off (as a rollback leaves it)
    or extending it decides nothing on the VM's DC-ness or disks: the gap
    is said, as a warning, and holds nothing up."""
    facts = facts_for("WEB01", kvp_product_type=None, change_created=NOW - timedelta(days=1))
    extend_to = NOW + timedelta(days=2) if action is Action.EXTEND else None
    decision = ask("WEB01", action, facts=facts, extend_to=extend_to)
    drift = drift_of(decision)
    assert drift.fired and drift.effect is Effect.WARN
    assert "product type could not be read" in drift.message and "agrees" not in drift.message
    assert f"nothing a {action.value} decides rests on it" in drift.message
    assert decision.verdict is Verdict.ALLOW, text(decision)


def test_an_off_lone_dc_is_said_unconfirmed_and_still_taken_production_only() -> None:
    """The inventory's word alone (a DC) already gets the riskier reading
    from domain_controller, so the guest's silence changes nothing it
    decides: it is said, not passed over as agreement, and holds nothing
    (an approval here would be asked for no risk the bot does not already
    assume)."""
    decision = ask("LAB-DC01", facts=facts_for("LAB-DC01", kvp_product_type=None))
    assert decision.adjustments["checkpoint_type"] == "production-only"
    drift = drift_of(decision)
    assert drift.fired and drift.effect is Effect.WARN
    assert "product type could not be read" in drift.message
    assert decision.verdict is Verdict.ALLOW


def test_drift_reports_a_contradiction_and_what_it_could_not_compare() -> None:
    values = dict(facts_for("WEB01").values)
    values["disk_passthrough"] = Fact(True, "host HV01", NOW)
    values["kvp_product_type"] = Fact.unknown("host HV01", "no KVP items")
    values["contradictions"] = Fact(contradictions(values), "facts provider", NOW)
    drift = drift_of(ask("WEB01", facts=Facts(values)))
    assert drift.fired and drift.effect is Effect.WARN
    assert "pass-through disk" in drift.message
    assert "product type could not be read (no KVP items" in drift.message


def test_drift_with_roles_unknown_says_the_inventory_side_is_unknown() -> None:
    values = dict(facts_for("WEB01").values)
    values["roles"] = Fact.unknown("inventory", "roles_unknown: true")
    drift = drift_of(ask("WEB01", facts=Facts(values)))
    assert drift.fired and drift.effect is Effect.WARN
    assert "roles is unknown (roles_unknown: true" in drift.message


def test_a_host_that_said_nothing_is_still_not_compared() -> None:
    drift = drift_of(ask("WEB01", facts=facts_for("WEB01", reachable=False)))
    assert drift.outcome is OutcomeKind.NOT_APPLICABLE
    assert "agrees" not in drift.message


def test_drift_compares_what_the_provider_compares() -> None:
    """Each pair the rule checks for silence is one the provider reports
    a disagreement on: the two lists cannot drift apart unnoticed."""
    from policies.rules.drift import COMPARED

    base = dict(facts_for("WEB01").values)
    base["owner_host"] = Fact("HV01", "host HV01", NOW)
    assert contradictions(base) == []
    flipped = {
        "kvp_product_type": 2,
        "disk_shared": True,
        "disk_passthrough": True,
        "disk_fibre_channel": True,
        "replication_enabled": True,
        "owner_host": "HV02",
        "vm_checkpoint_type": "Standard",
        "host_vm_name": "WEB01-NEW",
    }
    assert {host for _inv, host, _what in COMPARED} == set(flipped)
    for _inv, host, _what in COMPARED:
        values = dict(base)
        values[host] = Fact(flipped[host], "host HV01", NOW)
        assert len(contradictions(values)) == 1, host


ROLE_HIDES_CIM = "the endpoint's JEA role does not let the bot run Get-CimInstance"


@pytest.mark.parametrize(
    ("state", "os_name", "unavailable", "says", "never"),
    [
        (VMState.Off, None, "", "the VM is Off", "integration"),
        (VMState.Saved, None, "", "the VM is Saved", "integration"),
        (VMState.Running, None, "", "data exchange integration service", "the VM is"),
        (VMState.Running, "Ubuntu 24.04", "", "KVP items but no ProductType (Ubuntu", "integ"),
        (VMState.Running, None, ROLE_HIDES_CIM, ROLE_HIDES_CIM, "integration"),
    ],
    ids=[
        "off",
        "saved",
        "running-without-kvp",
        "running-without-product-type",
        "role-without-get-ciminstance",
    ],
)
def test_an_unknown_product_type_says_why_from_what_the_host_said(
    state: VMState, os_name: str | None, unavailable: str, says: str, never: str
) -> None:
    base = vm_facts("WEB01")
    found = replace(
        base,
        vm=replace(base.vm, state=state),
        kvp_product_type=None,
        kvp_os_name=os_name,
        kvp_unavailable=unavailable,
    )
    kvp = discovered_facts(found, "host HV01", NOW)["kvp_product_type"]
    assert not kvp.known
    assert says in kvp.value and never not in kvp.value


def _discovered_dc(dcs: list[str]) -> Facts:
    """CORP-DC01 as `inventory discover` leaves it: roles not confirmed
    (roles_unknown), its guest reporting ProductType 2."""
    values = dict(facts_for("CORP-DC01").values)
    values["roles"] = Fact.unknown("inventory", "discovery added this VM (roles_unknown: true)")
    values["domain_dcs"] = Fact(dcs, "inventory")
    return Facts(values)


def test_a_discovered_dc_is_refused_for_its_partners_not_for_a_missing_role() -> None:
    """Seen: a DC that discovery added (`roles: [domain_controller]`,
    `roles_unknown: true`) was refused because "the inventory does not list
    it as one", next to an inventory that listed it, and without the
    partner that makes its restore harmful."""
    decision = ask("CORP-DC01", facts=_discovered_dc(["CORP-DC01", "CORP-DC02"]))
    dc = decision.outcome("domain_controller")
    assert dc is not None and dc.effect is Effect.DENY
    assert "corp.example has 2 domain controllers (CORP-DC01, CORP-DC02)" in dc.message
    assert "does not list it" not in dc.message


def test_a_discovered_dc_without_listed_partners_says_its_roles_are_unconfirmed() -> None:
    decision = ask("CORP-DC01", facts=_discovered_dc(["CORP-DC01"]))
    dc = decision.outcome("domain_controller")
    assert dc is not None and dc.effect is Effect.DENY
    assert "its roles in the inventory are not confirmed yet (roles_unknown: true)" in dc.message
    assert "does not list it" not in dc.message


def test_a_vm_whose_roles_are_unset_is_told_to_set_them() -> None:
    """The way out of `roles_unknown` is the inventory, not the host: the
    remediation says so (it said "start the VM, fix the host's
    reachability")."""
    values = dict(facts_for("WEB01").values)
    values["roles"] = Fact.unknown("inventory", "discovery added this VM (roles_unknown: true)")
    decision = ask("WEB01", facts=Facts(values))
    ruled = decision.outcome("replicating_application")
    assert ruled is not None and ruled.for_want_of_facts
    assert ruled.remediation == (
        "set WEB01's roles: in the inventory (roles: [other] when none applies) and delete "
        "its roles_unknown: true, then ask again"
    )


def test_a_vm_renamed_on_its_host_is_drift_not_agreement() -> None:
    """Seen: a VM renamed on its host (Rename-VM keeps its VMId,
    https://learn.microsoft.com/powershell/module/hyper-v/rename-vm) read
    "what WEB01's host reports agrees with the inventory" while the
    checkpoint list said "the host calls it WEB01-NEW"."""
    values = dict(facts_for("WEB01").values)
    values["host_vm_name"] = Fact("WEB01-NEW", "host HV01", NOW)
    values["contradictions"] = Fact(contradictions(values), "facts provider", NOW)
    drift = ask("WEB01", facts=Facts(values)).outcome("inventory_drift")
    assert drift is not None and drift.fired and drift.effect is Effect.WARN
    assert "the host calls it WEB01-NEW, the inventory WEB01" in drift.message
    # A name in another case is the same name (the inventory's names are).
    values["host_vm_name"] = Fact("web01", "host HV01", NOW)
    assert contradictions(values) == []


def test_a_hostile_name_on_the_host_opens_no_mention_in_the_drift_warning() -> None:
    """Whoever may manage the VM on its host names it; the drift warning is
    the bot's words, whose mention tokens Slack keeps."""
    values = dict(facts_for("WEB01").values)
    values["host_vm_name"] = Fact("WEB01 <@U0CAROL> <!channel>\x1b[2J", "host HV01", NOW)
    (said,) = contradictions(values)
    assert "<" not in said and ">" not in said and "\x1b" not in said
    shown = "WEB01 \u2039@U0CAROL\u203a \u2039!channel\u203a?[2J"
    assert said == f"the host calls it {shown}, the inventory WEB01"
