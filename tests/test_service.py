"""The use cases end to end in one process: service → ledger → Huey →
executor → simulated host, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import select

from bot.context import AppContext
from bot.hyperv import VMState
from bot.service import (
    BadRequest,
    Conflict,
    NotFound,
    list_checkpoints,
    merge,
    request_checkpoint,
    rollback,
    show_change,
)
from bot.service.queries import audit_rows
from bot.store.db import session_scope
from bot.store.models import Change
from tests.helpers import running_context

WAIT = 30.0


@pytest.fixture
def ctx(tmp_path: Path, db_url: str) -> AppContext:
    with running_context(tmp_path, db_url) as context:
        yield context  # type: ignore[misc]


def _done(ctx: AppContext, job_id: int | None) -> str:
    assert job_id is not None
    return ctx.ledger.wait(job_id, timeout=WAIT).state


def test_checkpoint_lifecycle_create_rollback_merge(ctx: AppContext) -> None:
    out = request_checkpoint(ctx, "web01", reason="KB5044284", requester="alice", ttl="24h")
    assert out.change.state == "approved" and not out.refused
    assert _done(ctx, out.job_id) == "succeeded"
    change = show_change(ctx, out.change.ref)
    assert change.state == "active" and change.checkpoint_id
    assert change.expires_at is not None

    rows = list_checkpoints(ctx, vm="WEB01").rows
    assert [(r.id, r.change_ref) for r in rows] == [(change.checkpoint_id, change.ref)]

    host = ctx.host_for(change.host)
    assert host.get_vm(change.vm_id).state is VMState.Running
    back = rollback(ctx, change.ref, requester="alice")
    assert _done(ctx, back.job_id) == "succeeded"
    after = show_change(ctx, change.ref)
    assert after.state == "rolled_back"
    # A production restore leaves the VM off; the bot starts it again.
    assert host.get_vm(change.vm_id).state is VMState.Running
    assert "started again" in after.events[-1].message

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
        "start_rollback",
        "rolled_back",
        "start_merge",
        "merged",
    ]
    assert len(list(audit_rows(ctx))) == len(kinds)


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


def test_single_dc_domain_is_allowed(ctx: AppContext) -> None:
    out = request_checkpoint(ctx, "LAB-DC01", reason="patch", requester="alice")
    assert not out.refused
    assert _done(ctx, out.job_id) == "succeeded"


def test_disabled_checkpoints_fail_with_the_hosts_words(ctx: AppContext) -> None:
    out = request_checkpoint(ctx, "LEGACY01", reason="patch", requester="alice")
    assert _done(ctx, out.job_id) == "failed"
    change = show_change(ctx, out.change.ref)
    assert change.state == "failed"
    assert "disabled" in (change.last_error or "")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"vm_name": "WEB1", "reason": "x"}, "did you mean"),
        ({"vm_name": "WEB*", "reason": "x"}, "'*'"),
        ({"vm_name": "WEB01", "reason": "  "}, "a reason is required"),
        ({"vm_name": "WEB01", "reason": "x", "ttl": "soon"}, "not a duration"),
        ({"vm_name": "WEB01", "reason": "x", "ttl": "30d"}, "longer than the maximum"),
        ({"vm_name": "WEB01", "reason": "x", "checkpoint_type": "fast"}, "unknown checkpoint type"),
    ],
)
def test_bad_input_writes_nothing(ctx: AppContext, kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        request_checkpoint(ctx, requester="alice", **kwargs)  # type: ignore[arg-type]
    with session_scope(ctx.engine) as s:
        assert s.exec(select(Change)).all() == []


def test_second_rollback_click_is_refused_politely(ctx: AppContext) -> None:
    out = request_checkpoint(ctx, "APP01", reason="upgrade", requester="alice")
    assert _done(ctx, out.job_id) == "succeeded"
    first = rollback(ctx, out.change.ref, requester="alice")
    with pytest.raises(Conflict, match="cannot start rollback"):
        rollback(ctx, out.change.ref, requester="alice")
    assert _done(ctx, first.job_id) == "succeeded"


def test_unknown_refs(ctx: AppContext) -> None:
    with pytest.raises(NotFound, match="no change CHG-0099"):
        rollback(ctx, "CHG-99", requester="a")
    with pytest.raises(NotFound, match="not owned by any change"):
        merge(ctx, "0f8fad5b-d9cb-469f-a165-70867728950e", requester="a")
    with pytest.raises(BadRequest, match="neither a change id"):
        merge(ctx, "yesterday's", requester="a")
