"""A database outage in the middle of a job, after the host did its work
and before the job could write it down: the outcome is unknown, so the job
ends `interrupted` (never `failed`, never retried) with one clean line
saying the record could not be written, and the reconciler settles the
change against the host.

- The runner on its own, with a real outage error (a SQLite file that
  cannot be opened), on each backend: state, message, VM lock, metrics.
- The whole path on PostgreSQL behind a proxy the test cuts while the host
  takes the checkpoint (the outage of `checkpoint create --no-wait` under a
  worker): the change ends `active` with its one checkpoint, and nothing a
  person reads carries the driver's multi-line text.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import select

from bot.context import build_context
from bot.hyperv import HyperVHost
from bot.jobs import JobContext, JobLedger, JobRunner, JobState, RunStatus
from bot.jobs.runner import RECORD_NOT_WRITTEN
from bot.observe.metrics import Metrics
from bot.observe.work import MeteredRunner
from bot.service import Reconciler, request_checkpoint, show_change
from bot.store.db import make_engine, session_scope
from bot.store.models import Change, ChangeEvent, Job
from tests.db_proxy import CuttableProxy
from tests.helpers import settings_for
from tests.test_jobs_ledger import FakeClock, submit

# What the raw driver text had and a clean line never has.
RAW = ("OperationalError", "sqlalche.me", "Background on this error", "\n", "[SQL")


def _outage(tmp_path: Path) -> Exception:
    """A real SQLAlchemy OperationalError, as a database that does not answer raises."""
    (tmp_path / "file").write_text("not a directory", encoding="utf-8")
    dead = make_engine(f"sqlite:///{tmp_path / 'file' / 'record.db'}")
    try:
        with dead.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:
        return exc
    finally:
        dead.dispose()
    raise AssertionError("the file opened")


@pytest.fixture
def ledger(engine: Engine) -> JobLedger:
    return JobLedger(engine, FakeClock(), lock_stale_after=timedelta(seconds=30))


def test_a_job_whose_record_could_not_be_written_ends_interrupted_not_failed(
    tmp_path: Path, ledger: JobLedger
) -> None:
    outage = _outage(tmp_path)
    ran: list[int] = []

    def handler(ctx: JobContext) -> dict[str, Any]:
        ran.append(ctx.attempt)  # the host did its work here …
        raise outage  # … and writing it down failed

    # Attempts to spare: a failure would be retried, an unknown outcome never is.
    job = submit(ledger, "k1", max_attempts=3)
    assert job.id is not None
    metrics = Metrics()
    runner = MeteredRunner(ledger, {"create": handler}, "w1", clock=ledger.now, metrics=metrics)
    outcome = runner.run(job.id)

    assert outcome.status is RunStatus.INTERRUPTED and outcome.retry_after is None
    after = ledger.get(job.id)
    assert after.state == JobState.INTERRUPTED and after.finished_at is not None
    assert after.error == RECORD_NOT_WRITTEN.format(reason="unable to open database file")
    assert after.error == (
        "the record could not be written: the database did not answer "
        "(unable to open database file)"
    )
    assert ran == [1]
    assert ledger.running_for_vm("vm-1") is None  # the VM lock went with it
    # A second delivery of the id finds nothing to run.
    assert runner.run(job.id).status is RunStatus.LOST and ran == [1]

    def count(outcome: str) -> float | None:
        return metrics.registry.get_sample_value(
            "checkpoint_bot_jobs_total", {"kind": "create", "outcome": outcome}
        )

    assert count("failed") is None and count("interrupted") == 1.0


def test_a_bug_in_a_handler_is_still_a_failure(tmp_path: Path, ledger: JobLedger) -> None:
    def handler(ctx: JobContext) -> dict[str, Any]:
        raise KeyError("no such field")

    job = submit(ledger, "k2")
    assert job.id is not None
    runner = JobRunner(ledger, {"create": handler}, "w1", clock=ledger.now)
    assert runner.run(job.id).status is RunStatus.FAILED
    assert ledger.get(job.id).error == "KeyError: 'no such field'"


def test_an_outcome_not_written_in_time_is_left_to_the_lapsing_claim(
    tmp_path: Path, ledger: JobLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    outage = _outage(tmp_path)

    def handler(ctx: JobContext) -> dict[str, Any]:
        raise outage

    job = submit(ledger, "k3")
    assert job.id is not None
    runner = JobRunner(
        ledger, {"create": handler}, "w1", clock=ledger.now, db_retry=0.01, db_retry_for=0.05
    )

    def still_down(*_: object) -> None:
        raise outage

    monkeypatch.setattr(ledger, "interrupt", still_down)
    outcome = runner.run(job.id)  # before: the outage escaped to Huey, traceback and all
    assert outcome.status is RunStatus.INTERRUPTED
    assert ledger.get(job.id).state == JobState.RUNNING  # its claim lapses; the reconciler


def test_a_job_the_reconciler_interrupted_while_its_record_waited_is_interrupted_not_lost(
    tmp_path: Path, ledger: JobLedger, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    """Seen (PostgreSQL cut for 45 s of the runner's 60 s retry window): the
    heartbeats had stopped with the database, the reconciler of the same
    process interrupted the job once it answered again, and the runner's own
    write then logged "ERROR … cannot interrupt job 9 in state interrupted"
    and counted `ownership_lost`. Both wanted the same end: it is one
    warning that says so, and the job counts as interrupted."""
    import logging

    outage = _outage(tmp_path)

    def handler(ctx: JobContext) -> dict[str, Any]:
        raise outage

    job = submit(ledger, "k4")
    assert job.id is not None
    interrupt = ledger.interrupt
    calls: list[int] = []

    def down_then_taken(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            # The database is back, no heartbeat came meanwhile: the
            # reconciler's pass interrupts the job first.
            clock: Any = ledger._clock
            assert isinstance(clock, FakeClock)
            clock.advance(31)
            assert [j.id for j in ledger.interrupt_stale()] == [job.id]
            raise outage
        return interrupt(*args, **kwargs)

    monkeypatch.setattr(ledger, "interrupt", down_then_taken)
    metrics = Metrics()
    runner = MeteredRunner(
        ledger, {"create": handler}, "w1", clock=ledger.now, metrics=metrics, db_retry=0.01
    )
    caplog.set_level(logging.INFO)
    outcome = runner.run(job.id)

    assert outcome.status is RunStatus.INTERRUPTED
    assert ledger.get(job.id).state == JobState.INTERRUPTED
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    said = [r.getMessage() for r in caplog.records if "reconciler interrupted it" in r.getMessage()]
    assert len(said) == 1, [r.getMessage() for r in caplog.records]
    assert (
        metrics.registry.get_sample_value(
            "checkpoint_bot_jobs_total", {"kind": "create", "outcome": "interrupted"}
        )
        == 1.0
    )


# -- the whole path on PostgreSQL ---------------------------------------------


class _CutWhileCreating:
    """A host that takes the checkpoint and then loses the database before
    the job writes it down, back `outage` seconds later. (The demo's
    modelled hosts keep their state in the same database, so the cut comes
    once the host is done: on a real host the two are unrelated.)"""

    def __init__(self, host: HyperVHost, proxy: CuttableProxy, outage: float) -> None:
        self._host = host
        self._proxy = proxy
        self._outage = outage

    def __getattr__(self, name: str) -> Any:
        return getattr(self._host, name)

    def create_checkpoint(self, vm_id: str, name: str) -> Any:
        taken = self._host.create_checkpoint(vm_id, name)
        self._proxy.cut()
        threading.Timer(self._outage, self._proxy.restore).start()
        return taken


def _cut_while_creating(
    proxy: CuttableProxy, outage: float
) -> Callable[[str, HyperVHost], HyperVHost]:
    def wrapped(_name: str, host: HyperVHost) -> HyperVHost:
        return _CutWhileCreating(host, proxy, outage)

    return wrapped


def _settled(engine: Engine, job_id: int, *, within: float) -> Job:
    deadline = time.monotonic() + within
    while True:
        with session_scope(engine) as s:
            job = s.get(Job, job_id)
        assert job is not None
        if job.state not in ("queued", "running") or time.monotonic() > deadline:
            return job
        time.sleep(0.2)


@pytest.mark.postgres
def test_an_outage_after_the_host_took_the_checkpoint_is_reconciled_not_failed(
    tmp_path: Path, through_proxy: tuple[CuttableProxy, str], pg_database_url: str
) -> None:
    proxy, url = through_proxy
    ctx = build_context(settings_for(tmp_path, url), huey_kind="memory")
    direct = make_engine(pg_database_url)
    try:
        out = request_checkpoint(ctx, "STG-WEB01", reason="patch", requester="alice")
        assert out.job_id is not None
        ctx.host_for.wrap(_cut_while_creating(proxy, 3.0))
        ctx.start_workers(periodic=False)
        job = _settled(direct, out.job_id, within=45)
        assert job.state == "interrupted", (job.state, job.error)
        assert job.attempt == 1 and job.error is not None
        assert job.error.startswith(
            "the record could not be written: the database did not answer (connection failed: "
        )
        assert not any(raw in job.error for raw in RAW), job.error
        jobs = ctx.metrics.registry.get_sample_value
        assert jobs("checkpoint_bot_jobs_total", {"kind": "create", "outcome": "failed"}) is None
        assert jobs("checkpoint_bot_jobs_total", {"kind": "create", "outcome": "interrupted"}) == 1

        ctx.host_for.wrap(None)
        Reconciler(ctx).run_pass(ctx.clock())
        with session_scope(direct) as s:
            change = s.exec(select(Change)).one()
            said = [e.message for e in s.exec(select(ChangeEvent)).all()]
        assert change.state == "active" and change.checkpoint_id, said
        assert any(
            m.startswith("creating: outcome unknown (the record could not be written") for m in said
        ), said
        for message in said:
            assert not any(raw in message for raw in RAW), message
        host = ctx.host_for(change.host)
        assert [c.id for c in host.list_checkpoints(change.vm_id)] == [change.checkpoint_id]
        shown = show_change(ctx, out.change.ref)
        assert "OperationalError" not in repr(shown)
    finally:
        ctx.close()
        direct.dispose()
