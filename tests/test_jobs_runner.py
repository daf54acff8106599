"""The runner and the Huey wiring: claims, VM locks, retries, deadlines."""

from __future__ import annotations

import multiprocessing
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from bot.context import build_context
from bot.jobs import (
    DEADLINE_BEFORE_START,
    VM_BUSY_PAST_DEADLINE,
    Handler,
    InProcessConsumer,
    JobContext,
    JobLedger,
    JobQueue,
    JobRunner,
    JobState,
    RunOutcome,
    RunStatus,
    make_huey,
)
from bot.store.db import make_engine
from tests.helpers import settings_for
from tests.test_jobs_ledger import T0, FakeClock, run_together, submit


def utcnow() -> datetime:
    return datetime.now(UTC)


def ok_handler(ctx: JobContext) -> dict[str, Any]:
    return {"vm": ctx.vm_id, "attempt": ctx.attempt}


def make_runner(
    ledger: JobLedger,
    handlers: Mapping[str, Handler],
    worker: str = "w1",
    clock: Any = None,
    **options: Any,
) -> JobRunner:
    return JobRunner(ledger, handlers, worker, clock=clock or ledger.now, **options)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ledger(engine: Engine, clock: FakeClock) -> JobLedger:
    return JobLedger(engine, clock, lock_stale_after=timedelta(seconds=30))


# -- one runner ---------------------------------------------------------------


def test_handler_gets_plain_values_and_its_result_is_stored(ledger: JobLedger) -> None:
    seen: list[JobContext] = []
    progress: list[tuple[int, str]] = []

    def handler(ctx: JobContext) -> dict[str, Any]:
        seen.append(ctx)
        ctx.progress("creating checkpoint")
        ctx.check_deadline()
        return {"checkpoint_id": "abc"}

    job = submit(ledger, "k1", payload={"name": "pre"})
    runner = make_runner(
        ledger, {"create": handler}, on_progress=lambda i, m: progress.append((i, m))
    )
    outcome = runner.run(job.id or 0)
    assert outcome.status is RunStatus.SUCCEEDED and outcome.retry_after is None
    ctx = seen[0]
    assert (ctx.job_id, ctx.kind, ctx.vm_id, ctx.host) == (job.id, "create", "vm-1", "HV01")
    assert ctx.payload == {"name": "pre"} and ctx.attempt == 1
    assert ctx.deadline == T0 + timedelta(minutes=10) and ctx.remaining() == 600
    assert progress == [(job.id, "creating checkpoint")]
    done = ledger.get(job.id or 0)
    assert done.state == JobState.SUCCEEDED and done.result == {"checkpoint_id": "abc"}
    assert ledger.running_for_vm("vm-1") is None
    # A second delivery of the same id does nothing.
    assert runner.run(job.id or 0).status is RunStatus.LOST
    assert len(seen) == 1


def test_destructive_failure_is_final_after_one_attempt(ledger: JobLedger) -> None:
    calls = Counter[int]()

    def handler(ctx: JobContext) -> dict[str, Any]:
        calls[ctx.job_id] += 1
        raise RuntimeError("Restore-VMCheckpoint failed:\n  the VM is merging")

    job = submit(ledger, "k1", kind="restore", destructive=True)
    runner = make_runner(ledger, {"restore": handler})
    outcome = runner.run(job.id or 0)
    assert outcome.status is RunStatus.FAILED and outcome.retry_after is None
    row = ledger.get(job.id or 0)
    assert row.state == JobState.FAILED and row.attempt == 1
    assert row.error == "RuntimeError: Restore-VMCheckpoint failed: the VM is merging"
    assert "Traceback" not in (row.error or "")
    assert runner.run(job.id or 0).status is RunStatus.LOST
    assert calls[job.id or 0] == 1


def test_non_destructive_failure_is_retried_up_to_max_attempts(
    ledger: JobLedger, clock: FakeClock
) -> None:
    calls: list[int] = []

    def handler(ctx: JobContext) -> dict[str, Any]:
        calls.append(ctx.attempt)
        raise TimeoutError("host did not answer")

    job = submit(ledger, "k1", max_attempts=3)
    runner = make_runner(ledger, {"create": handler}, retry_backoff=2.0)
    first = runner.run(job.id or 0)
    assert first.status is RunStatus.REQUEUED and first.retry_after == 2.0
    assert ledger.get(job.id or 0).state == JobState.QUEUED
    early = runner.run(job.id or 0)  # delivered before the backoff ran out
    assert early.status is RunStatus.NOT_DUE and early.retry_after == pytest.approx(2.0)
    clock.advance(2)
    second = runner.run(job.id or 0)
    assert second.status is RunStatus.REQUEUED and second.retry_after == 4.0
    clock.advance(4)
    assert runner.run(job.id or 0).status is RunStatus.FAILED
    row = ledger.get(job.id or 0)
    assert row.state == JobState.FAILED and row.attempt == 3
    assert row.error == "TimeoutError: host did not answer"
    assert calls == [1, 2, 3]


def test_retry_that_succeeds(ledger: JobLedger, clock: FakeClock) -> None:
    def handler(ctx: JobContext) -> dict[str, Any]:
        if ctx.attempt == 1:
            raise ConnectionError("reset")
        return {"ok": True}

    job = submit(ledger, "k1", max_attempts=2)
    runner = make_runner(ledger, {"create": handler})
    assert runner.run(job.id or 0).status is RunStatus.REQUEUED
    clock.advance(1)
    assert runner.run(job.id or 0).status is RunStatus.SUCCEEDED
    assert ledger.get(job.id or 0).result == {"ok": True}


def test_unknown_kind_fails_clearly(ledger: JobLedger) -> None:
    job = submit(ledger, "k1", kind="defrag")
    assert make_runner(ledger, {"create": ok_handler}).run(job.id or 0).status is RunStatus.FAILED
    assert "no handler for job kind 'defrag'" in (ledger.get(job.id or 0).error or "")


def test_handler_can_check_its_deadline(ledger: JobLedger, clock: FakeClock) -> None:
    def handler(ctx: JobContext) -> dict[str, Any]:
        clock.advance(ctx.remaining() + 1)
        ctx.check_deadline()
        return {}

    job = submit(ledger, "k1", deadline=timedelta(seconds=30), max_attempts=3)
    assert make_runner(ledger, {"create": handler}).run(job.id or 0).status is RunStatus.FAILED
    error = ledger.get(job.id or 0).error or ""
    assert error.startswith("JobDeadlineExceeded: job") and "passed its deadline" in error


def test_job_claimed_after_its_deadline_does_not_run(ledger: JobLedger, clock: FakeClock) -> None:
    calls: list[int] = []
    job = submit(ledger, "k1", deadline=timedelta(seconds=5))
    clock.advance(6)

    def handler(ctx: JobContext) -> dict[str, Any]:
        calls.append(1)
        return {}

    runner = make_runner(ledger, {"create": handler})
    assert runner.run(job.id or 0).status is RunStatus.FAILED
    assert ledger.get(job.id or 0).error == DEADLINE_BEFORE_START and calls == []


def test_vm_busy_is_retried_then_runs(ledger: JobLedger) -> None:
    first, second = submit(ledger, "a"), submit(ledger, "b")
    assert ledger.claim(first.id or 0, "other-worker").won
    runner = make_runner(ledger, {"create": ok_handler}, vm_busy_retry=0.25)
    busy = runner.run(second.id or 0)
    assert busy.status is RunStatus.VM_BUSY and busy.retry_after == 0.25
    row = ledger.get(second.id or 0)
    assert row.state == JobState.QUEUED and row.attempt == 0
    ledger.finish(first.id or 0, "other-worker", succeeded=True, result={}, error=None)
    assert runner.run(second.id or 0).status is RunStatus.SUCCEEDED


def test_vm_busy_past_deadline_fails(ledger: JobLedger, clock: FakeClock) -> None:
    first = submit(ledger, "a")
    second = submit(ledger, "b", deadline=timedelta(seconds=10))
    assert ledger.claim(first.id or 0, "other-worker").won
    clock.advance(10)
    outcome = make_runner(ledger, {"create": ok_handler}).run(second.id or 0)
    assert outcome.status is RunStatus.FAILED
    assert ledger.get(second.id or 0).error == VM_BUSY_PAST_DEADLINE


def test_heartbeats_and_noticing_a_takeover(engine: Engine) -> None:
    ledger = JobLedger(engine, utcnow, lock_stale_after=timedelta(seconds=1))
    thief = JobLedger(engine, lambda: utcnow() + timedelta(minutes=5))
    job, stolen = submit(ledger, "a"), submit(ledger, "b")
    beats: list[datetime | None] = []

    def handler(ctx: JobContext) -> dict[str, Any]:
        time.sleep(0.2)
        beats.append(ledger.get(ctx.job_id).heartbeat_at)
        assert thief.claim(stolen.id or 0, "thief").won  # our lock looks stale to it
        give_up = time.monotonic() + 5
        while not ctx.ownership_lost and time.monotonic() < give_up:
            time.sleep(0.02)
        ctx.check_deadline()
        return {}

    runner = make_runner(ledger, {"create": handler}, heartbeat_interval=0.05, clock=utcnow)
    outcome = runner.run(job.id or 0)
    assert outcome.status is RunStatus.OWNERSHIP_LOST
    row = ledger.get(job.id or 0)
    assert row.state == JobState.INTERRUPTED
    assert beats[0] is not None and row.started_at is not None and beats[0] > row.started_at


# -- races --------------------------------------------------------------------


def test_threads_racing_one_job_run_it_once(db_url: str) -> None:
    engines = [make_engine(db_url) for _ in range(4)]
    try:
        ran = Counter[int]()
        lock = threading.Lock()

        def handler(ctx: JobContext) -> dict[str, Any]:
            with lock:
                ran[ctx.job_id] += 1
            return {}

        runners = [
            make_runner(JobLedger(e, utcnow), {"create": handler}, f"w{n}", clock=utcnow)
            for n, e in enumerate(engines)
        ]
        for i in range(20):
            job = submit(runners[0].ledger, f"k{i}", vm_id=f"vm-{i}")

            def run(n: int, job_id: int = job.id or 0) -> RunStatus:
                return runners[n].run(job_id).status

            outcomes = run_together(4, run)
            assert sorted(outcomes) == sorted([RunStatus.SUCCEEDED] + [RunStatus.LOST] * 3)
            assert ran[job.id or 0] == 1
    finally:
        for e in engines:
            e.dispose()


def _race_child(url: str, job_ids: list[int], worker: str, barrier: Any, out: Any) -> None:
    engine = make_engine(url)
    runner = JobRunner(JobLedger(engine, utcnow), {"create": ok_handler}, worker, clock=utcnow)
    statuses = []
    for job_id in job_ids:
        barrier.wait(timeout=60)
        statuses.append((job_id, runner.run(job_id).status.value))
    engine.dispose()
    out.put(statuses)


def test_two_processes_racing_run_each_job_once(db_url: str, engine: Engine) -> None:
    ledger = JobLedger(engine, utcnow)
    job_ids = [submit(ledger, f"k{i}", vm_id=f"vm-{i}").id or 0 for i in range(10)]
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(target=_race_child, args=(db_url, job_ids, f"proc-{n}", barrier, out))
        for n in range(2)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    by_job: dict[int, list[str]] = {}
    for statuses in results:
        for job_id, status in statuses:
            by_job.setdefault(job_id, []).append(status)
    for job_id in job_ids:
        assert sorted(by_job[job_id]) == ["lost", "succeeded"], by_job[job_id]
        row = ledger.get(job_id)
        assert row.state == JobState.SUCCEEDED and row.attempt == 1


# -- through Huey ---------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite"])
def huey_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@contextmanager
def run_queue(
    huey_kind: str, tmp_path: Path, runner: JobRunner, workers: int = 4
) -> Iterator[JobQueue]:
    huey = make_huey(huey_kind, path=tmp_path / "huey.db")  # type: ignore[arg-type]
    queue = JobQueue(huey, runner)
    with InProcessConsumer(huey, workers=workers, poll_interval=0.05):
        yield queue


def test_end_to_end_through_huey(engine: Engine, huey_kind: str, tmp_path: Path) -> None:
    ledger = JobLedger(engine, utcnow)
    runner = make_runner(ledger, {"create": ok_handler}, clock=utcnow)
    with run_queue(huey_kind, tmp_path, runner) as queue:
        job = submit(ledger, "k1")
        queue.enqueue(job.id or 0)
        done = ledger.wait(job.id or 0, timeout=10)
        assert done.state == JobState.SUCCEEDED
        assert done.result == {"vm": "vm-1", "attempt": 1}


def test_one_vm_runs_jobs_one_at_a_time_two_vms_in_parallel(engine: Engine, tmp_path: Path) -> None:
    ledger = JobLedger(engine, utcnow)
    intervals: dict[str, list[tuple[float, float, int]]] = {"vm-a": [], "vm-b": []}
    both_running = threading.Barrier(2, timeout=5)
    record = threading.Lock()

    def handler(ctx: JobContext) -> dict[str, Any]:
        start = time.monotonic()
        if ctx.payload.get("meet"):
            # Returns only if the other VM's job is running at the same time.
            both_running.wait()
        time.sleep(0.15)
        with record:
            intervals[ctx.vm_id].append((start, time.monotonic(), ctx.job_id))
        return {}

    runner = CountingRunner(ledger, {"create": handler}, "w1", clock=utcnow, vm_busy_retry=0.05)
    with run_queue("memory", tmp_path, runner) as queue:
        jobs = [submit(ledger, "a1", vm_id="vm-a", payload={"meet": True})]
        jobs += [submit(ledger, "b1", vm_id="vm-b", payload={"meet": True})]
        jobs += [submit(ledger, f"a{n}", vm_id="vm-a") for n in (2, 3)]
        for job in jobs:
            queue.enqueue(job.id or 0)
        for job in jobs:
            assert ledger.wait(job.id or 0, timeout=15).state == JobState.SUCCEEDED
    on_a = sorted(intervals["vm-a"])
    assert len(on_a) == 3
    for (_, end, _), (start, _, _) in pairwise(on_a):
        assert end <= start, on_a
    assert intervals["vm-b"] and all(j.id is not None for j in jobs)
    rows = [ledger.get(j.id or 0) for j in jobs]
    assert all(r.attempt == 1 for r in rows)  # vm_busy never spends an attempt
    assert RunStatus.VM_BUSY in runner.statuses


class CountingRunner(JobRunner):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.statuses: list[RunStatus] = []

    def run(self, job_id: int) -> RunOutcome:
        outcome = super().run(job_id)
        self.statuses.append(outcome.status)
        return outcome


def test_make_huey_defaults_to_var_under_the_workdir(tmp_path: Path) -> None:
    huey = make_huey("sqlite", workdir=tmp_path)
    assert huey.storage.filename == str(tmp_path / "var" / "queue.db")
    # The file the bot opens: until 2026-12-05 the default named another.
    ctx = build_context(settings_for(tmp_path))
    try:
        assert ctx.queue.huey.storage.filename == huey.storage.filename
    finally:
        ctx.close()
    assert not huey.immediate and (tmp_path / "var").is_dir()
    with pytest.raises(ValueError, match="unknown huey kind"):
        make_huey("rabbit", path=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a URL"):
        make_huey("redis")


def test_consumer_leaves_signal_handlers_alone(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGINT)
    huey = make_huey("memory")
    errors: list[BaseException] = []

    def start_in_thread() -> None:
        try:
            consumer = InProcessConsumer(huey, workers=1, poll_interval=0.05)
            consumer.start()
            assert consumer.stop(timeout=5)
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=start_in_thread)
    worker.start()
    worker.join(10)
    assert errors == []
    with InProcessConsumer(huey, workers=1, poll_interval=0.05):
        assert signal.getsignal(signal.SIGINT) is before
