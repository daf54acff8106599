"""Bounded concurrency per host in the job ledger (bot.jobs.hostslots), on
SQLite and PostgreSQL: a job with a host limit runs only in a free slot of
its host; finishing frees the slot; a dead holder's slot is taken over."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine

from bot.clock import ManualClock
from bot.jobs import ClaimOutcome, JobLedger
from bot.jobs.runner import HOST_BUSY_PAST_DEADLINE, JobRunner, RunStatus
from tests.helpers import T0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def ledger(engine: Engine, clock: ManualClock) -> JobLedger:
    return JobLedger(engine, clock, lock_stale_after=timedelta(seconds=30))


def _job(ledger: JobLedger, n: int, host: str = "HV01", limit: int | None = 2) -> int:
    payload = {} if limit is None else {"host_limit": limit}
    job, _ = ledger.submit(
        "create",
        vm_id=f"vm-{n}",
        host=host,
        change_id=None,
        payload=payload,
        idempotency_key=f"k{n}",
        destructive=False,
        deadline=timedelta(minutes=5),
    )
    assert job.id is not None
    return job.id


def test_a_third_bounded_job_on_a_host_waits_for_a_slot(ledger: JobLedger) -> None:
    a, b, c = (_job(ledger, n) for n in (1, 2, 3))
    other_host = _job(ledger, 4, host="HV02")
    unbounded = _job(ledger, 5, limit=None)
    assert ledger.claim(a, "w1").won and ledger.claim(b, "w2").won
    busy = ledger.claim(c, "w3")
    assert busy.outcome is ClaimOutcome.HOST_BUSY
    # Nothing of the failed claim is kept: the job is queued, its VM free.
    assert busy.job.state == "queued" and busy.job.attempt == 0
    assert ledger.claim(other_host, "w4").won
    assert ledger.claim(unbounded, "w5").won
    ledger.finish(a, "w1", succeeded=True, result={}, error=None)
    assert ledger.claim(c, "w3").won


def test_a_slot_whose_holder_stopped_beating_is_taken_over(
    ledger: JobLedger, clock: ManualClock
) -> None:
    a, b, c = (_job(ledger, n) for n in (1, 2, 3))
    assert ledger.claim(a, "w1").won and ledger.claim(b, "w2").won
    clock.advance(timedelta(seconds=20))
    assert ledger.heartbeat(b, "w2")
    clock.advance(timedelta(seconds=20))
    # a's worker is silent for 40s (> 30s); b beat 20s ago.
    assert ledger.claim(c, "w3").won
    d = _job(ledger, 4)
    assert ledger.claim(d, "w4").outcome is ClaimOutcome.HOST_BUSY


def test_the_runner_retries_a_host_busy_job_and_fails_it_past_its_deadline(
    ledger: JobLedger, clock: ManualClock
) -> None:
    runner = JobRunner(ledger, {"create": lambda ctx: {}}, "w9", clock=clock)
    a, b, c = (_job(ledger, n) for n in (1, 2, 3))
    assert ledger.claim(a, "w1").won and ledger.claim(b, "w2").won
    first = runner.run(c)
    assert first.status is RunStatus.VM_BUSY and first.retry_after == runner.vm_busy_retry
    # The holders stay alive (they beat) until past c's deadline.
    for _ in range(14):
        clock.advance(timedelta(seconds=25))
        assert ledger.heartbeat(a, "w1") and ledger.heartbeat(b, "w2")
    late = runner.run(c)
    assert late.status is RunStatus.FAILED and late.error == HOST_BUSY_PAST_DEADLINE


def _clustered(ledger: JobLedger, n: int, host: str, cluster_limit: int = 3) -> int:
    job, _ = ledger.submit(
        "create",
        vm_id=f"vm-{n}",
        host=host,
        change_id=None,
        payload={"host_limit": 2, "cluster": "prod-cluster", "cluster_limit": cluster_limit},
        idempotency_key=f"k{n}",
        destructive=False,
        deadline=timedelta(minutes=5),
    )
    assert job.id is not None
    return job.id


def test_a_cluster_bound_holds_across_its_nodes_next_to_the_host_bound(
    ledger: JobLedger,
) -> None:
    """per_host 2, per_cluster 3: two nodes could run 4 between them; the
    cluster's shared storage takes 3. Both bounds are taken in one claim,
    so a job refused by either keeps nothing, and finishing frees both."""
    on_hv01 = [_clustered(ledger, n, "HV01") for n in (1, 2)]
    on_hv02 = [_clustered(ledger, n, "HV02") for n in (3, 4)]
    standalone = _job(ledger, 5, host="HV03")
    assert all(ledger.claim(j, f"w{j}").won for j in [*on_hv01, on_hv02[0]])
    busy = ledger.claim(on_hv02[1], "w9")
    assert busy.outcome is ClaimOutcome.HOST_BUSY  # HV02 has a free slot; the cluster has none
    assert busy.job.state == "queued" and busy.job.attempt == 0
    assert ledger.claim(standalone, "w5").won  # another host: only its own bound
    ledger.finish(on_hv01[0], f"w{on_hv01[0]}", succeeded=True, result={}, error=None)
    assert ledger.claim(on_hv02[1], "w9").won


def test_a_cluster_bound_tighter_than_the_host_bound_wins(ledger: JobLedger) -> None:
    a, b = (_clustered(ledger, n, "HV01", cluster_limit=1) for n in (1, 2))
    assert ledger.claim(a, "w1").won
    assert ledger.claim(b, "w2").outcome is ClaimOutcome.HOST_BUSY
