"""Reconciliation: a worker that died mid-job leaves a change that the
reconciler settles against the (simulated) host, or hands to a human.

The dead worker is played by hand: the job is claimed by a worker id that
never beats again, and the host work it did (or did not do) is done on the
simulated host directly. A manual clock moves past `lock_stale_after`."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.changes import Command, State
from bot.changes.record import get_change, transition
from bot.clock import ManualClock
from bot.context import AppContext
from bot.hyperv import CheckpointType, HostUnreachable, HyperVHost, VMState
from bot.service import (
    Conflict,
    Forbidden,
    Outcome,
    approve,
    merge,
    request_checkpoint,
    rollback,
    show_change,
)
from bot.service.ownership import checkpoint_name
from bot.service.reconcile import Reconciler, resolve
from bot.store.db import session_scope
from bot.store.models import change_ref
from templates import Renderer
from templates.blocks import SlackRenderer

DEAD = "dead-host:1:deadbeef"


@pytest.fixture
def ctx(idle_ctx: AppContext) -> AppContext:
    return idle_ctx  # no consumer: every job step here is played by the test


def _step(ctx: AppContext, change_id: int, command: Command, **values: object) -> None:
    with session_scope(ctx.engine) as s:
        transition(
            s, get_change(s, change_id), command, actor="checkpoint-bot", now=ctx.clock(), **values
        )


def _died_while(ctx: AppContext, kind: str, change_id: int, job_id: int) -> None:
    """A worker claims the job, moves the change (a create) or says it sends
    its host call (a rollback, a merge), and is never heard of again."""
    assert ctx.ledger.claim(job_id, DEAD).won
    if kind == "create":
        _step(ctx, change_id, Command.START_CREATE)
    else:
        assert ctx.ledger.mark_sent(job_id, DEAD)


def _active(ctx: AppContext, clock: ManualClock) -> tuple[int, HyperVHost]:
    """WEB01 with a checkpoint, its change active (the normal way, run by hand)."""
    out = request_checkpoint(ctx, "WEB01", reason="KB5044284", requester="alice")
    assert out.job_id is not None
    ctx.runner.run(out.job_id)
    change = show_change(ctx, out.change.ref)
    assert change.state == "active"
    return change.id, ctx.host_for(change.host)


def _stale(ctx: AppContext, clock: ManualClock) -> None:
    clock.advance(ctx.ledger.lock_stale_after + timedelta(seconds=1))


def test_create_that_reached_the_host_becomes_active_without_a_second_checkpoint(
    ctx: AppContext, clock: ManualClock
) -> None:
    out = request_checkpoint(ctx, "WEB01", reason="patch", requester="alice")
    assert out.job_id is not None
    _died_while(ctx, "create", out.change.id, out.job_id)
    host = ctx.host_for(out.change.host)
    # What the job's own Checkpoint-VM left: its token is in the name.
    token = ctx.ledger.get(out.job_id).payload["token"]
    taken = host.create_checkpoint(
        out.change.vm_id, checkpoint_name(out.change.ref, token, "patch")
    )

    reconciler = Reconciler(ctx)
    reconciler.tick(clock())  # heartbeat still fresh: nothing happens
    assert show_change(ctx, out.change.ref).state == "creating"
    assert ctx.ledger.get(out.job_id).state == "running"

    _stale(ctx, clock)
    reconciler.tick(clock())
    change = show_change(ctx, out.change.ref)
    assert change.state == "active"
    assert change.checkpoint_id == taken.id
    assert change.expires_at == clock() + timedelta(seconds=change.ttl_seconds)
    assert ctx.ledger.get(out.job_id).state == "interrupted"
    assert [c.id for c in host.list_checkpoints(out.change.vm_id)] == [taken.id]
    kinds = [e.kind for e in change.events]
    assert kinds[-2:] == ["interrupt", "reconcile_active"]
    assert "stopped heartbeating" in change.events[-2].message
    assert "reconciled against the host" in change.events[-1].message
    # The VM lock was freed: the next operation on WEB01 can run.
    assert ctx.ledger.running_for_vm(out.change.vm_id) is None


def test_create_that_never_reached_the_host_fails(ctx: AppContext, clock: ManualClock) -> None:
    out = request_checkpoint(ctx, "WEB01", reason="patch", requester="alice")
    assert out.job_id is not None
    _died_while(ctx, "create", out.change.id, out.job_id)
    _stale(ctx, clock)
    Reconciler(ctx).tick(clock())
    change = show_change(ctx, out.change.ref)
    assert change.state == "failed"
    assert "no checkpoint of this VM carrying this change's name" in change.events[-1].message


def test_create_whose_worker_vanished_during_its_recheck_fails_as_not_started(
    ctx: AppContext, clock: ManualClock
) -> None:
    """The worker claimed the job and died before the change reached
    `creating` (during the re-check): before, the change stayed `approved`
    for ever, with nothing left to run it and nobody told."""
    out = request_checkpoint(ctx, "WEB01", reason="patch", requester="alice")
    assert out.job_id is not None
    assert ctx.ledger.claim(out.job_id, DEAD).won  # and nothing else
    host = ctx.host_for(out.change.host)
    _stale(ctx, clock)
    Reconciler(ctx).tick(clock())
    change = show_change(ctx, out.change.ref)
    assert change.state == "failed"
    message = change.events[-1].message
    assert message == (
        "not started: the worker running its job stopped before the checkpoint was asked "
        "for; nothing was done on the host, request it again"
    )
    assert host.list_checkpoints(out.change.vm_id) == []
    assert ctx.ledger.running_for_vm(out.change.vm_id) is None
    # Settled once: later ticks leave it.
    Reconciler(ctx).tick(clock())
    assert show_change(ctx, out.change.ref).events[-1].message == message


def test_create_whose_job_failed_before_it_began_fails_as_not_started(
    ctx: AppContext, clock: ManualClock
) -> None:
    out = request_checkpoint(ctx, "WEB01", reason="patch", requester="alice")
    assert out.job_id is not None
    assert ctx.ledger.claim(out.job_id, "live-worker").won
    ctx.ledger.finish(
        out.job_id, "live-worker", succeeded=False, result={}, error="ValueError: a bug."
    )
    Reconciler(ctx).tick(clock())
    change = show_change(ctx, out.change.ref)
    assert change.state == "failed"
    assert change.events[-1].message == (
        "not started: its job failed before the checkpoint was asked for (ValueError: a "
        "bug.); nothing was done on the host, request it again"
    )


def test_an_approved_create_whose_job_waits_or_runs_is_left_alone(
    ctx: AppContext, clock: ManualClock
) -> None:
    out = request_checkpoint(ctx, "WEB01", reason="patch", requester="alice")
    assert out.job_id is not None
    Reconciler(ctx).tick(clock())  # queued
    assert show_change(ctx, out.change.ref).state == "approved"
    assert ctx.ledger.claim(out.job_id, "live-worker").won
    for _ in range(3):  # running its re-check, heart-beating
        clock.advance(timedelta(seconds=10))
        assert ctx.ledger.heartbeat(out.job_id, "live-worker")
        Reconciler(ctx).tick(clock())
    assert show_change(ctx, out.change.ref).state == "approved"


def _create_died_after_raising(
    ctx: AppContext, clock: ManualClock, raised: str | None, on_host: str | None
) -> tuple[str, HyperVHost, str, CheckpointType]:
    """A create whose worker died after it raised WEB01's CheckpointType to
    `raised` (None: whichever type the VM does not have), the host showing
    `on_host` now (None: what was raised); the reconciler's tick after the
    claim lapsed. The change's ref, its host, the VM and its type before."""
    from bot.changes.record import note

    out = request_checkpoint(ctx, "WEB01", reason="patch", requester="alice")
    assert out.job_id is not None
    _died_while(ctx, "create", out.change.id, out.job_id)
    host = ctx.host_for(out.change.host)
    before = host.get_vm(out.change.vm_id).checkpoint_type
    up = (
        CheckpointType[raised]
        if raised
        else next(t for t in (CheckpointType.Standard, CheckpointType.Production) if t != before)
    )
    host.set_checkpoint_settings(
        out.change.vm_id, checkpoint_type=CheckpointType[on_host] if on_host else up
    )
    with session_scope(ctx.engine) as s:
        note(
            s,
            get_change(s, out.change.id),
            kind="setting",
            actor="checkpoint-bot",
            now=clock(),
            message="switched",
            details={"original": before.name, "raised": up.name},
        )
    _stale(ctx, clock)
    Reconciler(ctx).tick(clock())
    return out.change.ref, host, out.change.vm_id, before


def test_create_that_switched_the_checkpoint_type_sets_it_back(
    ctx: AppContext, clock: ManualClock
) -> None:
    ref, host, vm, before = _create_died_after_raising(ctx, clock, None, None)
    assert host.get_vm(vm).checkpoint_type is before
    assert show_change(ctx, ref).state == "failed"


def test_an_interrupted_creates_set_back_leaves_a_later_setting_alone(
    ctx: AppContext, clock: ManualClock
) -> None:
    """The host no longer has what the create raised it to: someone chose
    another type since, and the reconciler does not overwrite it."""
    ref, host, vm, _before = _create_died_after_raising(ctx, clock, "ProductionOnly", "Standard")
    assert host.get_vm(vm).checkpoint_type is CheckpointType.Standard
    assert not any(e.kind == "setting_restored" for e in show_change(ctx, ref).events)


def test_merge_settles_by_whether_the_checkpoint_is_still_there(
    ctx: AppContext, clock: ManualClock
) -> None:
    change_id, host = _active(ctx, clock)
    ref = change_ref(change_id)
    from bot.service.requests import begin_host_action
    from policies import Action

    job_id = begin_host_action(ctx, change_id, Action.MERGE, "alice")
    assert ctx.ledger.claim(job_id, DEAD).won
    _stale(ctx, clock)
    Reconciler(ctx).tick(clock())
    # The remove never reached the host: the checkpoint is there, active again.
    assert show_change(ctx, ref).state == "active"

    job_id = begin_host_action(ctx, change_id, Action.MERGE, "alice")
    _died_while(ctx, "merge", change_id, job_id)
    change = show_change(ctx, ref)
    assert change.checkpoint_id is not None
    _stale(ctx, clock)
    host.remove_checkpoint(change.vm_id, change.checkpoint_id)
    Reconciler(ctx).tick(clock())
    assert host.get_vm(change.vm_id).merging  # still merging on the host: wait
    assert show_change(ctx, ref).state == "interrupted"
    clock.advance(timedelta(hours=1))
    Reconciler(ctx).tick(clock())
    assert show_change(ctx, ref).state == "merged"


def _restore_interrupted(ctx: AppContext, clock: ManualClock) -> str:
    """WEB01's rollback, its worker dead mid-restore, one reconciler tick
    past it: the ref of a change that asks a human what happened."""
    change_id, _host = _active(ctx, clock)
    from bot.service.requests import begin_host_action
    from policies import Action

    job_id = begin_host_action(ctx, change_id, Action.ROLLBACK, "bob")
    _died_while(ctx, "rollback", change_id, job_id)
    _stale(ctx, clock)
    Reconciler(ctx).tick(clock())
    return change_ref(change_id)


def test_restore_asks_a_human_once_and_the_answer_is_checked(
    ctx: AppContext, clock: ManualClock
) -> None:
    ref = _restore_interrupted(ctx, clock)
    Reconciler(ctx).tick(clock())  # a second tick asks no second time
    change = show_change(ctx, ref)
    assert change.state == "interrupted"
    assert change.resolutions == ("rolled_back", "active")
    assert [e.kind for e in change.events].count("needs_human") == 1
    assert "cannot tell whether the restore ran" in change.events[-1].message

    root = SlackRenderer(Renderer()).payload("change_root", c=change)
    actions = [
        el["action_id"] for b in root["blocks"] if b["type"] == "actions" for el in b["elements"]
    ]
    assert actions == ["checkpoint:resolve_rolled_back", "checkpoint:resolve_active"]

    with pytest.raises(Forbidden):
        resolve(ctx, ref, "rolled_back", who="mallory")
    with pytest.raises(Conflict, match="outcomes that can be recorded now: rolled_back, active"):
        resolve(ctx, ref, "merged", who="alice")
    done = resolve(ctx, ref, "rolled_back", who="alice")
    assert done.state == "rolled_back"
    assert done.events[-1].actor == "alice"
    with pytest.raises(Conflict):
        resolve(ctx, ref, "active", who="alice")


@pytest.mark.parametrize(
    ("action", "call"),
    [("rollback", "Restore-VMSnapshot"), ("merge", "Remove-VMSnapshot")],
)
def test_a_job_that_stopped_before_its_host_call_was_sent_did_nothing(
    ctx: AppContext, clock: ManualClock, action: str, call: str
) -> None:
    """Seen: a rollback claimed and cut off while it re-checked (before
    Restore-VMSnapshot) asked a human whether the restore ran, and held the
    VM until one answered. Its job says it never sent the call: "not run",
    the change active again, the VM free at once."""
    from bot.service.requests import begin_host_action
    from policies import Action

    change_id, host = _active(ctx, clock)
    before = show_change(ctx, change_ref(change_id))
    job_id = begin_host_action(ctx, change_id, Action(action), "alice")
    assert ctx.ledger.claim(job_id, DEAD).won  # and never heard of again
    _stale(ctx, clock)
    Reconciler(ctx).tick(clock())
    change = show_change(ctx, change_ref(change_id))
    assert change.state == "active"
    assert change.events[-1].message == (
        f"{action} not run: its job stopped before {call} was sent (worker {DEAD} stopped "
        "heartbeating); nothing was done on the host, try again"
    )
    assert ctx.ledger.holds() == []
    assert [c.id for c in host.list_checkpoints(change.vm_id)] == [before.checkpoint_id]
    # Settled once: a later tick leaves it.
    Reconciler(ctx).tick(clock())
    assert show_change(ctx, change_ref(change_id)).version == change.version


def test_a_job_claimed_before_the_record_said_whether_it_sent_asks_the_host(
    ctx: AppContext, clock: ManualClock
) -> None:
    """A job claimed by a release before migration 0020 never said whether
    its call went out (`host_call` NULL): not taken as "not sent"."""
    from sqlalchemy import update

    from bot.service.requests import begin_host_action
    from bot.store.models import Job
    from policies import Action

    change_id, _host = _active(ctx, clock)
    job_id = begin_host_action(ctx, change_id, Action.ROLLBACK, "alice")
    assert ctx.ledger.claim(job_id, DEAD).won
    with ctx.engine.begin() as conn:
        conn.execute(update(Job).where(Job.id == job_id).values(host_call=None))  # type: ignore[arg-type]
    _stale(ctx, clock)
    Reconciler(ctx).tick(clock())
    change = show_change(ctx, change_ref(change_id))
    assert change.state == "interrupted"
    assert change.resolutions == ("rolled_back", "active")


def test_a_rollback_interrupted_while_it_rechecked_never_sends_its_restore(
    ctx: AppContext, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fence behind "not sent": a reconciler interrupts a job whose
    worker was silent (paused, say) while the job re-checked; the job, going
    on, cannot record that it sends, so it sends nothing, and the record's
    "not run" is true."""
    from bot.jobs import RunStatus

    change_id, host = _active(ctx, clock)
    vm_id = show_change(ctx, change_ref(change_id)).vm_id
    assert host.get_vm(vm_id).state is VMState.Running
    if rollback(ctx, change_ref(change_id), requester="alice").job_id is None:
        approve(ctx, change_ref(change_id), approver="bob")  # prod: one approval
    [job_id] = [j.id for j in ctx.ledger.jobs_of_change(change_id) if j.state == "queued"]
    assert job_id is not None
    decide = ctx.decider.decide_seeing

    def paused_past_its_claim(*args: object, **kwargs: object) -> object:
        seen = decide(*args, **kwargs)  # type: ignore[arg-type]
        _stale(ctx, clock)
        assert [j.id for j in ctx.ledger.interrupt_stale()] == [job_id]
        return seen

    monkeypatch.setattr(ctx.decider, "decide_seeing", paused_past_its_claim)
    outcome = ctx.runner.run(job_id)
    assert outcome.status is RunStatus.OWNERSHIP_LOST, outcome
    assert "Restore-VMSnapshot was not sent" in (outcome.error or "")
    # A restore of a production checkpoint leaves the VM Off (Restore-VMSnapshot,
    # https://learn.microsoft.com/powershell/module/hyper-v/restore-vmsnapshot).
    assert host.get_vm(vm_id).state is VMState.Running
    monkeypatch.undo()
    Reconciler(ctx).tick(clock())
    change = show_change(ctx, change_ref(change_id))
    assert change.state == "active"
    assert change.events[-1].message.startswith(
        "rollback not run: its job stopped before Restore-VMSnapshot was sent"
    )


def test_a_worker_that_wakes_after_its_rollback_was_settled_stops_without_a_traceback(
    ctx: AppContext,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Seen (on-call): a worker paused past its claim woke after a reconciler
    had settled its rollback as "not run"; its re-check then failed (the
    host had gone), recording that found the change active, and the worker
    logged "job failed" with an IllegalTransition traceback."""
    import logging

    from bot.jobs import RunStatus
    from bot.service import Unavailable

    change_id, _host = _active(ctx, clock)
    if rollback(ctx, change_ref(change_id), requester="alice").job_id is None:
        approve(ctx, change_ref(change_id), approver="bob")
    [job_id] = [j.id for j in ctx.ledger.jobs_of_change(change_id) if j.state == "queued"]

    def paused_then_host_gone(*_args: object, **_kwargs: object) -> object:
        _stale(ctx, clock)
        Reconciler(ctx).tick(clock())  # settles it: "rollback not run"
        raise Unavailable("could not check WEB01: HV01 could not be reached")

    monkeypatch.setattr(ctx.decider, "decide_seeing", paused_then_host_gone)
    with caplog.at_level(logging.INFO, logger="bot.jobs.runner"):
        outcome = ctx.runner.run(job_id)
    assert outcome.status is RunStatus.OWNERSHIP_LOST, outcome
    said = [r for r in caplog.records if r.name == "bot.jobs.runner"]
    assert [r.levelname for r in said] == ["WARNING"], [r.getMessage() for r in said]
    assert said[0].exc_info is None
    assert "is no longer this worker's; it stopped there: IllegalTransition" in said[0].getMessage()
    change = show_change(ctx, change_ref(change_id))
    assert change.state == "active"
    assert change.events[-1].message.startswith(
        "rollback not run: its job stopped before Restore-VMSnapshot was sent"
    )


def test_a_listing_says_under_way_only_while_the_create_job_heart_beats(
    ctx: AppContext, clock: ManualClock
) -> None:
    """Seen (on-call): "CHG-0018's, being recorded: its create is under way"
    13 s after the CLI running that create was stopped with Ctrl-C."""
    from bot.service import list_checkpoints
    from templates import Renderer

    out = request_checkpoint(ctx, "WEB01", reason="patch", requester="alice")
    assert out.job_id is not None
    _died_while(ctx, "create", out.change.id, out.job_id)
    token = str(ctx.ledger.get(out.job_id).payload["token"])
    host = ctx.host_for(out.change.host)
    # Checkpoint-VM did its work; the job has not recorded it (yet).
    made = host.create_checkpoint(out.change.vm_id, checkpoint_name(out.change.ref, token, "patch"))

    def said() -> str:
        listing = list_checkpoints(ctx, vm="WEB01")
        text = Renderer().render("cli/checkpoints.txt.j2", listing=listing, scope="WEB01")
        return next(line for line in text.splitlines() if made.id in line)

    assert said().endswith(f"{out.change.ref}'s, being recorded: its create is under way")
    _stale(ctx, clock)  # its worker silent past jobs.lock_stale_after
    assert said().endswith(
        f"{out.change.ref}'s, not recorded yet: its create was cut off; the reconciler records it"
    )


def test_two_reconcilers_at_once_ask_a_human_once(
    ctx: AppContext, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen (an SRE starting a worker and a bot together): "needs human"
    twice in a row, the same question, one per reconciler."""
    import bot.service.reconcile as reconciling
    from bot.service.requests import begin_host_action
    from policies import Action

    change_id, _host = _active(ctx, clock)
    job_id = begin_host_action(ctx, change_id, Action.ROLLBACK, "bob")
    _died_while(ctx, "rollback", change_id, job_id)
    _stale(ctx, clock)
    judge = reconciling.judge_rollback
    other_ran: list[str] = []

    def the_other_reconciler_first(*args: object, **kwargs: object) -> object:
        if not other_ran:
            other_ran.append(Reconciler(ctx).reconcile(change_id))  # it asks first
        return judge(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(reconciling, "judge_rollback", the_other_reconciler_first)
    Reconciler(ctx).tick(clock())
    assert other_ran == ["interrupted"]
    monkeypatch.undo()
    Reconciler(ctx).tick(clock())  # and the next tick asks no second time
    kinds = [e.kind for e in show_change(ctx, change_ref(change_id)).events]
    assert kinds.count("needs_human") == 1, kinds


def test_acting_on_a_change_that_waits_for_a_person_says_how_to_settle_it(
    ctx: AppContext, clock: ManualClock
) -> None:
    """Seen: "interrupted and the bot is checking the host" for a change
    only a person could settle, with no word of how."""
    ref = _restore_interrupted(ctx, clock)
    for act in (rollback, merge):
        with pytest.raises(Conflict) as refused:
            act(ctx, ref, requester="alice")
        assert refused.value.message == (
            f"{ref} was interrupted and its host cannot tell how it ended: the requester or "
            "an admin says what happened, with the buttons in its thread in Slack, or "
            f"`checkpoint-bot change resolve {ref} OUTCOME` on the CLI; nothing else can "
            "happen to it until then"
        )
    shown = Renderer().render("cli/change_summary.txt.j2", c=show_change(ctx, ref))
    assert (
        "  settle:     the host cannot tell how it ended; the requester or an admin runs "
        f"'checkpoint-bot change resolve {ref} rolled_back|active' (or answers in its thread)"
    ) in shown


def _create_interrupted_with_its_host_down(ctx: AppContext, clock: ManualClock) -> Outcome:
    """WEB01's create, its worker dead mid-job and its claim lapsed, and its
    host refusing every call (`ctx.host_for.wrap(None)` brings it back)."""
    out = request_checkpoint(ctx, "WEB01", reason="patch", requester="alice")
    assert out.job_id is not None
    _died_while(ctx, "create", out.change.id, out.job_id)
    _stale(ctx, clock)

    class Down:
        def list_checkpoints(self, vm_id: str | None = None) -> list[object]:
            raise HostUnreachable("connection refused", host=out.change.host)

        def get_vm(self, vm_id: str) -> object:
            # Asked first now: which node of its cluster has the VM.
            raise HostUnreachable("connection refused", host=out.change.host)

    ctx.host_for.wrap(lambda _name, _host: Down())  # type: ignore[arg-type,return-value]
    return out


def test_acting_on_a_change_the_reconciler_is_still_checking_says_so(
    ctx: AppContext, clock: ManualClock
) -> None:
    out = _create_interrupted_with_its_host_down(ctx, clock)
    Reconciler(ctx).tick(clock())
    ref = out.change.ref
    assert show_change(ctx, ref).state == "interrupted"
    with pytest.raises(Conflict, match="the bot is checking the host"):
        merge(ctx, ref, requester="alice")


def test_two_answers_at_once_record_one_and_tell_the_other_what_it_is_now(
    ctx: AppContext, clock: ManualClock
) -> None:
    """Two people answer the same interrupted rollback (the requester in
    Slack, an admin on the CLI, or one double click): while the second
    answer checks the host, the first is recorded. The second is turned
    away in words that say what the change is now, and recorded nothing."""
    ref = _restore_interrupted(ctx, clock)
    assert show_change(ctx, ref).state == "interrupted"

    class FirstAnswerLands:
        """The host, asked by the second answer after the first was recorded."""

        def __init__(self, inner: HyperVHost) -> None:
            self.inner = inner
            self.answered = False

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

        def list_checkpoints(self, vm_id: str | None = None) -> object:
            if not self.answered:
                self.answered = True
                ctx.host_for.wrap(None)
                resolve(ctx, ref, "rolled_back", who="alice")
            return self.inner.list_checkpoints(vm_id)

    ctx.host_for.wrap(lambda _name, host: FirstAnswerLands(host))  # type: ignore[arg-type,return-value]
    with pytest.raises(Conflict) as refused:
        resolve(ctx, ref, "active", who="alice")
    assert refused.value.message == (
        f"{ref} is rolled back now: someone answered while you did; nothing was recorded"
    )
    change = show_change(ctx, ref)
    assert change.state == "rolled_back"
    resolved = [e for e in change.events if e.from_state == "interrupted"]
    assert len(resolved) == 1 and "recorded: rolled back" in resolved[0].message


def test_unreachable_host_keeps_the_change_interrupted_and_says_so_once(
    ctx: AppContext, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _create_interrupted_with_its_host_down(ctx, clock)
    reconciler = Reconciler(ctx)
    reconciler.tick(clock())
    reconciler.tick(clock())
    change = show_change(ctx, out.change.ref)
    assert change.state == "interrupted"
    assert [e.kind for e in change.events].count("reconcile_waiting") == 1
    ctx.host_for.wrap(None)
    reconciler.tick(clock())
    assert show_change(ctx, out.change.ref).state == "failed"


def test_queued_create_past_its_deadline_expires_the_change(
    ctx: AppContext, clock: ManualClock
) -> None:
    out = request_checkpoint(ctx, "WEB01", reason="patch", requester="alice")
    clock.advance(ctx.settings.jobs.create_deadline + timedelta(minutes=1))
    Reconciler(ctx).tick(clock())
    change = show_change(ctx, out.change.ref)
    assert change.state == "expired"
    assert "could not start before its deadline" in change.events[-1].message


def test_a_lost_delivery_is_enqueued_again(ctx: AppContext, clock: ManualClock) -> None:
    out = request_checkpoint(ctx, "WEB01", reason="patch", requester="alice")
    assert out.job_id is not None
    ctx.queue.huey.flush()  # the queue lost it
    clock.advance(timedelta(minutes=2))
    Reconciler(ctx).tick(clock())
    Reconciler(ctx).tick(clock())  # another replica, the same tick: one delivery
    assert len(ctx.queue.huey) == 1
    task = ctx.queue.huey.dequeue()
    assert task is not None
    ctx.queue.huey.execute(task)
    assert show_change(ctx, out.change.ref).state == "active"


def test_healthy_work_is_left_alone(ctx: AppContext, clock: ManualClock) -> None:
    out = request_checkpoint(ctx, "WEB01", reason="patch", requester="alice")
    assert out.job_id is not None
    reconciler = Reconciler(ctx)
    reconciler.tick(clock())  # queued and due: not stranded yet
    assert show_change(ctx, out.change.ref).state == "approved"
    assert ctx.ledger.claim(out.job_id, "live-worker").won
    _step(ctx, out.change.id, Command.START_CREATE)
    for _ in range(5):
        clock.advance(timedelta(seconds=10))
        assert ctx.ledger.heartbeat(out.job_id, "live-worker")
        reconciler.tick(clock())
    assert show_change(ctx, out.change.ref).state == "creating"


@given(st.sampled_from([State.CREATING, State.MERGING, State.ROLLING_BACK]))
def test_every_in_flight_state_can_be_interrupted_and_left(state: State) -> None:
    from bot.changes.lifecycle import TRANSITIONS, next_state

    assert next_state(state, Command.INTERRUPT) is State.INTERRUPTED
    leaving = {c for c, edges in TRANSITIONS.items() if State.INTERRUPTED in edges}
    assert leaving == {
        Command.RECONCILE_ACTIVE,
        Command.RECONCILE_FAILED,
        Command.RECONCILE_MERGED,
        Command.RECONCILE_ROLLED_BACK,
        # The host answered and the checkpoint is gone.
        Command.VANISH,
    }


def test_a_change_that_moved_on_since_it_was_picked_is_left_alone(
    ctx: AppContext, clock: ManualClock
) -> None:
    change_id, _host = _active(ctx, clock)
    assert Reconciler(ctx).reconcile(change_id) == "active"
    out = request_checkpoint(ctx, "WEB02", reason="patch", requester="alice")
    assert out.job_id is not None
    _died_while(ctx, "create", out.change.id, out.job_id)
    # Its worker still beats: creating with a live job is not stuck.
    assert Reconciler(ctx).reconcile(out.change.id) == "creating"


def test_a_job_waiting_behind_a_locked_vm_is_not_delivered_again(
    ctx: AppContext, clock: ManualClock
) -> None:
    change_id, _host = _active(ctx, clock)
    from bot.service.requests import begin_host_action
    from policies import Action

    merge_job = begin_host_action(ctx, change_id, Action.MERGE, "alice")
    assert ctx.ledger.claim(merge_job, "live-worker").won  # a long merge holds WEB01
    out = request_checkpoint(ctx, "WEB01", reason="next patch", requester="alice")
    ctx.queue.huey.flush()
    for _ in range(3):
        clock.advance(timedelta(minutes=2))
        assert ctx.ledger.heartbeat(merge_job, "live-worker")
        Reconciler(ctx).tick(clock())
    assert len(ctx.queue.huey) == 0
    assert show_change(ctx, out.change.ref).state == "approved"


def test_a_vm_a_rollback_settled_by_hand_left_off_is_started_on_request(
    ctx: AppContext, clock: ManualClock
) -> None:
    """`change resolve CHG-n rolled_back` records what a person saw, not the
    VM's state: Start asks the host, starts a VM it finds Off, and refuses
    one it finds running (seen: "nothing to start; Start is offered only
    after a rollback leaves the VM off or saved" for a VM left Off)."""
    from bot.service import start_vm

    ref = _restore_interrupted(ctx, clock)
    change = show_change(ctx, ref)
    assert change.checkpoint_id is not None
    host = ctx.host_for(change.host)
    # The dead worker's restore had reached the host: a production
    # checkpoint is restored with the VM off (Restore-VMCheckpoint,
    # https://learn.microsoft.com/powershell/module/hyper-v/restore-vmcheckpoint).
    host.restore_checkpoint(change.vm_id, change.checkpoint_id)
    assert host.get_vm(change.vm_id).state.name == "Off"
    resolve(ctx, ref, "rolled_back", who="alice")
    out = start_vm(ctx, ref, requester="alice")
    ctx.runner.run(out.job_id)
    assert host.get_vm(change.vm_id).state.name == "Running"
    with pytest.raises(Conflict, match="already started by @alice"):
        start_vm(ctx, ref, requester="alice")


def test_start_refuses_a_vm_its_host_reports_running_after_a_hand_settled_rollback(
    ctx: AppContext, clock: ManualClock
) -> None:
    from bot.service import start_vm

    ref = _restore_interrupted(ctx, clock)  # the restore never reached the host
    resolve(ctx, ref, "rolled_back", who="alice")
    with pytest.raises(Conflict, match="nothing to start: WEB01 is Running"):
        start_vm(ctx, ref, requester="alice")
