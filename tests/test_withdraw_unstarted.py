"""A command interrupted (Ctrl-C) before its job started takes the job back
(bot.service.withdrawal.withdraw_unstarted): a create's change ends
withdrawn, a rollback's or merge's goes back to active with its checkpoint
untouched, the job is cancelled, and no worker can start it any more. A job a worker
already claimed is not touched: it runs, and the interrupted command says
so. Real SQLite or PostgreSQL (`db_url`), the simulated estate, the jobs
run by hand."""

from __future__ import annotations

import pytest

from bot.context import AppContext
from bot.service import (
    Principal,
    merge,
    request_checkpoint,
    rollback,
    show_change,
    withdraw_unstarted,
)

ALICE = Principal("cli:alice")


@pytest.fixture
def ctx(idle_ctx: AppContext) -> AppContext:
    return idle_ctx  # no consumer: every job step here is played by the test


def test_a_queued_create_is_withdrawn_and_its_job_can_no_longer_be_claimed(
    ctx: AppContext,
) -> None:
    out = request_checkpoint(ctx, "WEB01", reason="patch", requester="cli:alice")
    assert out.job_id is not None
    host = ctx.host_for(out.change.host)
    assert withdraw_unstarted(ctx, out.change.id, "create", ALICE)
    change = show_change(ctx, out.change.ref)
    assert change.state == "withdrawn"
    assert change.events[-1].actor == "cli:alice"
    assert not ctx.ledger.claim(out.job_id, "w1").won
    assert ctx.ledger.get(out.job_id).state == "cancelled"
    assert host.list_checkpoints(out.change.vm_id) == []
    # Once: a second interrupt finds nothing queued.
    assert not withdraw_unstarted(ctx, out.change.id, "create", ALICE)


def test_a_create_a_worker_already_claimed_is_left_to_run(ctx: AppContext) -> None:
    out = request_checkpoint(ctx, "WEB01", reason="patch", requester="cli:alice")
    assert out.job_id is not None
    assert ctx.ledger.claim(out.job_id, "w1").won  # re-checking, not yet `creating`
    assert not withdraw_unstarted(ctx, out.change.id, "create", ALICE)
    assert show_change(ctx, out.change.ref).state == "approved"
    assert ctx.ledger.get(out.job_id).state == "running"


@pytest.mark.parametrize("action", ["rollback", "merge"])
def test_a_queued_rollback_or_merge_is_taken_back_and_the_checkpoint_stays(
    ctx: AppContext, action: str
) -> None:
    # Staging: the shipped policy asks no approval for its rollback.
    created = request_checkpoint(ctx, "STG-WEB01", reason="patch", requester="cli:alice")
    assert created.job_id is not None
    ctx.runner.run(created.job_id)
    active = show_change(ctx, created.change.ref)
    host = ctx.host_for(active.host)
    vm_before = host.get_vm(active.vm_id).state
    ask = rollback if action == "rollback" else merge
    asked = ask(ctx, created.change.ref, requester="cli:alice")
    assert asked.job_id is not None
    assert show_change(ctx, created.change.ref).state in ("rolling_back", "merging")
    assert withdraw_unstarted(ctx, created.change.id, action, ALICE)
    change = show_change(ctx, created.change.ref)
    assert change.state == "active"
    assert change.events[-1].message == (
        f"{action} withdrawn: its command was interrupted (Ctrl-C) before it started; "
        "nothing was done on HV03, the checkpoint is kept"
    )
    assert not ctx.ledger.claim(asked.job_id, "w1").won
    assert [c.id for c in host.list_checkpoints(change.vm_id)] == [change.checkpoint_id]
    assert host.get_vm(change.vm_id).state == vm_before
    # It may be asked for again, as any request (a merge then waits for the
    # host's disk merge, which this test's clock does not move: not run).
    again = ask(ctx, created.change.ref, requester="cli:alice")
    assert again.job_id is not None and again.job_id != asked.job_id
    if action == "rollback":
        ctx.runner.run(again.job_id)
        assert show_change(ctx, created.change.ref).state == "rolled_back"
