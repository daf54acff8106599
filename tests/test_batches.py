"""Patch waves through the service, end to end in one process: selection,
preview, the batch record and its members as ordinary changes, on SQLite
and PostgreSQL (the simulated demo estate)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel, col, select

from bot.clock import ScaledClock
from bot.config import BatchesConfig
from bot.context import AppContext, build_context
from bot.domain import single_vm
from bot.inventory import InventoryError, demo_inventory_path, parse_inventory
from bot.service import (
    BadRequest,
    Conflict,
    NotFound,
    Selection,
    approve_batch,
    create_batch,
    export_audit,
    list_batches,
    merge_batch,
    preview_batch,
    rollback_batch,
    run_sweep,
    show_batch,
    stream_audit,
)
from bot.service.batch_actions import strictest
from bot.store.db import session_scope
from bot.store.models import Change, Job
from policies import ApprovalRequirement, Decision, Verdict
from tests.helpers import T0, settings_for

WAIT = 30.0


@pytest.fixture
def ctx(tmp_path: Path, db_url: str) -> Iterator[AppContext]:
    settings = dataclasses.replace(
        settings_for(tmp_path, db_url), batches=BatchesConfig(max_vms=6, per_host=2)
    )
    context = build_context(settings, clock=ScaledClock(600, start=T0), huey_kind="memory")
    # The jobs only: at 600x the periodic sweep (every 6 h) comes round every
    # 36 s of real time, and a slow run crossed one between a wave's create
    # and the test's own sweep (its sizes appeared early, seen once in CI).
    context.start_workers(periodic=False)
    try:
        yield context
    finally:
        context.close()


def test_a_selection_resolves_names_groups_hosts_and_tags(ctx: AppContext) -> None:
    def names(sel: Selection) -> list[str]:
        return [c.vm for c in preview_batch(ctx, sel, requester="alice", reason="wave").candidates]

    assert names(Selection.of(["web01", "WEB02", "WEB01"])) == ["WEB01", "WEB02"]
    assert names(Selection.of(groups=["web-tier"])) == ["WEB01", "WEB02", "APP01"]
    assert names(Selection.of(tags=["env=staging"])) == ["STG-WEB01", "STG-APP01"]
    # Tags narrow what names, groups and hosts add.
    assert names(Selection.of(hosts=["HV03"], tags=["tier=web"])) == ["STG-WEB01"]
    assert names(Selection.of(groups=["web-tier"], tags=["tier=app"])) == ["APP01"]


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        (Selection.of(), "name the VMs"),
        (Selection.of(tags=["env=nowhere"]), "matches no VM"),
        (Selection.of(groups=["webtier"]), "did you mean web-tier"),
        (Selection.of(["WEB01", "NOPE01"]), "no VM named 'NOPE01'"),
        (Selection.of(tags=["env=prod"]), "more than the 6 one batch may hold"),
    ],
)
def test_a_bad_selection_is_a_clear_error_and_records_nothing(
    ctx: AppContext, selection: Selection, message: str
) -> None:
    with pytest.raises(BadRequest, match=message):
        create_batch(ctx, selection, reason="KB5044284 wave", requester="alice")
    assert list_batches(ctx) == []
    with session_scope(ctx.engine) as s:
        assert s.exec(select(Change)).all() == []


def test_a_bad_tag_says_what_is_right() -> None:
    with pytest.raises(BadRequest, match="--tag env=staging"):
        Selection.of(tags=["env"])


def test_a_batch_records_its_members_as_ordinary_changes(ctx: AppContext) -> None:
    selection = Selection.of(["WEB01", "WEB02", "CORP-DC01"])
    preview = preview_batch(ctx, selection, requester="alice", reason="wave")
    assert preview.summary().startswith("3 VMs: 2 can be checkpointed, 1 is refused (CORP-DC01: ")
    assert "domain controller" in preview.summary()

    out = create_batch(ctx, selection, reason="KB5044284 wave", requester="alice", ttl="12h")
    assert [o.change.vm_name for o in out.outcomes] == ["WEB01", "WEB02", "CORP-DC01"]
    assert [o.refused for o in out.outcomes] == [False, False, True]
    for o in out.outcomes:
        if o.job_id is not None:
            assert ctx.ledger.wait(o.job_id, timeout=WAIT).state == "succeeded"

    batch = show_batch(ctx, out.batch.ref)
    assert batch.ref == "BAT-0001" and batch.requester == "alice"
    assert batch.state.value == "active"
    assert batch.progress == "2 of 2 done, 1 refused"
    assert [(m.vm_name, m.state) for m in batch.members] == [
        ("WEB01", "active"),
        ("WEB02", "active"),
        ("CORP-DC01", "denied"),
    ]
    assert "domain controller" in (batch.members[2].note or "")
    assert [e.kind for e in batch.events] == ["requested", "members_recorded"]
    # Members inherit the batch's lifetime.
    with session_scope(ctx.engine) as s:
        changes = s.exec(select(Change).order_by(col(Change.id))).all()
        assert {c.batch_id for c in changes} == {1}
        assert {c.ttl_seconds for c in changes} == {12 * 3600}
        jobs = s.exec(select(Job)).all()
        # Each member's job is bounded per host (bot.jobs.hostslots).
        assert {j.payload.get("host_limit") for j in jobs} == {2}
    assert [b.ref for b in list_batches(ctx)] == ["BAT-0001"]
    assert batch.to_dict()["state"] == "active"
    # The card's sizes are the sweep's: none before it, each checkpoint's after.
    assert all(m.size_bytes is None for m in batch.members)
    run_sweep(ctx)
    sized = show_batch(ctx, batch.ref).members
    assert [m.size_bytes is not None for m in sized] == [True, True, False]

    audit = list(stream_audit(ctx.engine))
    assert {r["batch"] for r in audit} == {"BAT-0001"}
    assert '"batch": "BAT-0001"' in "".join(export_audit(audit, "jsonl"))


def test_show_batch_errors(ctx: AppContext) -> None:
    with pytest.raises(BadRequest, match="BAT-0007"):
        show_batch(ctx, "WEB01")
    # A change's ref: where that change is shown instead.
    with pytest.raises(BadRequest) as change:
        show_batch(ctx, "chg-1")
    assert str(change.value) == (
        "CHG-0001 is one change, not a patch wave: checkpoint-bot change show CHG-0001 "
        "(/checkpoint status CHG-0001 in Slack) shows it"
    )
    with pytest.raises(NotFound, match="no batch BAT-0042"):
        show_batch(ctx, "bat-42")
    # Written as a batch ref, whatever its number: no batch has it.
    with pytest.raises(NotFound, match="no batch BAT-99999999999999 "):
        show_batch(ctx, "BAT-99999999999999")


def test_the_models_match_migration_0014(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    ours = [d for d in diff if any(t in repr(d) for t in ("batch", "host_slot"))]
    assert ours == []


def test_inventory_groups_name_known_vms_with_their_line() -> None:
    text = demo_inventory_path().read_text().replace("STG-APP01]", "STG-APPX]")
    with pytest.raises(InventoryError, match=r"groups\.staging\[1\]: unknown VM 'STG-APPX'; "):
        parse_inventory(text, "inventory.yaml")
    doubled = demo_inventory_path().read_text().replace("[WEB01, WEB02,", "[WEB01, web01,")
    with pytest.raises(InventoryError, match="listed twice"):
        parse_inventory(doubled, "inventory.yaml")


def _settle(ctx: AppContext, job_ids: list[int]) -> None:
    for job_id in job_ids:
        assert ctx.ledger.wait(job_id, timeout=WAIT).state in ("succeeded", "failed")


def test_a_wave_is_rolled_back_with_one_approval_then_merged(ctx: AppContext) -> None:
    out = create_batch(
        ctx, Selection.of(["WEB01", "STG-WEB01", "CORP-DC01"]), reason="wave", requester="alice"
    )
    _settle(ctx, [o.job_id for o in out.outcomes if o.job_id is not None])
    ref = out.batch.ref

    # WEB01 is prod: its rollback needs an approver, so the whole batch's does.
    asked = rollback_batch(ctx, ref, requester="alice")
    assert asked.decision.verdict.value == "needs_approval" and asked.job_ids == []
    results = {m.vm: m.result.value for m in asked.members}
    assert results == {
        "WEB01": "awaits_approval",
        "STG-WEB01": "awaits_approval",
        "CORP-DC01": "skipped",
    }
    assert show_batch(ctx, ref).state.value == "active"
    # The requester is never an approver: nothing is approved, each says why.
    mine = approve_batch(ctx, ref, approver="alice")
    assert mine.outcomes == () and len(mine.problems) == 2
    assert all("requester" in why for _, why in mine.problems)

    approved = approve_batch(ctx, ref, approver="bob")
    assert len(approved.job_ids) == 2
    _settle(ctx, approved.job_ids)
    batch = show_batch(ctx, ref)
    assert batch.state.value == "rolled_back", batch.members
    kinds = [e.kind for e in batch.events]
    assert kinds == ["requested", "members_recorded", "rollback_awaits_approval", "approved"]

    kept = merge_batch(ctx, ref, requester="alice")
    assert kept.decision.verdict.value == "allow" and len(kept.job_ids) == 2
    _settle(ctx, kept.job_ids)
    assert show_batch(ctx, ref).state.value == "done"
    nothing = "no member to roll back: WEB01 is merged, STG-WEB01 is merged, CORP-DC01 is denied"
    with pytest.raises(Conflict, match=nothing):
        rollback_batch(ctx, ref, requester="alice")


def test_the_strictest_decision_wins() -> None:
    def need(required: int, users: tuple[str, ...]) -> Decision:
        return Decision(
            Verdict.NEEDS_APPROVAL, (), approval=ApprovalRequirement(required, users=users)
        )

    allow, deny = Decision(Verdict.ALLOW, ()), Decision(Verdict.DENY, ())
    one_anyone, two, one_named = need(1, ("*",)), need(2, ("*",)), need(1, ("carol",))
    assert strictest([allow, one_anyone, allow]) is one_anyone
    assert strictest([one_anyone, two, one_named]) is two
    assert strictest([one_anyone, one_named]) is one_named
    assert strictest([two, deny, allow]) is deny
    assert strictest([allow]) is allow


# Creating WEB01 needs one approver, creating WEB02 two (named ones):
# a wave with both needs what WEB02's needs, for all its members.
WAVE_APPROVALS = """
rules:
  approvals:
    overrides:
      - scope: {names: [WEB01]}
        params: {count: 1, actions: [create, rollback]}
      - scope: {names: [WEB02]}
        params: {count: 2, users: [bob, carol, dave], actions: [create, rollback]}
"""


@pytest.fixture
def strict(tmp_path: Path, db_url: str) -> Iterator[AppContext]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(WAVE_APPROVALS, encoding="utf-8")
    settings = dataclasses.replace(settings_for(tmp_path, db_url), policy_files=(policy,))
    context = build_context(settings, clock=ScaledClock(600, start=T0), huey_kind="memory")
    # The jobs only: at 600x the periodic sweep (every 6 h) comes round every
    # 36 s of real time, and a slow run crossed one between a wave's create
    # and the test's own sweep (its sizes appeared early, seen once in CI).
    context.start_workers(periodic=False)
    try:
        yield context
    finally:
        context.close()


def test_a_waves_create_waits_for_one_approval_its_strictest_members(
    strict: AppContext,
) -> None:
    """One approval for the wave: every member that is not refused waits
    for what its strictest member needs (WEB02's two named approvers), the
    staging VM the policy allows too; one click per approver carries out
    all of them, and the refused member stays refused."""
    ctx = strict
    selection = Selection.of(["WEB01", "WEB02", "STG-WEB01", "CORP-DC01"])
    preview = preview_batch(ctx, selection, requester="alice", reason="wave")
    need = preview.wave_approval
    assert need is not None and need.approval is not None and need.approval.required == 2
    assert preview.summary().startswith(
        "4 VMs: 3 can be checkpointed after 2 approvals from @bob, @carol or @dave (not the "
        "requester) for the whole wave, 1 is refused (CORP-DC01: "
    )
    out = create_batch(ctx, selection, reason="KB5044284 wave", requester="alice")
    assert [o.change.state for o in out.outcomes] == [
        "awaiting_approval",
        "awaiting_approval",
        "awaiting_approval",
        "denied",
    ]
    assert all(o.job_id is None for o in out.outcomes)
    batch = show_batch(ctx, out.batch.ref)
    assert batch.state.value == "awaiting_approval" and batch.awaiting == 3
    waits = next(e for e in batch.events if e.kind == "create_awaits_approval")
    assert waits.details["members"] == ["WEB01", "WEB02", "STG-WEB01"]
    assert "so it asks for the most that any one of its members needs" in waits.message
    with session_scope(ctx.engine) as s:
        assert s.exec(select(Job)).all() == []
        stg = s.exec(select(Change).where(col(Change.vm_name) == "STG-WEB01")).one()
        # Its own decision is kept for the record: the policy allowed it alone.
        assert stg.decision["verdict"] == "allow"

    # The requester is never an approver; someone not named is refused.
    assert approve_batch(ctx, out.batch.ref, approver="alice").outcomes == ()
    eve = approve_batch(ctx, out.batch.ref, approver="eve")
    assert eve.outcomes == () and len(eve.problems) == 3
    half = approve_batch(ctx, out.batch.ref, approver="bob")
    assert [o.state for o in half.outcomes] == ["pending"] * 3 and half.job_ids == []
    done = approve_batch(ctx, out.batch.ref, approver="carol")
    assert len(done.job_ids) == 3
    _settle(ctx, done.job_ids)
    after = show_batch(ctx, out.batch.ref)
    assert after.state.value == "active", after.members
    assert [m.state for m in after.members] == ["active", "active", "active", "denied"]


def test_a_wave_nobody_needs_to_approve_runs_at_once(strict: AppContext) -> None:
    out = create_batch(
        strict, Selection.of(["STG-WEB01", "STG-APP01"]), reason="staging", requester="alice"
    )
    assert out.preview.wave_approval is None
    assert all(o.job_id is not None for o in out.outcomes)
    assert "create_awaits_approval" not in [e.kind for e in out.batch.events]


def test_a_cluster_selects_its_nodes_vms_and_bounds_their_jobs(ctx: AppContext) -> None:
    def names(sel: Selection) -> list[str]:
        return [c.vm for c in preview_batch(ctx, sel, requester="alice", reason="wave").candidates]

    # HV01 and HV02 are prod-cluster's nodes (docs/clusters.md); HV03 stands alone.
    assert names(Selection.of(clusters=["PROD-cluster"], tags=["tier=web"])) == ["WEB01", "WEB02"]
    with pytest.raises(
        BadRequest, match=r"no cluster named 'prodcluster'.*did you mean prod-cluster"
    ):
        preview_batch(ctx, Selection.of(clusters=["prodcluster"]), requester="a", reason="w")
    assert single_vm(["WEB01"], adders=["prod-cluster"]) is None  # a wave of its VMs
    assert Selection.of(clusters=["prod-cluster"]).describe() == "--cluster prod-cluster"

    out = create_batch(ctx, Selection.of(["WEB01", "STG-WEB01"]), reason="w", requester="alice")
    with session_scope(ctx.engine) as s:
        payloads = {j.host: j.payload for j in s.exec(select(Job)).all()}
    assert {k: v for k, v in payloads["HV01"].items() if k != "token"} == {
        "host_limit": 2,
        "cluster": "prod-cluster",
        "cluster_limit": 3,
    }
    assert {k: v for k, v in payloads["HV03"].items() if k != "token"} == {"host_limit": 2}
    _settle(ctx, [o.job_id for o in out.outcomes if o.job_id is not None])


def test_a_waves_approval_is_noted_before_any_members_job_can_end(
    tmp_path: Path, db_url: str
) -> None:
    """Jobs here run as soon as they are delivered, in the approver's thread
    (the fastest any worker could take them): the wave's "approved" is
    recorded before any member's job ends, so the "finished" the thread
    notes when the last one ends (bot/notify/thread.py) comes after it."""
    from tests.helpers import inline_context

    policy = tmp_path / "policy.yaml"
    policy.write_text(WAVE_APPROVALS, encoding="utf-8")
    settings = dataclasses.replace(settings_for(tmp_path, db_url), policy_files=(policy,))
    ctx = inline_context(settings)
    try:
        out = create_batch(
            ctx, Selection.of(["WEB01", "STG-WEB01"]), reason="KB5044284", requester="alice"
        )
        done = approve_batch(ctx, out.batch.ref, approver="bob")
        assert len(done.job_ids) == 2
        assert not any(o.waits_for_queue for o in done.outcomes)
        after = show_batch(ctx, out.batch.ref)
        assert after.state.value == "active", after.members
        approved = next(e for e in after.events if e.kind == "approved")
        ended = [ctx.ledger.get(job_id).finished_at for job_id in done.job_ids]
        assert all(at is not None and at >= approved.at for at in ended), (approved.at, ended)
    finally:
        ctx.close()
