"""The tests' inline job mode (tests.helpers.run_inline): what other tests
rely on when they assert right after a service call, on SQLite and on
PostgreSQL. The queue itself is tested in test_jobs_runner, test_job_outbox
and test_multiprocess; this is only the promise the inline mode makes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.clock import ManualClock
from bot.context import AppContext
from bot.service import list_checkpoints, parse_at, request_checkpoint, show_change
from tests.helpers import run_inline, running_context

ZONE = ZoneInfo("UTC")


def test_the_job_has_finished_when_the_request_returns(inline_ctx: AppContext) -> None:
    out = request_checkpoint(inline_ctx, "STG-WEB01", reason="patch", requester="alice")
    assert out.job_id is not None
    job = inline_ctx.ledger.get(out.job_id)
    # Through the runner's claim, by this process's worker id, once.
    assert (job.state, job.worker, job.attempt) == ("succeeded", inline_ctx.worker_id, 1)
    assert out.change.state == "active"
    assert [r.change_ref for r in list_checkpoints(inline_ctx, vm="STG-WEB01").rows] == [
        out.change.ref
    ]


def test_delivering_a_finished_job_again_runs_nothing(inline_ctx: AppContext) -> None:
    out = request_checkpoint(inline_ctx, "STG-WEB01", reason="patch", requester="alice")
    assert out.job_id is not None
    inline_ctx.deliver(out.job_id)
    run_inline(inline_ctx.runner, out.job_id)
    job = inline_ctx.ledger.get(out.job_id)
    assert (job.state, job.attempt) == ("succeeded", 1)
    assert len(list_checkpoints(inline_ctx, vm="STG-WEB01").rows) == 1


def test_a_job_for_later_is_left_for_its_time(tmp_path: Path, db_url: str) -> None:
    clock = ManualClock(parse_at("2026-11-24 08:00", ZONE, source="cli").instant)
    with running_context(tmp_path, db_url, clock, inline=True) as ctx:
        at = parse_at("2026-11-24 10:00", ZONE, source="cli")
        out = request_checkpoint(ctx, "STG-WEB01", reason="patch", requester="alice", at=at)
        assert out.job_id is not None
        job = ctx.ledger.get(out.job_id)
        assert job.state == "queued" and job.not_before == at.instant
        assert list_checkpoints(ctx, vm="STG-WEB01").rows == ()
        # Delivered early (a tick, a duplicate): still not before its time.
        run_inline(ctx.runner, out.job_id)
        assert ctx.ledger.get(out.job_id).state == "queued"
        clock.advance(timedelta(hours=2))
        run_inline(ctx.runner, out.job_id)
        assert ctx.ledger.get(out.job_id).state == "succeeded"
        assert show_change(ctx, out.change.ref).state == "active"
