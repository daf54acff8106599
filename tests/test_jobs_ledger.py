"""The job ledger on SQLite and PostgreSQL: submit, claim, locks, deadlines."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from bot.jobs import (
    DEADLINE_BEFORE_START,
    ClaimOutcome,
    ClaimResult,
    HostCall,
    IdempotencyConflict,
    JobLedger,
    JobNotFound,
    JobOwnershipLost,
    JobState,
    RetryNotAllowed,
)
from bot.store.db import make_engine
from bot.store.models import Job

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, start: datetime = T0) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ledger(engine: Engine, clock: FakeClock) -> JobLedger:
    return JobLedger(engine, clock, lock_stale_after=timedelta(seconds=30))


def submit(ledger: JobLedger, key: str, **overrides: Any) -> Job:
    args: dict[str, Any] = {
        "vm_id": "vm-1",
        "host": "HV01",
        "change_id": None,
        "payload": {"name": "pre-patch"},
        "idempotency_key": key,
        "destructive": False,
        "deadline": timedelta(minutes=10),
    }
    args.update(overrides)
    job, created = ledger.submit(args.pop("kind", "create"), **args)
    assert created
    return job


def run_together(n: int, work: Callable[[int], Any]) -> list[Any]:
    """Run `work(i)` in n threads released together by a barrier."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def target(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    return results


@pytest.fixture
def own_ledgers(db_url: str, clock: FakeClock) -> Iterator[list[JobLedger]]:
    """Four ledgers, each with its own engine and pool, like four processes."""
    engines = [make_engine(db_url) for _ in range(4)]
    yield [JobLedger(e, clock, lock_stale_after=timedelta(seconds=30)) for e in engines]
    for e in engines:
        e.dispose()


def test_submit_inserts_a_queued_job(ledger: JobLedger) -> None:
    job = submit(ledger, "k1", payload={"a": 1}, max_attempts=3)
    assert job.id is not None
    assert job.state == JobState.QUEUED and job.attempt == 0 and job.max_attempts == 3
    assert job.payload == {"a": 1}
    assert job.deadline_at == T0 + timedelta(minutes=10)


def test_destructive_jobs_get_one_attempt(ledger: JobLedger) -> None:
    job = submit(ledger, "k1", kind="restore", destructive=True, max_attempts=5)
    assert job.max_attempts == 1


def test_same_idempotency_key_returns_the_existing_job(ledger: JobLedger) -> None:
    first = submit(ledger, "k1")
    again, created = ledger.submit(
        "create",
        vm_id="vm-1",
        host="HV01",
        change_id=None,
        payload={},
        idempotency_key="k1",
        destructive=False,
        deadline=timedelta(minutes=1),
    )
    assert not created and again.id == first.id
    with pytest.raises(IdempotencyConflict, match="already used by job"):
        ledger.submit(
            "restore",
            vm_id="vm-1",
            host="HV01",
            change_id=None,
            payload={},
            idempotency_key="k1",
            destructive=True,
            deadline=timedelta(minutes=1),
        )
    assert ledger.find_by_key("k1") is not None and ledger.find_by_key("nope") is None


def test_concurrent_submits_with_one_key_make_one_job(own_ledgers: list[JobLedger]) -> None:
    for round_ in range(5):
        key = f"race-{round_}"

        def work(i: int, key: str = key) -> tuple[int | None, bool]:
            job, created = own_ledgers[i].submit(
                "create",
                vm_id="vm-1",
                host="HV01",
                change_id=None,
                payload={},
                idempotency_key=key,
                destructive=False,
                deadline=timedelta(minutes=1),
            )
            return job.id, created

        results = run_together(len(own_ledgers), work)
        assert len({job_id for job_id, _ in results}) == 1
        assert sum(created for _, created in results) == 1


def test_claim_wins_once_then_loses(ledger: JobLedger, clock: FakeClock) -> None:
    job = submit(ledger, "k1")
    assert job.id is not None
    won = ledger.claim(job.id, "w1")
    assert won.outcome is ClaimOutcome.WON and won.won
    assert won.job.state == JobState.RUNNING and won.job.attempt == 1
    assert won.job.worker == "w1" and won.job.started_at == T0
    assert ledger.claim(job.id, "w2").outcome is ClaimOutcome.LOST
    assert ledger.running_for_vm("vm-1") is not None
    with pytest.raises(JobNotFound):
        ledger.claim(9999, "w1")


def test_threads_racing_to_claim_one_job_one_wins(own_ledgers: list[JobLedger]) -> None:
    for i in range(20):
        job = submit(own_ledgers[0], f"k{i}", vm_id=f"vm-{i}")
        assert job.id is not None
        job_id = job.id

        def claim(n: int, job_id: int = job_id) -> ClaimResult:
            return own_ledgers[n].claim(job_id, f"w{n}")

        outcomes = run_together(len(own_ledgers), claim)
        assert sorted(o.outcome for o in outcomes).count(ClaimOutcome.WON) == 1
        assert all(o.outcome in (ClaimOutcome.WON, ClaimOutcome.LOST) for o in outcomes)
        final = own_ledgers[0].get(job_id)
        assert final.attempt == 1
        winner = next(n for n, o in enumerate(outcomes) if o.won)
        assert final.worker == f"w{winner}"


def test_racing_jobs_on_one_vm_one_holds_the_lock(own_ledgers: list[JobLedger]) -> None:
    first = own_ledgers[0]
    for round_ in range(10):
        jobs = [submit(first, f"r{round_}-{n}") for n in range(len(own_ledgers))]

        def claim(n: int, jobs: list[Job] = jobs) -> ClaimResult:
            return own_ledgers[n].claim(jobs[n].id or 0, f"w{n}")

        outcomes = run_together(len(own_ledgers), claim)
        kinds = [o.outcome for o in outcomes]
        assert kinds.count(ClaimOutcome.WON) == 1, kinds
        assert kinds.count(ClaimOutcome.VM_BUSY) == len(kinds) - 1
        winner = next(n for n, o in enumerate(outcomes) if o.won)
        for n, o in enumerate(outcomes):
            if n != winner:
                # vm_busy changes nothing: still queued, no attempt used.
                assert o.job.state == JobState.QUEUED and o.job.attempt == 0
                assert o.lock_holder == jobs[winner].id
                assert first.fail_queued(jobs[n].id or 0, error="test cleanup")
        first.finish(jobs[winner].id or 0, f"w{winner}", succeeded=True, result={}, error=None)


def test_vm_busy_until_the_holder_finishes(ledger: JobLedger) -> None:
    a, b = submit(ledger, "a"), submit(ledger, "b")
    assert a.id and b.id
    assert ledger.claim(a.id, "w1").won
    busy = ledger.claim(b.id, "w2")
    assert busy.outcome is ClaimOutcome.VM_BUSY and busy.lock_holder == a.id
    other_vm = submit(ledger, "c", vm_id="vm-2")
    assert other_vm.id and ledger.claim(other_vm.id, "w3").won
    done = ledger.finish(a.id, "w1", succeeded=True, result={"checkpoint": "x"}, error=None)
    assert done.state == JobState.SUCCEEDED and done.result == {"checkpoint": "x"}
    assert ledger.claim(b.id, "w2").won


def test_a_job_its_process_left_at_a_stop_is_interrupted_naming_that_stop(
    ledger: JobLedger, clock: FakeClock
) -> None:
    """A process that stops (or reloads) with a job still running says so on
    the job; once the claim lapses (never earlier) the reconciler's
    interrupt names that stop, and a job of another worker is not marked.
    Seen: a reload's left job read "worker … stopped heartbeating", as if
    the worker had vanished without a word."""
    a, b = submit(ledger, "a"), submit(ledger, "b", vm_id="vm-2")
    assert a.id and b.id
    assert ledger.claim(a.id, "w1").won and ledger.claim(b.id, "w2").won
    assert ledger.leave("w1", "was reloaded (SIGHUP) after waiting 10 s for it") == 1
    assert ledger.get(a.id).state == JobState.RUNNING  # its claim lapses as any other
    clock.advance(20)
    assert ledger.interrupt_stale() == []
    clock.advance(11)
    assert {j.id for j in ledger.interrupt_stale()} == {a.id, b.id}
    assert ledger.get(a.id).error == (
        "worker w1 was reloaded (SIGHUP) after waiting 10 s for it with this job still "
        "running; the outcome on the host is unknown and must be reconciled"
    )
    assert (ledger.get(b.id).error or "").startswith("worker w2 stopped heartbeating")


def test_a_left_job_that_ends_after_all_keeps_its_own_result(
    ledger: JobLedger,
) -> None:
    a = submit(ledger, "a")
    assert a.id and ledger.claim(a.id, "w1").won
    assert ledger.leave("w1", "was stopped (SIGTERM or Ctrl-C)") == 1
    assert ledger.leave("w9", "was stopped") == 0  # holds nothing
    done = ledger.finish(a.id, "w1", succeeded=True, result={"checkpoint": "x"}, error=None)
    assert done.state == JobState.SUCCEEDED and done.result == {"checkpoint": "x"}
    assert ledger.leave("w1", "was stopped") == 0  # nothing runs any more


def test_stale_lock_is_taken_over_fresh_one_is_not(ledger: JobLedger, clock: FakeClock) -> None:
    a, b = submit(ledger, "a"), submit(ledger, "b")
    assert a.id and b.id
    assert ledger.claim(a.id, "w1").won
    clock.advance(25)
    assert ledger.heartbeat(a.id, "w1")
    clock.advance(29)  # 29 s since the last beat: still fresh
    assert ledger.claim(b.id, "w2").outcome is ClaimOutcome.VM_BUSY
    clock.advance(2)  # 31 s: stale
    taken = ledger.claim(b.id, "w2")
    assert taken.won and taken.took_over_from == a.id
    old = ledger.get(a.id)
    assert old.state == JobState.INTERRUPTED and "w1 stopped heartbeating" in (old.error or "")
    # The presumed-dead worker finds out at its next heartbeat or finish.
    assert not ledger.heartbeat(a.id, "w1")
    with pytest.raises(JobOwnershipLost, match=r"cannot finish job \d+ in state interrupted"):
        ledger.finish(a.id, "w1", succeeded=True, result={}, error=None)
    # ... and its release does not free the new holder's lock.
    c = submit(ledger, "c")
    assert c.id and ledger.claim(c.id, "w3").outcome is ClaimOutcome.VM_BUSY


def test_a_job_says_whether_its_host_call_was_sent_and_only_while_it_owns_it(
    ledger: JobLedger, clock: FakeClock
) -> None:
    """The claim writes "not_sent"; the job's own `mark_sent`, "sent". Once
    a reconciler interrupted the job (its worker silent), `mark_sent` writes
    nothing and says so: the job must not send the call, so "not_sent" on
    an interrupted job proves the host untouched."""
    job = submit(ledger, "k1", kind="rollback", destructive=True)
    assert job.id is not None and ledger.get(job.id).host_call is None  # queued
    assert ledger.claim(job.id, "w1").won
    assert ledger.get(job.id).host_call == HostCall.NOT_SENT
    assert not ledger.mark_sent(job.id, "w2")  # not its job
    assert ledger.mark_sent(job.id, "w1")
    assert ledger.get(job.id).host_call == HostCall.SENT
    ledger.finish(job.id, "w1", succeeded=True, result={}, error=None)

    # A create (not destructive: its outcome is found on the host by its
    # checkpoint) says nothing of it.
    create = submit(ledger, "k3", vm_id="vm-3")
    assert create.id is not None and ledger.claim(create.id, "w1").won
    assert ledger.get(create.id).host_call is None
    ledger.finish(create.id, "w1", succeeded=True, result={}, error=None)

    late = submit(ledger, "k2", vm_id="vm-2", kind="rollback", destructive=True)
    assert late.id is not None and ledger.claim(late.id, "w1").won
    clock.advance(31)  # w1 silent past lock_stale_after
    assert [j.id for j in ledger.interrupt_stale()] == [late.id]
    assert not ledger.mark_sent(late.id, "w1")
    interrupted = ledger.get(late.id)
    assert interrupted.state == JobState.INTERRUPTED
    assert interrupted.host_call == HostCall.NOT_SENT


def test_leaving_a_job_keeps_what_it_said_of_its_host_call(ledger: JobLedger) -> None:
    job = submit(ledger, "k1", kind="merge", destructive=True)
    assert job.id is not None and ledger.claim(job.id, "w1").won
    assert ledger.leave("w1", "was interrupted (Ctrl-C)") == 1
    assert ledger.get(job.id).host_call == HostCall.NOT_SENT
    assert ledger.mark_sent(job.id, "w1")  # it still runs until its process exits
    assert ledger.leave("w1", "was stopped at once (a second Ctrl-C)") == 1
    assert ledger.get(job.id).host_call == HostCall.SENT


def test_heartbeat_and_finish_need_ownership(ledger: JobLedger, clock: FakeClock) -> None:
    job = submit(ledger, "k1")
    assert job.id and ledger.claim(job.id, "w1").won
    clock.advance(5)
    assert ledger.heartbeat(job.id, "w1")
    assert ledger.get(job.id).heartbeat_at == T0 + timedelta(seconds=5)
    assert not ledger.heartbeat(job.id, "w2")
    with pytest.raises(JobOwnershipLost, match="expected running by w2"):
        ledger.finish(job.id, "w2", succeeded=True, result={}, error=None)
    failed = ledger.finish(job.id, "w1", succeeded=False, result={}, error="boom")
    assert failed.state == JobState.FAILED and failed.error == "boom"
    assert failed.finished_at == T0 + timedelta(seconds=5)
    assert ledger.running_for_vm("vm-1") is None


def test_requeue_only_non_destructive_with_attempts_left(
    ledger: JobLedger, clock: FakeClock
) -> None:
    job = submit(ledger, "k1", max_attempts=2)
    assert job.id and ledger.claim(job.id, "w1").won
    back = ledger.requeue(job.id, "w1", not_before=T0 + timedelta(seconds=4), error="flaky")
    assert back.state == JobState.QUEUED and back.worker is None and back.error == "flaky"
    assert ledger.claim(job.id, "w1").outcome is ClaimOutcome.NOT_DUE
    clock.advance(4)
    assert ledger.claim(job.id, "w1").won
    with pytest.raises(RetryNotAllowed, match="no attempts left"):
        ledger.requeue(job.id, "w1", not_before=T0, error="again")

    destructive = submit(ledger, "k2", kind="restore", destructive=True, vm_id="vm-2")
    assert destructive.id and ledger.claim(destructive.id, "w1").won
    with pytest.raises(RetryNotAllowed, match="never retried automatically"):
        ledger.requeue(destructive.id, "w1", not_before=T0, error="x")
    assert ledger.get(destructive.id).state == JobState.RUNNING


def test_expire_overdue_fails_only_queued_jobs_past_deadline(
    ledger: JobLedger, clock: FakeClock
) -> None:
    late = submit(ledger, "late", deadline=timedelta(seconds=10))
    running = submit(ledger, "running", deadline=timedelta(seconds=10), vm_id="vm-2")
    fine = submit(ledger, "fine", deadline=timedelta(minutes=5), vm_id="vm-3")
    assert running.id and ledger.claim(running.id, "w1").won
    clock.advance(11)
    assert ledger.expire_overdue() == [late.id]
    expired = ledger.get(late.id or 0)
    assert expired.state == JobState.FAILED and expired.error == DEADLINE_BEFORE_START
    assert ledger.get(running.id).state == JobState.RUNNING
    assert ledger.get(fine.id or 0).state == JobState.QUEUED
    assert ledger.expire_overdue() == []


def test_wait_returns_final_job_or_times_out(ledger: JobLedger) -> None:
    job = submit(ledger, "k1")
    assert job.id
    assert ledger.wait(job.id, timeout=0.1, poll=0.02).state == JobState.QUEUED
    assert ledger.claim(job.id, "w1").won
    threading.Timer(
        0.1, lambda: ledger.finish(job.id or 0, "w1", succeeded=True, result={}, error=None)
    ).start()
    assert ledger.wait(job.id, timeout=5, poll=0.02).state == JobState.SUCCEEDED


def test_naive_clock_is_refused(engine: Engine) -> None:
    ledger = JobLedger(engine, lambda: datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        submit(ledger, "k1")


def test_many_jobs_are_read_in_one_query(ledger: JobLedger, engine: Engine) -> None:
    """What a command waiting for a wave's jobs reads on every poll (0.2 s):
    one query for all its open jobs, not one per job (a 45-VM wave made 45
    every poll)."""
    from sqlalchemy import event

    jobs = [submit(ledger, f"wave-{n}", vm_id=f"vm-{n}") for n in range(45)]
    ids = [job.id for job in jobs if job.id is not None]
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        found = ledger.get_many([*ids, 999_999])
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert sorted(found) == sorted(ids)  # an id with no job is left out
    assert all(found[i].state == "queued" for i in ids)
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1
    assert ledger.get_many([]) == {}
