"""The use cases end to end in one process: service → ledger → Huey →
executor → simulated host, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from bot.context import AppContext
from bot.hyperv import VMState
from bot.service import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    approve,
    extend,
    list_checkpoints,
    merge,
    reject,
    request_checkpoint,
    rollback,
    show_change,
)
from bot.service.queries import audit_rows
from bot.store.db import session_scope
from bot.store.models import Change


@pytest.fixture
def ctx(inline_ctx: AppContext) -> AppContext:
    # Jobs run inline: the call that recorded one returns once it finished.
    return inline_ctx


def _done(ctx: AppContext, job_id: int | None) -> str:
    assert job_id is not None
    return ctx.ledger.get(job_id).state


def test_checkpoint_lifecycle_create_rollback_merge(
    ctx: AppContext, caplog: pytest.LogCaptureFixture
) -> None:
    out = request_checkpoint(ctx, "web01", reason="KB5044284", requester="alice", ttl="24h")
    # Approved without anyone, and (inline) already taken when the call returns.
    assert out.change.state == "active" and not out.refused
    assert _done(ctx, out.job_id) == "succeeded"
    change = show_change(ctx, out.change.ref)
    assert change.state == "active" and change.checkpoint_id
    assert change.expires_at is not None

    rows = list_checkpoints(ctx, vm="WEB01").rows
    assert [(r.id, r.change_ref) for r in rows] == [(change.checkpoint_id, change.ref)]

    host = ctx.host_for(change.host)
    assert host.get_vm(change.vm_id).state is VMState.Running
    # Shipped policy: rolling back a prod VM needs one approver, never the requester.
    back = rollback(ctx, change.ref, requester="alice")
    assert back.waiting and back.job_id is None
    assert show_change(ctx, change.ref).state == "active"
    with (
        caplog.at_level(logging.INFO, logger="bot.service.approvals"),
        pytest.raises(Forbidden, match="requester"),
    ):
        approve(ctx, change.ref, approver="alice")
    # Who tried is kept for an audit, in the log (the change's record is not grown).
    [tried] = [r.getMessage() for r in caplog.records if r.name == "bot.service.approvals"]
    assert tried.startswith(f"{change.ref}: alice approve refused: @alice asked for ")
    approved = approve(ctx, change.ref, approver="bob")
    assert approved.state == "approved"
    assert _done(ctx, approved.job_id) == "succeeded"
    after = show_change(ctx, change.ref)
    assert after.state == "rolled_back"
    # A production restore leaves the VM off; the bot starts it again.
    assert host.get_vm(change.vm_id).state is VMState.Running
    assert "started again" in after.events[-1].message
    with pytest.raises(Conflict, match="nothing waiting for approval"):
        approve(ctx, change.ref, approver="carol")

    kept = merge(ctx, change.checkpoint_id, requester="bob")
    assert _done(ctx, kept.job_id) == "succeeded"
    final = show_change(ctx, change.ref)
    assert final.state == "merged"
    assert list_checkpoints(ctx, vm="WEB01").rows == ()
    kinds = [e.kind for e in final.events]
    assert kinds == [
        "requested",
        "approve",
        "start_create",
        "created",
        "rollback_awaits_approval",
        "approval",
        "start_rollback",
        "rolled_back",
        "start_merge",
        "merged",
    ]
    assert len(list(audit_rows(ctx))) == len(kinds)


def test_extend_within_and_beyond_the_maximum(ctx: AppContext) -> None:
    out = request_checkpoint(ctx, "STG-WEB01", reason="upgrade", requester="alice", ttl="24h")
    assert _done(ctx, out.job_id) == "succeeded"
    before = show_change(ctx, out.change.ref).expires_at
    assert before is not None
    longer = extend(ctx, out.change.ref, "24h", requester="alice")
    assert longer.decision.verdict.value == "allow"
    assert show_change(ctx, out.change.ref).expires_at == before + timedelta(hours=24)
    much = extend(ctx, out.change.ref, "10d", requester="alice")
    assert much.waiting
    assert show_change(ctx, out.change.ref).expires_at == before + timedelta(hours=24)
    done = approve(ctx, out.change.ref, approver="bob")
    assert done.state == "approved"
    assert show_change(ctx, out.change.ref).expires_at == before + timedelta(days=11)


def test_single_dc_domain_gets_production_only_and_a_warning(ctx: AppContext) -> None:
    out = request_checkpoint(ctx, "LAB-DC01", reason="patch", requester="alice")
    assert not out.refused and out.decision.warnings
    assert out.change.checkpoint_type == "production-only"
    assert _done(ctx, out.job_id) == "succeeded"
    kinds = [e.kind for e in show_change(ctx, out.change.ref).events]
    assert "warning" in kinds and "adjusted" in kinds


def test_replica_rollback_needs_approval(ctx: AppContext) -> None:
    out = request_checkpoint(ctx, "REPL-APP01", reason="patch", requester="alice")
    assert _done(ctx, out.job_id) == "succeeded"
    back = rollback(ctx, out.change.ref, requester="alice")
    assert back.waiting
    assert "Resynchronization" in " ".join(back.decision.warnings + back.decision.reasons)
    rejected = reject(ctx, out.change.ref, approver="bob", reason="not now")
    assert rejected.state == "rejected"
    assert show_change(ctx, out.change.ref).state == "active"


def test_multi_dc_domain_controller_is_refused_and_recorded(ctx: AppContext) -> None:
    out = request_checkpoint(ctx, "CORP-DC01", reason="patch", requester="alice")
    assert out.refused and out.job_id is None
    assert out.change.state == "denied"
    assert any("USN rollback" in r for r in out.decision.reasons)
    assert list_checkpoints(ctx, vm="CORP-DC01").rows == ()


@pytest.mark.parametrize(
    ("vm", "words"),
    [
        ("FC-NODE1", "cluster"),
        ("SQL01", "availability group"),
        ("EXCH01", "Exchange"),
        ("FS01", "DFS"),
    ],
)
def test_other_guardrails_refuse(ctx: AppContext, vm: str, words: str) -> None:
    out = request_checkpoint(ctx, vm, reason="patch", requester="alice")
    assert out.refused and words in " ".join(out.decision.reasons)


@pytest.mark.parametrize(("vm", "words"), [("LEGACY01", "disabled"), ("SAN-VM01", "pass-through")])
def test_vms_that_cannot_be_checkpointed_are_refused(ctx: AppContext, vm: str, words: str) -> None:
    out = request_checkpoint(ctx, vm, reason="patch", requester="alice")
    assert out.refused and words in " ".join(out.decision.reasons)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"vm_name": "WEB1", "reason": "x"}, "did you mean"),
        ({"vm_name": "WEB*", "reason": "x"}, "'*'"),
        ({"vm_name": "WEB01", "reason": "  "}, "a reason is required"),
        ({"vm_name": "WEB01", "reason": "x", "ttl": "soon"}, "not a duration"),
        ({"vm_name": "WEB01", "reason": "x", "checkpoint_type": "fast"}, "unknown checkpoint type"),
    ],
)
def test_bad_input_writes_nothing(ctx: AppContext, kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        request_checkpoint(ctx, requester="alice", **kwargs)  # type: ignore[arg-type]
    with session_scope(ctx.engine) as s:
        assert s.exec(select(Change)).all() == []


def test_ttl_beyond_the_maximum_is_refused(ctx: AppContext) -> None:
    out = request_checkpoint(ctx, "WEB01", reason="x", requester="alice", ttl="30d")
    assert out.refused and "7d" in " ".join(out.decision.reasons)


def test_second_rollback_click_is_refused_politely(ctx: AppContext) -> None:
    out = request_checkpoint(ctx, "STG-APP01", reason="upgrade", requester="alice")
    assert _done(ctx, out.job_id) == "succeeded"
    first = rollback(ctx, out.change.ref, requester="alice")
    with pytest.raises(Conflict, match=r"is already rolling back|was already rolled back"):
        rollback(ctx, out.change.ref, requester="alice")
    assert _done(ctx, first.job_id) == "succeeded"


def test_unknown_refs(ctx: AppContext) -> None:
    with pytest.raises(NotFound, match="no change CHG-0099"):
        rollback(ctx, "CHG-99", requester="a")
    with pytest.raises(NotFound, match="not owned by any change") as orphan:
        merge(ctx, "0f8fad5b-d9cb-469f-a165-70867728950e", requester="a")
    # How to act on it all the same: adopt it (seen: no word of how).
    assert orphan.value.message.endswith(
        "To act on it, adopt it first: the Adopt button of the sweep digest in Slack, "
        "`checkpoint-bot sweep adopt 0f8fad5b-d9cb-469f-a165-70867728950e` on the CLI"
    )
    # Not an id, and no name a VM can have: all three said at once.
    with pytest.raises(BadRequest, match=r"neither a change id .* nor a VM's name"):
        merge(ctx, "yesterday's", requester="a")
    with pytest.raises(BadRequest, match="no VM named 'WEB1' in the inventory; did you mean"):
        merge(ctx, "WEB1", requester="a")


def test_production_falling_back_to_standard_is_recorded(ctx: AppContext) -> None:
    out = request_checkpoint(ctx, "STG-APP01", reason="upgrade", requester="alice")
    assert _done(ctx, out.job_id) == "succeeded"
    change = show_change(ctx, out.change.ref)
    assert change.state == "active"
    warnings = [e for e in change.events if "fell back to a standard checkpoint" in e.message]
    assert len(warnings) == 1
    assert (change.checkpoint_type, change.taken_type) == ("production", "standard")
    assert "holds the VM's memory" in (change.taken_evidence or "")
    row = list_checkpoints(ctx, vm="STG-APP01").rows[0]
    assert (row.asked, row.taken, row.snapshot_type) == ("production", "standard", "Standard")


def test_policy_is_asked_again_right_before_the_job_runs(tmp_path: Path) -> None:
    from bot.clock import ScaledClock
    from bot.context import build_context
    from bot.hyperv import CheckpointType
    from tests.helpers import T0, run_inline, settings_for

    ctx = build_context(
        settings_for(tmp_path), clock=ScaledClock(600, start=T0), huey_kind="memory"
    )
    try:
        out = request_checkpoint(ctx, "APP01", reason="deploy", requester="alice")
        assert out.change.state == "approved"
        # Between the request and the job, someone disables checkpoints on the host.
        ctx.host_for("HV01").set_checkpoint_settings(
            out.change.vm_id, checkpoint_type=CheckpointType.Disabled
        )
        # Only now does the job run, as a consumer would run it.
        assert out.job_id is not None
        run_inline(ctx.runner, out.job_id)
        change = show_change(ctx, out.change.ref)
        assert change.state == "denied"
        assert change.events[-1].message.startswith("re-checked before running")
        assert list_checkpoints(ctx, vm="APP01").rows == ()
    finally:
        ctx.close()


def test_a_denial_at_the_recheck_after_an_approval_names_only_what_refuses(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Seen: an approved create refused at its re-check (checkpoints disabled
    meanwhile) cited the approval rule too, which its approval had met."""
    from dataclasses import replace

    from bot.clock import ScaledClock
    from bot.context import build_context
    from bot.hyperv import CheckpointType
    from bot.service import approve
    from tests.helpers import T0, run_inline, settings_for

    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "rules:\n  approvals:\n    overrides:\n      - scope: {tags: {env: prod}}\n"
        "        params: {count: 1, actions: [create]}\n",
        encoding="utf-8",
    )
    settings = replace(settings_for(tmp_path), policy_files=(policy,))
    ctx = build_context(settings, clock=ScaledClock(600, start=T0), huey_kind="memory")
    try:
        out = request_checkpoint(ctx, "APP01", reason="deploy", requester="alice")
        assert out.change.state == "awaiting_approval"
        done = approve(ctx, out.change.ref, approver="bob")
        ctx.host_for("HV01").set_checkpoint_settings(
            out.change.vm_id, checkpoint_type=CheckpointType.Disabled
        )
        assert done.job_id is not None
        with caplog.at_level(logging.INFO, logger="checkpoint_bot.jobs"):
            run_inline(ctx.runner, done.job_id)
        # The worker's log says what the job did, not the ledger's "succeeded".
        [ended] = [r.getMessage() for r in caplog.records if "after" in r.getMessage()]
        assert (
            f"job {done.job_id} (create) refused at its re-check, nothing done on the host" in ended
        )
        change = show_change(ctx, out.change.ref)
        assert change.state == "denied"
        said = change.events[-1].message
        assert said.startswith("re-checked before running: ") and "Disabled" in said
        assert "approv" not in said, said
    finally:
        ctx.close()
