"""One operation per VM, also while an interrupted job's call goes on on the host.

Seen by a scale-out explorer (PostgreSQL + Redis, two workers,
`lock_stale_after: 30s`, emulator `slow=Checkpoint-VM:45000`): a worker's
database connection was cut 4 s into `checkpoint create T2VM06`; the
reconciler marked its job interrupted and noted "HX02 is still creating a
checkpoint on T2VM06 ... nothing is concluded until it is done", yet freed
the VM lock, so 33 s later a second `checkpoint create T2VM06` ran
Checkpoint-VM on the same VM while the first was still in progress. Again:
`checkpoint rollback` of an older change ran Restore-VMSnapshot + Start-VM
in the middle of another change's Checkpoint-VM, and the new checkpoint
ended up a child of the rolled-back one.

What holds now:
- an interrupted job (its worker vanished, or its host call ended with the
  outcome unknown) keeps holding its VM until its change is settled (the
  reconciler's verdict, or a human's `resolve`): another job on the VM
  waits ("VM busy", never a policy refusal, never run);
- a claim that finds a stale holder interrupts it and waits; it never takes
  the VM over while the host may still be working;
- a held rollback the host cannot settle (needs a human) keeps holding
  until someone records what happened; that frees it;
- defence in depth: the re-check right before a create, rollback or merge
  does not start when the host reports the VM busy with a checkpoint
  operation (Get-VM's OperationalStatus) or another change on the VM is
  still being reconciled: "busy, try again", never a denial.

The hosts are the WinRM emulator over loopback (tests/test_clusters.py's
estate), the host model deciding what Get-VM reports while a cmdlet runs;
the ledger part also runs on PostgreSQL with the simulated backend.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.changes import Command
from bot.clock import ManualClock
from bot.context import AppContext
from bot.devtools.emulator import Faults
from bot.devtools.hostmodel import VMOperationalStatus
from bot.jobs import ClaimOutcome, JobState, RunStatus
from bot.service import approve, merge, request_checkpoint, rollback, show_change
from bot.service.ownership import checkpoint_name
from bot.service.reconcile import Reconciler, resolve
from tests.test_clusters import WEB01, Estate, _estate
from tests.test_reconcile_host_busy import (
    DEAD,
    _dead_worker,
    _in_background,
    _rollback_cut_off,
    _stale,
    _wait_served,
)

# The cut-off worker's process, which never stops its host call.
from tests.test_reconcile_host_busy import worker as worker


@pytest.fixture
def estate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Estate]:
    yield from _estate(tmp_path, monkeypatch)


def _tick(estate: Estate, seconds: int = 5) -> None:
    estate.clock.advance(timedelta(seconds=seconds))
    Reconciler(estate.ctx).tick(estate.clock())


def _queued_job(estate: Estate, change_id: int) -> int:
    [job] = [j for j in estate.ctx.ledger.jobs_of_change(change_id) if j.state == "queued"]
    assert job.id is not None
    return job.id


def _busy_on_host(estate: Estate) -> bool:
    return bool(estate.ctx.host_for("HV01").get_vm(WEB01).busy)


def _first_create_still_on_the_host(
    estate: Estate, worker: AppContext
) -> tuple[int, threading.Thread]:
    """CHG-1's worker sent Checkpoint-VM (slow on the host) and was cut off
    from the database; the change's id and the host call still running."""
    first = request_checkpoint(estate.ctx, "WEB01", reason="patch", requester="alice")
    job_id = _dead_worker(estate, first.change.id, Command.START_CREATE)
    token = estate.ctx.ledger.get(job_id).payload["token"]
    estate.fleet.server("HV01").faults = Faults(slow={"Checkpoint-VM": 3000})
    name = checkpoint_name(first.change.ref, str(token), "patch")
    dying = _in_background(lambda: worker.host_for("HV01").create_checkpoint(WEB01, name))
    _wait_served(estate, "Checkpoint-VM")
    return first.change.id, dying


def test_a_second_create_waits_while_the_host_still_creates_the_interrupted_ones(
    estate: Estate, worker: AppContext
) -> None:
    first_id, dying = _first_create_still_on_the_host(estate, worker)
    _stale(estate)
    _tick(estate)
    first = show_change(estate.ctx, "CHG-1")
    assert first.state == "interrupted"
    assert "still creating a checkpoint" in first.events[-1].message, first.events[-1].message
    assert [j.state for j in estate.ctx.ledger.jobs_of_change(first_id)] == ["interrupted"]

    second = request_checkpoint(estate.ctx, "WEB01", reason="second", requester="carol")
    job_id = _queued_job(estate, second.change.id)
    outcome = estate.ctx.runner.run(job_id)
    # It waits for the VM: not run, not denied, its change still approved.
    assert outcome.status is RunStatus.VM_BUSY, outcome
    assert _busy_on_host(estate), "the first Checkpoint-VM ended before the check"
    assert estate.served("Checkpoint-VM") == ["HV01"]
    waiting = show_change(estate.ctx, second.change.ref)
    assert waiting.state == "approved", waiting.events[-1].message
    assert estate.ctx.ledger.get(job_id).state == JobState.QUEUED

    dying.join(20)
    # Only the interrupted call was slow: the second one's 3 s against a 4 s
    # call_timeout timed out on a loaded CI machine.
    estate.fleet.server("HV01").faults = Faults()
    assert not dying.is_alive()
    _tick(estate)
    assert show_change(estate.ctx, "CHG-1").state == "active"
    # Settled: the VM is free again, and the second create runs.
    assert estate.ctx.runner.run(job_id).status is RunStatus.SUCCEEDED
    assert show_change(estate.ctx, second.change.ref).state == "active"
    assert estate.served("Checkpoint-VM") == ["HV01", "HV01"]


def test_a_claim_that_finds_the_holder_stale_interrupts_it_and_waits(
    estate: Estate, worker: AppContext
) -> None:
    """No reconciler ran yet: the second job's claim itself finds the lock
    stale. Before, it took the VM over and ran Checkpoint-VM at once."""
    first_id, dying = _first_create_still_on_the_host(estate, worker)
    _stale(estate)
    second = request_checkpoint(estate.ctx, "WEB01", reason="second", requester="carol")
    job_id = _queued_job(estate, second.change.id)
    claim = estate.ctx.ledger.claim(job_id, "w2")
    assert claim.outcome is ClaimOutcome.VM_BUSY, claim
    [held] = estate.ctx.ledger.jobs_of_change(first_id)
    assert claim.lock_holder == held.id
    assert held.state == JobState.INTERRUPTED  # the reconciler asks the host next
    assert estate.ctx.runner.run(job_id).status is RunStatus.VM_BUSY
    assert estate.served("Checkpoint-VM") == ["HV01"]
    dying.join(20)
    assert not dying.is_alive()
    # Only the interrupted call was slow: the second one's 3 s against a 4 s
    # call_timeout timed out on a loaded CI machine.
    estate.fleet.server("HV01").faults = Faults()
    _tick(estate)
    assert show_change(estate.ctx, "CHG-1").state == "active"
    assert estate.ctx.runner.run(job_id).status is RunStatus.SUCCEEDED


def test_a_host_call_that_timed_out_keeps_its_vm_until_the_reconciler_settles_it(
    estate: Estate,
) -> None:
    """The runner's own `interrupted` (its host call timed out: the host may
    have done the work, or still be doing it) holds the VM as a vanished
    worker's job does. `late`: the host takes the checkpoint, its answer
    comes after the client gave up."""
    estate.fleet.server("HV01").faults = Faults(late={"Checkpoint-VM": 6000})
    first = request_checkpoint(estate.ctx, "WEB01", reason="patch", requester="alice")
    estate.run_jobs(first.change.id)  # call_timeout is 4 s
    assert show_change(estate.ctx, first.change.ref).state == "interrupted"
    assert [j.state for j in estate.ctx.ledger.jobs_of_change(first.change.id)] == ["interrupted"]
    estate.fleet.server("HV01").faults = Faults()
    second = request_checkpoint(estate.ctx, "WEB01", reason="second", requester="carol")
    job_id = _queued_job(estate, second.change.id)
    assert estate.ctx.runner.run(job_id).status is RunStatus.VM_BUSY
    assert estate.served("Checkpoint-VM") == ["HV01"]

    # The reconciler adopts the checkpoint the host took and frees the VM.
    _tick(estate, seconds=10)
    assert show_change(estate.ctx, first.change.ref).state == "active"
    assert estate.ctx.runner.run(job_id).status is RunStatus.SUCCEEDED


def test_an_interrupted_rollback_a_human_must_settle_holds_its_vm_until_resolved(
    estate: Estate,
) -> None:
    change = _rollback_cut_off(estate)
    _stale(estate)
    _tick(estate)
    asked = show_change(estate.ctx, change.ref)
    assert asked.state == "interrupted" and asked.resolutions, asked.events[-1].message

    # Whether the restore was applied is unknown: nothing else runs on the
    # VM until someone has looked (a create would checkpoint an unknown
    # state, another restore would destroy the evidence).
    other = request_checkpoint(estate.ctx, "WEB01", reason="other", requester="carol")
    job_id = _queued_job(estate, other.change.id)
    assert estate.ctx.runner.run(job_id).status is RunStatus.VM_BUSY
    _tick(estate)
    assert estate.ctx.runner.run(job_id).status is RunStatus.VM_BUSY

    # Recording what happened frees the VM at once.
    resolve(estate.ctx, change.ref, "active", who="alice")
    assert estate.ctx.runner.run(job_id).status is RunStatus.SUCCEEDED
    assert show_change(estate.ctx, other.change.ref).state == "active"


def test_a_create_does_not_start_on_a_vm_the_host_reports_busy(estate: Estate) -> None:
    """Someone else's checkpoint of the VM (Hyper-V Manager, another tool):
    the create waits and tries again; it is neither run nor denied."""
    asked = request_checkpoint(estate.ctx, "WEB01", reason="patch", requester="alice")
    job_id = _queued_job(estate, asked.change.id)
    with estate.fleet.host("HV01").operation(WEB01, VMOperationalStatus.CreatingSnapshot):
        outcome = estate.ctx.runner.run(job_id)
    assert outcome.status is RunStatus.REQUEUED, outcome
    change = show_change(estate.ctx, asked.change.ref)
    assert change.state == "approved", change.events[-1].message
    assert change.events[-1].kind == "recheck_waiting"
    assert "creating a checkpoint" in change.events[-1].message
    assert "deny" not in [e.kind for e in change.events]
    assert estate.served("Checkpoint-VM") == []
    # Once the host is idle, the retry runs it.
    estate.clock.advance(timedelta(seconds=5))
    assert estate.ctx.runner.run(job_id).status is RunStatus.SUCCEEDED
    assert show_change(estate.ctx, asked.change.ref).state == "active"


def test_a_rollback_does_not_start_on_a_vm_the_host_reports_busy(estate: Estate) -> None:
    created = request_checkpoint(estate.ctx, "WEB01", reason="patch", requester="alice")
    estate.run_jobs(created.change.id)
    waiting = rollback(estate.ctx, created.change.ref, requester="alice")
    assert waiting.waiting
    approve(estate.ctx, created.change.ref, approver="bob")
    with estate.fleet.host("HV01").operation(WEB01, VMOperationalStatus.CreatingSnapshot):
        estate.run_jobs(created.change.id)
    change = show_change(estate.ctx, created.change.ref)
    # Back to active, told to try again: not a refusal by the policy.
    assert change.state == "active", change.events[-1].message
    message = change.events[-1].message
    assert "creating a checkpoint" in message and "try again" in message, message
    assert "re-checked before running" not in message
    assert estate.served("Restore-VMSnapshot") == []


def test_a_merge_does_not_start_on_a_vm_the_host_reports_busy(estate: Estate) -> None:
    created = request_checkpoint(estate.ctx, "WEB01", reason="patch", requester="alice")
    estate.run_jobs(created.change.id)
    merge(estate.ctx, created.change.ref, requester="alice")
    with estate.fleet.host("HV01").operation(WEB01, VMOperationalStatus.ApplyingSnapshot):
        estate.run_jobs(created.change.id)
    change = show_change(estate.ctx, created.change.ref)
    assert change.state == "active", change.events[-1].message
    message = change.events[-1].message
    assert "applying a checkpoint" in message and "try again" in message, message
    assert estate.served("Remove-VMSnapshot") == []


# -- the ledger's hold, on SQLite and PostgreSQL (simulated hosts) -------------------


@pytest.fixture
def ctx(idle_ctx: AppContext) -> AppContext:
    return idle_ctx  # no consumer: every job step here is played by the test


def test_the_hold_lasts_until_the_change_is_settled_on_each_database(
    ctx: AppContext, clock: ManualClock
) -> None:
    created = request_checkpoint(ctx, "WEB01", reason="patch", requester="alice")
    assert created.job_id is not None
    ctx.runner.run(created.job_id)
    asked = rollback(ctx, created.change.ref, requester="alice")
    if asked.job_id is None:
        approve(ctx, created.change.ref, approver="bob")
    [rollback_job] = [
        j for j in ctx.ledger.jobs_of_change(created.change.id) if j.state == "queued"
    ]
    assert rollback_job.id is not None
    assert ctx.ledger.claim(rollback_job.id, DEAD).won
    assert ctx.ledger.mark_sent(rollback_job.id, DEAD)  # and never heard of again

    other = request_checkpoint(ctx, "WEB01", reason="other", requester="carol")
    assert other.job_id is not None
    clock.advance(ctx.ledger.lock_stale_after + timedelta(seconds=1))
    claim = ctx.ledger.claim(other.job_id, "w2")
    assert claim.outcome is ClaimOutcome.VM_BUSY and claim.lock_holder == rollback_job.id
    assert ctx.ledger.get(rollback_job.id).state == JobState.INTERRUPTED
    assert [h.job_id for h in ctx.ledger.holds()] == [rollback_job.id]

    Reconciler(ctx).tick(clock())  # the host cannot tell: a human is asked
    assert show_change(ctx, created.change.ref).resolutions
    assert ctx.ledger.claim(other.job_id, "w2").outcome is ClaimOutcome.VM_BUSY

    resolve(ctx, created.change.ref, "active", who="alice")
    assert ctx.ledger.holds() == []
    assert ctx.ledger.claim(other.job_id, "w2").won


def test_a_vm_whose_earlier_change_is_unsettled_runs_nothing_even_without_a_hold(
    ctx: AppContext, clock: ManualClock
) -> None:
    """Defence in depth from the record: an interrupted change whose hold is
    gone (interrupted before holds existed, say) still stops the next
    create on its VM, as "try again", never as a refusal."""
    created = request_checkpoint(ctx, "WEB01", reason="patch", requester="alice")
    assert created.job_id is not None
    ctx.runner.run(created.job_id)
    asked = rollback(ctx, created.change.ref, requester="alice")
    if asked.job_id is None:
        approve(ctx, created.change.ref, approver="bob")
    [rollback_job] = [
        j for j in ctx.ledger.jobs_of_change(created.change.id) if j.state == "queued"
    ]
    assert rollback_job.id is not None and ctx.ledger.claim(rollback_job.id, DEAD).won
    assert ctx.ledger.mark_sent(rollback_job.id, DEAD)  # mid-restore
    clock.advance(ctx.ledger.lock_stale_after + timedelta(seconds=1))
    Reconciler(ctx).tick(clock())
    assert show_change(ctx, created.change.ref).resolutions
    assert ctx.ledger.release_hold(rollback_job.id)  # as an upgraded database has it

    other = request_checkpoint(ctx, "WEB01", reason="other", requester="carol")
    assert other.job_id is not None
    assert ctx.runner.run(other.job_id).status is RunStatus.REQUEUED
    change = show_change(ctx, other.change.ref)
    assert change.state == "approved"
    assert change.events[-1].kind == "recheck_waiting"
    message = change.events[-1].message
    assert f"WEB01's previous operation ({created.change.ref})" in message, message
    assert f"change resolve {created.change.ref}" in message
