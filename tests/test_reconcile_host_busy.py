"""An interrupted change whose host operation is still running on the host.

Seen by a tester (emulator `slow=Checkpoint-VM:75000`, the worker killed
3 s in): at ~60 s the reconciler recorded "none was taken: the change
failed (request it again ...)"; ~15 s later the checkpoint appeared with no
owner. A rollback killed the same way asked a human "is Running ... say
what happened" seconds before the host restored the VM. And an interrupted
rollback asked again on every tick (the uptime in the question changed),
18, 28, 45 "needs a human" events and thread replies within a minute.

What must hold:
- while the host reports the VM busy with a checkpoint operation
  (`Msvm_ComputerSystem.OperationalStatus`: Creating / Applying / Deleting
  Snapshot), the reconciler records nothing but one note and looks again;
  once the host is done, it settles by what it finds;
- busy for longer than a generous limit: the human path, never "none taken";
- a human is asked once per interruption, again only when what the host
  shows materially changes (the VM went Running -> Off), never per tick.

The host is the WinRM emulator over loopback (the estate of
tests/test_clusters.py) with the real pypsrp client; the host model decides
what Get-VM reports while a cmdlet runs (docs/emulator.md).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.changes import Command
from bot.changes.record import get_change, transition
from bot.changes.views import ChangeView
from bot.config import load_settings
from bot.context import AppContext, build_context
from bot.devtools.emulator import EmulatedFleet, Faults
from bot.devtools.hostmodel import (
    InMemoryHostStateStore,
    VMOperationalStatus,
    demo_hosts_path,
    load_host_model,
)
from bot.devtools.hostmodel.state import ModelOperation
from bot.hyperv.types import VMOperation
from bot.hyperv.winrm.mapping import busy_of
from bot.service import approve, request_checkpoint, rollback, show_change
from bot.service.ownership import checkpoint_name
from bot.service.reconcile import HOST_BUSY_LIMIT, Reconciler
from bot.store.db import session_scope
from tests.test_clusters import PASSWORD, PASSWORD_ENV, WEB01, Estate, _estate

DEAD = "dead-host:1:deadbeef"
T0 = datetime(2026, 12, 6, 4, 51, 26, tzinfo=UTC)
# WEB01 of the demo's host model (deploy/examples/demo-hosts.yaml).
DEMO_WEB01 = "8b3f6e1a-d9c2-4b07-a6e5-1f4d7c9b2e83"


@pytest.fixture
def estate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Estate]:
    yield from _estate(tmp_path, monkeypatch)


def _step(estate: Estate, change_id: int, command: Command) -> None:
    with session_scope(estate.ctx.engine) as s:
        transition(
            s,
            get_change(s, change_id),
            command,
            actor="checkpoint-bot",
            now=estate.clock(),
        )


def _dead_worker(estate: Estate, change_id: int, command: Command | None = None) -> int:
    """A worker claims the change's queued job, moves the change, and is
    never heard of again; the job's id."""
    [job] = [j for j in estate.ctx.ledger.jobs_of_change(change_id) if j.state == "queued"]
    assert job.id is not None and estate.ctx.ledger.claim(job.id, DEAD).won
    if command is not None:
        _step(estate, change_id, command)
    elif job.kind != "create":
        assert estate.ctx.ledger.mark_sent(job.id, DEAD)  # its host call went out
    return job.id


@pytest.fixture
def worker(estate: Estate) -> Iterator[AppContext]:
    """The dead worker's process: its own WinRM connections to the hosts.
    A worker cut off from the database never stops its host call: with the
    estate's 4 s `call_timeout`, a loaded machine stopped the slow cmdlet
    (the emulator then skips it, as a stopped pipeline does) and the test
    saw a host that had done nothing."""
    settings = load_settings(estate.config, {PASSWORD_ENV: PASSWORD}, estate.config.parent)
    patient = settings.hyperv.model_copy(update={"call_timeout": timedelta(minutes=1)})
    settings = dataclasses.replace(settings, hyperv=patient)
    ctx = build_context(
        settings, env={PASSWORD_ENV: PASSWORD}, clock=estate.clock, huey_kind="memory"
    )
    try:
        yield ctx
    finally:
        ctx.close()


def _in_background(call: Callable[[], object]) -> threading.Thread:
    """The dead worker's host call: sent over WinRM, its answer never read
    by anyone (the host goes on with it, as a real one does)."""

    def run() -> None:
        try:
            call()
        except Exception:  # the dead worker's call: nobody is there to see it end
            return

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _wait_served(estate: Estate, cmdlet: str) -> None:
    deadline = datetime.now(UTC) + timedelta(seconds=20)
    while "HV01" not in estate.served(cmdlet) and datetime.now(UTC) < deadline:
        threading.Event().wait(0.02)
    assert estate.served(cmdlet) == ["HV01"]


def _stale(estate: Estate) -> None:
    estate.clock.advance(estate.ctx.ledger.lock_stale_after + timedelta(seconds=1))


def _tick(estate: Estate, seconds: int = 5) -> ChangeView:
    estate.clock.advance(timedelta(seconds=seconds))
    Reconciler(estate.ctx).tick(estate.clock())
    return show_change(estate.ctx, "CHG-1")


def _kinds(change: ChangeView) -> list[str]:
    return [e.kind for e in change.events]


def _active(estate: Estate) -> ChangeView:
    asked = request_checkpoint(estate.ctx, "WEB01", reason="KB5044284", requester="alice")
    estate.run_jobs(asked.change.id)
    change = show_change(estate.ctx, asked.change.ref)
    assert change.state == "active"
    return change


def _rollback_cut_off(estate: Estate) -> ChangeView:
    change = _active(estate)
    waiting = rollback(estate.ctx, change.ref, requester="alice")
    assert waiting.waiting
    approve(estate.ctx, change.ref, approver="bob")
    # The approval moved it to rolling_back; its worker claims the job and dies.
    _dead_worker(estate, change.id)
    assert show_change(estate.ctx, change.ref).state == "rolling_back"
    return change


def test_the_host_model_reports_a_running_checkpoint_operation_on_its_vm(
    estate: Estate,
) -> None:
    host = estate.fleet.host("HV01")
    assert host.get_vm(WEB01).operational_status == (VMOperationalStatus.Ok,)
    with host.operation(WEB01, VMOperationalStatus.CreatingSnapshot):
        seen = estate.ctx.host_for("HV01").get_vm(WEB01)
        assert seen.busy == frozenset({VMOperation.CreatingSnapshot}), seen
    assert estate.ctx.host_for("HV01").get_vm(WEB01).busy == frozenset()


def test_a_create_still_running_on_the_host_is_not_failed_and_is_adopted_when_done(
    estate: Estate, worker: AppContext
) -> None:
    asked = request_checkpoint(estate.ctx, "WEB01", reason="patch", requester="alice")
    job_id = _dead_worker(estate, asked.change.id, Command.START_CREATE)
    token = estate.ctx.ledger.get(job_id).payload["token"]
    estate.fleet.server("HV01").faults = Faults(slow={"Checkpoint-VM": 2500})
    name = checkpoint_name(asked.change.ref, str(token), "patch")
    dying = _in_background(lambda: worker.host_for("HV01").create_checkpoint(WEB01, name))
    _wait_served(estate, "Checkpoint-VM")
    _stale(estate)

    first = _tick(estate)
    assert first.state == "interrupted", first.events[-1].message
    assert "reconcile_failed" not in _kinds(first)
    assert "still" in first.events[-1].message, first.events[-1].message
    again = _tick(estate)
    assert len(again.events) == len(first.events)  # one note, not one per tick

    dying.join(20)
    assert not dying.is_alive()
    done = _tick(estate)
    assert done.state == "active", done.events[-1].message
    assert done.checkpoint_id in estate.checkpoints_on("HV01", WEB01)


def test_a_rollback_still_running_on_the_host_asks_no_one_until_it_ends(
    estate: Estate, worker: AppContext
) -> None:
    change = _rollback_cut_off(estate)
    estate.fleet.server("HV01").faults = Faults(slow={"Restore-VMSnapshot": 2500})
    dying = _in_background(
        lambda: worker.host_for("HV01").restore_checkpoint(WEB01, str(change.checkpoint_id))
    )
    _wait_served(estate, "Restore-VMSnapshot")
    _stale(estate)

    busy = _tick(estate)
    assert busy.state == "interrupted"
    assert "needs_human" not in _kinds(busy), busy.events[-1].message
    assert busy.resolutions == ()
    assert len(_tick(estate).events) == len(busy.events)

    dying.join(20)
    assert not dying.is_alive()
    asked = _tick(estate)
    assert _kinds(asked).count("needs_human") == 1
    assert "is Off" in asked.events[-1].message, asked.events[-1].message
    assert set(asked.resolutions) == {"active", "rolled_back"}


def test_an_interrupted_rollback_asks_a_human_once_not_on_every_tick(estate: Estate) -> None:
    change = _rollback_cut_off(estate)
    _stale(estate)
    for _ in range(6):
        seen = _tick(estate)
    assert _kinds(seen).count("needs_human") == 1, [e.message for e in seen.events]

    # What the host shows changes materially (the VM went Running -> Off):
    # asked once more, then quiet again.
    estate.fleet.host("HV01").restore_snapshot(str(change.checkpoint_id))
    for _ in range(4):
        seen = _tick(estate)
    asked = [e for e in seen.events if e.kind == "needs_human"]
    assert len(asked) == 2, [e.message for e in seen.events]
    assert "is Off" in asked[-1].message


def test_a_host_busy_past_the_limit_goes_to_a_human_never_to_none_taken(estate: Estate) -> None:
    asked = request_checkpoint(estate.ctx, "WEB01", reason="patch", requester="alice")
    _dead_worker(estate, asked.change.id, Command.START_CREATE)
    _stale(estate)
    # Someone's checkpoint of the VM that never ends (a guest's VSS writer hung).
    with estate.fleet.host("HV01").operation(WEB01, VMOperationalStatus.CreatingSnapshot):
        waiting = _tick(estate)
        assert waiting.state == "interrupted"
        assert "needs_human" not in _kinds(waiting)
        estate.clock.advance(HOST_BUSY_LIMIT)
        late = _tick(estate)
        assert late.state == "interrupted", late.events[-1].message
        assert "reconcile_failed" not in _kinds(late)
        assert late.resolutions == ("failed",), late.events[-1].message
        assert len(_tick(estate).events) == len(late.events)


# The properties as the client holds them (bot.hyperv.winrm.mapping: keys in
# lower case).
@pytest.mark.parametrize(
    ("props", "busy"),
    [
        ({"operationalstatus": [2]}, frozenset()),
        ({"operationalstatus": [11, 32768]}, frozenset({VMOperation.CreatingSnapshot})),
        (
            {"operationalstatus": ["Ok", "ApplyingSnapshot"]},
            frozenset({VMOperation.ApplyingSnapshot}),
        ),
        (
            {"operationalstatus": "{InService, DeletingSnapshot}"},
            frozenset({VMOperation.DeletingSnapshot}),
        ),
        ({"operationalstatus": [2, 32772]}, frozenset({VMOperation.MergingDisks})),
        # 32771 is "Waiting to Start": no checkpoint operation.
        ({"operationalstatus": [2, 32771]}, frozenset()),
        ({"name": "WEB01"}, None),  # the host did not say: unknown, not idle
    ],
)
def test_operational_status_is_read_by_number_or_name_and_unknown_when_missing(
    props: dict[str, object], busy: frozenset[VMOperation] | None
) -> None:
    assert busy_of(props) == busy


def test_a_host_served_again_after_its_emulator_died_runs_no_operation_of_the_old_one() -> None:
    """Seen: an emulator process killed while it ran a slow Restore-VMSnapshot
    left the VM reporting "Applying Snapshot" in the shared host state for
    ever, so the reconciler waited two hours for a host that had restarted.
    A restarted host's management service runs none of the old one's jobs:
    the emulator serving it again clears them (`ModelHost.restarted`)."""
    store = InMemoryHostStateStore()
    model = load_host_model(demo_hosts_path())
    with EmulatedFleet.start(store, ["HV01"], model=model) as fleet:
        host = fleet.host("HV01")
        # The old process's operation, as it was in the store when it died.
        with store.edit("HV01") as state:
            state.operations.append(
                ModelOperation("op-old", DEMO_WEB01, int(VMOperationalStatus.ApplyingSnapshot), T0)
            )
        assert host.get_vm(DEMO_WEB01).operational_status != (VMOperationalStatus.Ok,)
    with EmulatedFleet.start(store, ["HV01"], model=model) as again:
        assert again.host("HV01").get_vm(DEMO_WEB01).operational_status == (VMOperationalStatus.Ok,)
        assert again.host("HV01").restarted() == 0
