"""A time, not only a window (#19 item 7, docs/batches.md "At a time"):
`--at` schedules a single change or a wave, the change windows still apply,
and the requester can withdraw it before it runs.

Over real WinRM against the emulated demo hosts, on a manual clock, on
SQLite and PostgreSQL: the jobs are run in this thread as a worker would,
so "it runs at that time" is the clock's doing, not a sleep's, and "nothing
on the hosts" is the emulator's own log of what each host was asked.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel, select

from bot.clock import ManualClock
from bot.config import load_settings
from bot.context import AppContext, build_context
from bot.devtools.emulator import EmulatedFleet, EmulatorLog
from bot.devtools.emulator.pointing import EMULATOR_PASSWORD_ENV, emulated_inventory
from bot.devtools.hostmodel import InMemoryHostStateStore, demo_hosts_path, load_host_model
from bot.inventory import demo_inventory_path, load_inventory
from bot.service import (
    AtTime,
    BadRequest,
    Conflict,
    Forbidden,
    Selection,
    approve,
    create_batch,
    list_batches,
    parse_at,
    request_checkpoint,
    show_batch,
    show_change,
    withdraw,
    withdraw_batch,
)
from bot.store.db import session_scope
from bot.store.migrate import downgrade, upgrade
from bot.store.models import Change, Job
from tests.helpers import T0

PASSWORD = "Passw0rd!"
BERLIN = ZoneInfo("Europe/Berlin")
# Prod VMs may be changed only in the nightly window, 22:00-02:00 Berlin;
# creating REPL-APP01 needs one approver (so the approval path is shown too).
POLICY = """
rules:
  change_window: {effect: deny}
  approvals:
    overrides:
      - scope: {names: [REPL-APP01]}
        params: {count: 1, actions: [create, rollback]}
windows:
  - name: nightly
    rrule: "FREQ=DAILY;BYHOUR=22;BYMINUTE=0"
    duration: 4h
    timezone: Europe/Berlin
    scope: {tags: {env: prod}}
"""
# T0 is Tuesday 2026-11-24 10:00 in Berlin: the window opens at 22:00.
TONIGHT = "2026-11-24 22:30"


@dataclass
class Estate:
    ctx: AppContext
    fleet: EmulatedFleet
    clock: ManualClock

    def run_jobs(self, change_ids: list[int]) -> list[str]:
        """Deliver every job of the changes to a worker in this thread (as
        the queue would, early or late), and say how each claim went."""
        seen = []
        for change_id in change_ids:
            for job in self.ctx.ledger.jobs_of_change(change_id):
                assert job.id is not None
                seen.append(self.ctx.runner.run(job.id).status.value)
        return seen

    def checkpoints_taken(self) -> int:
        return sum(e.cmdlet == "Checkpoint-VM" for e in self.fleet.log.entries)


@pytest.fixture
def estate(tmp_path: Path, db_url: str) -> Iterator[Estate]:
    clock = ManualClock(T0)
    fleet = EmulatedFleet.start(
        InMemoryHostStateStore(),
        model=load_host_model(demo_hosts_path()),
        log=EmulatorLog(),
        clock=clock,
    )
    try:
        inventory = load_inventory(demo_inventory_path())
        ports = {name: server.port for name, server in fleet.servers.items()}
        (tmp_path / "inventory.yaml").write_text(
            emulated_inventory(inventory, ports, "hvadmin", EMULATOR_PASSWORD_ENV), "utf-8"
        )
        (tmp_path / "policy.yaml").write_text(POLICY, encoding="utf-8")
        (tmp_path / "bot.yaml").write_text(
            "inventory: inventory.yaml\npolicy: policy.yaml\n"
            f"database_url: {db_url}\n"
            "hyperv:\n  backend: winrm\n  call_timeout: 30s\n"
            "defaults:\n  timezone: Europe/Berlin\n",
            encoding="utf-8",
        )
        env = {EMULATOR_PASSWORD_ENV: PASSWORD}
        settings = load_settings(tmp_path / "bot.yaml", env, tmp_path)
        ctx = build_context(settings, env=env, clock=clock, huey_kind="memory")
        try:
            yield Estate(ctx, fleet, clock)
        finally:
            ctx.close()
    finally:
        fleet.stop()


def _member_ids(estate: Estate, ref: str) -> list[int]:
    return [m.change_id for m in show_batch(estate.ctx, ref).members]


def test_a_wave_at_a_time_waits_for_it_then_runs_on_the_manual_clock(estate: Estate) -> None:
    at = parse_at(TONIGHT, BERLIN, source="slack")
    assert at.instant == datetime(2026, 11, 24, 21, 30, tzinfo=UTC)
    out = create_batch(
        estate.ctx, Selection.of(groups=["web-tier"]), reason="KB5044284", requester="alice", at=at
    )
    batch = out.batch
    assert batch.run_at == at.instant and batch.state.value == "scheduled"
    assert [m.state for m in batch.members] == ["scheduled"] * 3
    assert batch.progress == "0 of 3 done"
    requested = next(e for e in batch.events if e.kind == "requested")
    assert requested.details["at"] == {
        "instant": "2026-11-24T21:30:00+00:00",
        "zone": "Europe/Berlin",
        "read": "slack",
    }
    members = _member_ids(estate, batch.ref)
    scheduled = show_change(estate.ctx, f"CHG-{members[0]}")
    assert any("asked for 2026-11-24 21:30 UTC: runs then" in e.message for e in scheduled.events)

    # Delivered early (a worker's queue hands it over at once): not due yet.
    estate.clock.advance(timedelta(hours=12, minutes=29))
    assert set(estate.run_jobs(members)) == {"not_due"}
    assert estate.checkpoints_taken() == 0

    estate.clock.advance(timedelta(minutes=1))
    assert estate.clock() == at.instant
    assert set(estate.run_jobs(members)) == {"succeeded"}
    done = show_batch(estate.ctx, batch.ref)
    assert done.state.value == "active", done.members
    assert estate.checkpoints_taken() == 3
    with session_scope(estate.ctx.engine) as s:
        started = [j.started_at for j in s.exec(select(Job)).all()]
    assert started == [at.instant] * 3


def test_a_wave_withdrawn_before_its_time_leaves_nothing_on_the_hosts(estate: Estate) -> None:
    out = create_batch(
        estate.ctx,
        Selection.of(["WEB01", "STG-WEB01", "CORP-DC01"]),
        reason="KB5044284",
        requester="alice",
        at=parse_at(TONIGHT, BERLIN, source="slack"),
    )
    ref = out.batch.ref
    assert [m.state for m in out.batch.members] == ["scheduled", "scheduled", "denied"]
    # Only its requester may withdraw it.
    with pytest.raises(Forbidden, match="only @alice, who asked for BAT-0001, may withdraw it"):
        withdraw_batch(estate.ctx, ref, requester="bob")

    estate.clock.advance(timedelta(hours=6))
    taken_back = withdraw_batch(estate.ctx, ref, requester="alice")
    assert taken_back.withdrawn == ("WEB01", "STG-WEB01") and taken_back.problems == ()
    assert taken_back.batch.state.value == "withdrawn"
    assert taken_back.batch.progress == "1 refused, 2 withdrawn"
    assert taken_back.batch.events[-1].kind == "withdrawn"

    # Its time comes, the queue delivers the jobs: they were cancelled.
    estate.clock.advance(timedelta(hours=12))
    members = _member_ids(estate, ref)
    assert set(estate.run_jobs(members)) == {"lost"}
    with session_scope(estate.ctx.engine) as s:
        jobs = s.exec(select(Job)).all()
    assert sorted((j.state, j.error) for j in jobs) == [("cancelled", "withdrawn")] * 2
    assert estate.checkpoints_taken() == 0
    with pytest.raises(Conflict, match="nothing waiting to withdraw"):
        withdraw_batch(estate.ctx, ref, requester="alice")


def test_an_at_outside_the_window_is_refused_with_the_next_opening(estate: Estate) -> None:
    noon = parse_at("2026-11-24 12:00", BERLIN, source="slack")
    with pytest.raises(BadRequest) as refused:
        create_batch(
            estate.ctx,
            Selection.of(groups=["web-tier", "staging"]),
            reason="KB5044284",
            requester="alice",
            at=noon,
        )
    text = refused.value.message
    assert text.startswith(
        "--at 2026-11-24 12:00 Europe/Berlin is outside a change window (WEB01: "
    )
    assert "STG-WEB01" not in text  # no window applies to staging
    # The window's fact, not what a schedule would do: seen, "…: scheduled
    # for when the next one … opens" beside "nothing was recorded".
    assert "scheduled" not in text
    assert text.endswith(
        'ask for --at "2026-11-24 22:00 Europe/Berlin" (2026-11-24 21:00 UTC) or later; '
        "nothing was recorded"
    )
    with pytest.raises(BadRequest, match="outside a change window"):
        request_checkpoint(estate.ctx, "WEB01", reason="KB1", requester="alice", at=noon)
    # A staging VM has no window: any later time will do.
    alone = request_checkpoint(estate.ctx, "STG-WEB01", reason="KB1", requester="alice", at=noon)
    assert alone.change.state == "scheduled"
    with pytest.raises(BadRequest, match=r"is in the past \(it is 2026-11-24 09:00 UTC now\)"):
        request_checkpoint(
            estate.ctx, "STG-WEB01", reason="KB1", requester="alice", at=_past(estate)
        )
    assert list_batches(estate.ctx) == []
    with session_scope(estate.ctx.engine) as s:
        assert [c.vm_name for c in s.exec(select(Change)).all()] == ["STG-WEB01"]


def _past(estate: Estate) -> AtTime:
    """09:59 in Berlin, typed with its zone: 08:59 UTC, before the clock's now."""
    return parse_at("2026-11-24 09:59 Europe/Berlin", BERLIN, source="slack")


def test_one_change_at_a_time_is_approved_outside_its_window_and_still_runs_then(
    estate: Estate,
) -> None:
    at = parse_at(TONIGHT, BERLIN, source="slack")
    asked = request_checkpoint(estate.ctx, "REPL-APP01", reason="CU14", requester="alice", at=at)
    assert asked.change.state == "awaiting_approval"
    # Bob approves at 11:00 Berlin, outside the window: decided as of 22:30.
    estate.clock.advance(timedelta(hours=1))
    approved = approve(estate.ctx, asked.change.ref, approver="bob")
    assert approved.state == "approved"
    change = show_change(estate.ctx, asked.change.ref)
    assert change.state == "scheduled"
    estate.clock.advance(timedelta(hours=11, minutes=29))
    assert estate.run_jobs([change.id]) == ["not_due"]
    estate.clock.advance(timedelta(minutes=1))
    assert estate.run_jobs([change.id]) == ["succeeded"]
    assert show_change(estate.ctx, change.ref).state == "active"
    assert estate.checkpoints_taken() == 1


def test_one_scheduled_change_is_withdrawn_by_its_requester_only(estate: Estate) -> None:
    at = parse_at(TONIGHT, BERLIN, source="slack")
    asked = request_checkpoint(estate.ctx, "WEB02", reason="KB1", requester="alice", at=at)
    assert asked.change.state == "scheduled"
    with pytest.raises(Forbidden, match="only @alice, who asked for it, may withdraw"):
        withdraw(estate.ctx, asked.change.ref, requester="bob")
    out = withdraw(estate.ctx, asked.change.ref, requester="alice")
    assert (out.state, out.change.state) == ("withdrawn", "withdrawn")
    assert "nothing was done on HV02" in show_change(estate.ctx, out.change.ref).events[-1].message
    estate.clock.advance(timedelta(hours=13))
    assert estate.run_jobs([asked.change.id]) == ["lost"]
    assert estate.checkpoints_taken() == 0
    with pytest.raises(Conflict):
        withdraw(estate.ctx, asked.change.ref, requester="alice")


def test_the_models_match_migration_0015(engine: Engine) -> None:
    """`change.run_at`, `batch.run_at` and `batch_event.slack_ts` as migration 0015 made them, on
    SQLite and PostgreSQL, and 0015 goes down and up again."""
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert [d for d in diff if "run_at" in repr(d) or "batch_event" in repr(d)] == []
    downgrade(engine, "0014")
    assert "run_at" not in {c["name"] for c in inspect(engine).get_columns("batch")}
    assert "slack_ts" not in {c["name"] for c in inspect(engine).get_columns("batch_event")}
    upgrade(engine)
    assert "run_at" in {c["name"] for c in inspect(engine).get_columns("change")}
    assert "slack_ts" in {c["name"] for c in inspect(engine).get_columns("batch_event")}
