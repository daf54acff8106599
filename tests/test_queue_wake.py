"""A job this process enqueues starts at once: its in-process consumer is
woken, not left to its next poll of the queue (bot.jobs.wakeable). The poll
stays for jobs other processes enqueue, and a long one never holds up a stop.

Every consumer here polls every 30 s (its first wait too): a job found
within seconds was found by the wake-up, never by a poll.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from bot.jobs import InProcessConsumer, JobLedger, JobQueue, JobRunner, JobState, make_huey
from bot.jobs.delivery import JobDelivery
from bot.service import request_checkpoint, show_change
from tests.helpers import running_context
from tests.test_jobs_ledger import submit
from tests.test_jobs_runner import ok_handler

LONG_POLL = 30.0  # seconds: longer than any wait below
STARTS_WITHIN = 5.0  # seconds: a wake-up, generously, on a loaded machine
IDLE = 0.3  # seconds for the workers' first (empty) poll, after which they sleep


def utcnow() -> datetime:
    return datetime.now(UTC)


@pytest.fixture(params=["sqlite", "memory"])
def huey_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@contextmanager
def sleeping_consumer(queue: JobQueue) -> Iterator[InProcessConsumer]:
    """A consumer of `queue` whose two workers sleep LONG_POLL between polls,
    wired to be woken by `queue`'s enqueues, and already asleep."""
    consumer = InProcessConsumer(
        queue.huey, workers=2, poll_interval=LONG_POLL, first_poll=LONG_POLL, periodic=False
    )
    with consumer:
        queue.wake_with(consumer.wake)
        time.sleep(IDLE)
        yield consumer


def test_a_job_enqueued_here_starts_without_waiting_for_the_poll(
    engine: Engine, huey_kind: str, tmp_path: Path
) -> None:
    ledger = JobLedger(engine, utcnow)
    runner = JobRunner(ledger, {"create": ok_handler}, "w1", clock=utcnow)
    queue = JobQueue(make_huey(huey_kind, path=tmp_path / "huey.db"), runner)  # type: ignore[arg-type]
    with sleeping_consumer(queue):
        for key in ("first", "second"):  # and again, once the workers slept again
            job = submit(ledger, key)
            queue.enqueue(job.id or 0)
            done = ledger.wait(job.id or 0, timeout=STARTS_WITHIN)
            assert done.state == JobState.SUCCEEDED, key
            time.sleep(IDLE)


def test_a_delivered_job_starts_at_once_after_its_commit(engine: Engine, tmp_path: Path) -> None:
    """The job outbox enqueues inside the transaction that marks the job
    delivered, and wakes the consumer once it committed."""
    ledger = JobLedger(engine, utcnow)
    runner = JobRunner(ledger, {"create": ok_handler}, "w1", clock=utcnow)
    queue = JobQueue(make_huey("sqlite", path=tmp_path / "huey.db"), runner)
    delivery = JobDelivery(engine, queue, utcnow, lambda _not_before: 0.0)
    with sleeping_consumer(queue):
        job = submit(ledger, "delivered")
        assert delivery.deliver(job.id or 0)
        assert ledger.wait(job.id or 0, timeout=STARTS_WITHIN).state == JobState.SUCCEEDED
        assert ledger.get(job.id or 0).delivered_at is not None


def test_a_job_another_process_enqueued_is_still_found_by_the_poll(
    engine: Engine, tmp_path: Path
) -> None:
    """Another process's enqueue cannot wake this one: its job waits for the
    next poll (a short one here), as before."""
    ledger = JobLedger(engine, utcnow)
    runner = JobRunner(ledger, {"create": ok_handler}, "w1", clock=utcnow)
    path = tmp_path / "huey.db"
    here = JobQueue(make_huey("sqlite", path=path), runner)
    # What another process holds: the same SQLite queue, no consumer here to wake.
    elsewhere = JobQueue(make_huey("sqlite", path=path), None)
    with InProcessConsumer(here.huey, workers=1, poll_interval=0.2, periodic=False) as consumer:
        here.wake_with(consumer.wake)
        time.sleep(IDLE)
        job = submit(ledger, "elsewhere")
        elsewhere.enqueue(job.id or 0)
        assert ledger.wait(job.id or 0, timeout=10).state == JobState.SUCCEEDED


def test_sleeping_workers_stop_at_once(huey_kind: str, tmp_path: Path) -> None:
    consumer = InProcessConsumer(
        make_huey(huey_kind, path=tmp_path / "huey.db"),  # type: ignore[arg-type]
        workers=3,
        poll_interval=LONG_POLL,
        first_poll=LONG_POLL,
        periodic=False,
    )
    consumer.start()
    time.sleep(IDLE)
    # True: every worker ended within the timeout, far short of its 30 s sleep.
    assert consumer.stop(timeout=STARTS_WITHIN)
    assert not consumer.running


def test_the_context_wakes_its_own_consumer(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`AppContext.start_workers` wires its consumer to its queue: a
    checkpoint requested in this process starts at once, the consumer's
    poll (30 s here) notwithstanding."""
    import bot.jobs

    def slow_polling(huey: Any, workers: int = 4) -> InProcessConsumer:
        return InProcessConsumer(
            huey, workers=workers, poll_interval=LONG_POLL, first_poll=LONG_POLL, periodic=False
        )

    monkeypatch.setattr(bot.jobs, "InProcessConsumer", slow_polling)
    with running_context(tmp_path, db_url) as ctx:
        time.sleep(IDLE)
        out = request_checkpoint(ctx, "STG-WEB01", reason="patch", requester="alice")
        assert out.job_id is not None
        done = ctx.ledger.wait(out.job_id, timeout=STARTS_WITHIN)
        assert done.state == JobState.SUCCEEDED
        assert show_change(ctx, out.change.ref).state == "active"
