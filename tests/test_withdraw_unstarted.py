"""A command interrupted (Ctrl-C) before its job started takes the job back
(bot.service.withdrawal.withdraw_unstarted): a create's change ends
withdrawn, its job is cancelled, and no worker can start it any more. A job a worker
already claimed is not touched: it runs, and the interrupted command says
so. Real SQLite or PostgreSQL (`db_url`), the simulated estate, the jobs
run by hand."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.clock import ManualClock
from bot.context import AppContext, build_context
from bot.service import (
    Principal,
    request_checkpoint,
    show_change,
    withdraw_unstarted,
)
from tests.helpers import settings_for

ALICE = Principal("cli:alice")


@pytest.fixture
def ctx(tmp_path: Path, db_url: str, clock: ManualClock) -> Iterator[AppContext]:
    # No consumer: a worker's claim is played by the test.
    context = build_context(settings_for(tmp_path, db_url), clock=clock, huey_kind="memory")
    try:
        yield context
    finally:
        context.close()


def test_a_queued_create_is_withdrawn_and_its_job_can_no_longer_be_claimed(
    ctx: AppContext,
) -> None:
    out = request_checkpoint(ctx, "WEB01", reason="patch", requester="cli:alice")
    assert out.job_id is not None
    host = ctx.host_for(out.change.host)
    assert withdraw_unstarted(ctx, out.change.id, ALICE)
    change = show_change(ctx, out.change.ref)
    assert change.state == "withdrawn"
    assert change.events[-1].actor == "cli:alice"
    assert not ctx.ledger.claim(out.job_id, "w1").won
    assert ctx.ledger.get(out.job_id).state == "cancelled"
    assert host.list_checkpoints(out.change.vm_id) == []
    # Once: a second interrupt finds nothing queued.
    assert not withdraw_unstarted(ctx, out.change.id, ALICE)


def test_a_create_a_worker_already_claimed_is_left_to_run(ctx: AppContext) -> None:
    out = request_checkpoint(ctx, "WEB01", reason="patch", requester="cli:alice")
    assert out.job_id is not None
    assert ctx.ledger.claim(out.job_id, "w1").won  # re-checking, not yet `creating`
    assert not withdraw_unstarted(ctx, out.change.id, ALICE)
    assert show_change(ctx, out.change.ref).state == "approved"
    assert ctx.ledger.get(out.job_id).state == "running"
