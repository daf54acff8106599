"""The orphan and stale sweep, and adopting an orphan: real simulated hosts
in the database, the real record, the real renderer. The Slack side (one
post per channel, racing replicas, the buttons) is in test_sweep_slack.py."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel, select

from bot.changes import Command, State
from bot.changes.record import get_change, transition
from bot.clock import ManualClock
from bot.config import SweepConfig
from bot.context import AppContext, build_context
from bot.hyperv import HostUnreachable, HyperVHost
from bot.inventory import VM
from bot.service import Conflict, show_change
from bot.service.adopt import adopt_checkpoint
from bot.service.sweep import Owner, classify, scan, size_history, sweep_slot
from bot.service.sweep_views import Finding, parse_orphan_value
from bot.store.db import session_scope
from bot.store.models import Change, CheckpointAdoption
from templates import Renderer
from templates.blocks import SlackRenderer
from tests.cli_support import invoke, one_line_error, run
from tests.helpers import T0, inline_context, settings_for
from tests.sweep_support import (
    JumpClock,
    checkpointable,
    clean_sweep_tables,
    record_change,
    take_orphan,
)

DAY = timedelta(days=1)


def _context(
    tmp_path: Path,
    clock: ManualClock | JumpClock,
    db_url: str | None = None,
    *,
    inline: bool = False,
    **sweep: object,
) -> AppContext:
    settings = settings_for(tmp_path, db_url)
    settings = replace(settings, sweep=SweepConfig.model_validate({"channel": "C0SWEEP", **sweep}))
    if inline:
        return inline_context(settings, clock)
    return build_context(settings, clock=clock, huey_kind="memory")


@pytest.fixture
def ctx(tmp_path: Path, clock: ManualClock) -> Iterator[AppContext]:
    context = _context(tmp_path, clock)
    try:
        yield context
    finally:
        context.close()


def _owner(state: State, expires_in: timedelta | None) -> Owner:
    return Owner(1, state, 1, T0 + expires_in if expires_in is not None else None, None, "U1")


@pytest.mark.parametrize(
    ("owner", "age", "expected"),
    [
        (None, 2 * DAY, Finding.ORPHAN),
        (None, timedelta(hours=23), None),  # a create may still be recording it
        (_owner(State.ACTIVE, timedelta(hours=1)), 2 * DAY, None),
        (_owner(State.ACTIVE, -timedelta(seconds=1)), 2 * DAY, Finding.STALE),
        (_owner(State.ROLLED_BACK, -DAY), 2 * DAY, Finding.STALE),
        (_owner(State.MERGING, -DAY), 2 * DAY, None),
        (_owner(State.INTERRUPTED, -DAY), 2 * DAY, None),  # reconciliation's
        (_owner(State.MERGED, -DAY), 2 * DAY, Finding.MISMATCH),
        (_owner(State.FAILED, None), 2 * DAY, Finding.MISMATCH),
    ],
)
def test_classify(owner: Owner | None, age: timedelta, expected: Finding | None) -> None:
    assert classify(owner, T0 - age, T0, DAY) is expected


def test_slot_is_the_interval_start() -> None:
    six = timedelta(hours=6)
    assert sweep_slot(T0, six) == "2026-11-24T06:00Z"
    assert sweep_slot(T0 + timedelta(hours=2, minutes=59), six) == "2026-11-24T06:00Z"
    assert sweep_slot(T0 + timedelta(hours=3), six) == "2026-11-24T12:00Z"


def test_every_checkpoint_is_matched_to_its_change(ctx: AppContext, clock: ManualClock) -> None:
    web, app, file_vm, other = checkpointable(ctx)[:4]

    def owned(vm: VM, name: str, channel: str, expired_by: timedelta = DAY) -> tuple[str, int]:
        taken = ctx.host_for(vm.host).create_checkpoint(vm.vm_id, name)
        return taken.id, record_change(ctx, vm, taken, channel=channel, expired_by=expired_by)

    stale, _ = owned(web, "stale", "C0WEB")
    owned(app, "fresh", "C0APP", expired_by=-DAY)
    merged, merged_id = owned(web, "merged", "C0WEB")
    _, merging_id = owned(app, "merging", "C0APP")
    with session_scope(ctx.engine) as s:
        for change_id, commands in (
            (merged_id, (Command.START_MERGE, Command.MERGED)),
            (merging_id, (Command.START_MERGE,)),
        ):
            for command in commands:
                transition(s, get_change(s, change_id), command, actor="t", now=clock())
    orphan = take_orphan(ctx, file_vm, age=3 * DAY).id
    take_orphan(ctx, other, age=timedelta(hours=2))

    report = scan(ctx)

    assert report.seen == 6 and report.hosts == 3 and report.problems == ()
    assert {(i.finding, i.checkpoint_id) for i in report.items} == {
        (Finding.STALE, stale),
        (Finding.MISMATCH, merged),
        (Finding.ORPHAN, orphan),
    }
    assert report.young_orphans == 1
    by_channel = {d.channel: {i.checkpoint_id for i in d.items} for d in report.digests}
    # Owned checkpoints go to their change's channel; orphans to sweep.channel.
    assert by_channel == {"C0WEB": {stale, merged}, "C0SWEEP": {orphan}}
    item = next(i for i in report.items if i.checkpoint_id == orphan)
    assert item.age_seconds == int((3 * DAY).total_seconds())
    assert parse_orphan_value(item.orphan_value) == (file_vm.host, file_vm.vm_id, orphan)


def test_sizes_are_sampled_and_growth_is_shown(tmp_path: Path, clock: ManualClock) -> None:
    ctx = _context(tmp_path, clock, keep_sizes="12h")
    try:
        web = ctx.inventory.vm("WEB01")
        taken = ctx.host_for(web.host).create_checkpoint(web.vm_id, "before patching")
        record_change(ctx, web, taken, channel="C0WEB")
        first = scan(ctx)
        assert [i.growth_bytes for i in first.items] == [None]
        assert first.digests[0].growth_bytes is None and first.previous_at is None

        clock.advance(timedelta(hours=6))
        second = scan(ctx)
        history = size_history(ctx, taken.id)
        assert [at for at, _ in history] == [T0, T0 + timedelta(hours=6)]
        # The Id as a person may write it names the same samples.
        assert size_history(ctx, "{" + taken.id.upper() + "}") == history
        grown = history[1][1] - history[0][1]
        # WEB01 runs and writes: its newest checkpoint's disk grows.
        assert grown > 0
        assert second.items[0].growth_bytes == grown
        assert second.digests[0].growth_bytes == grown
        assert second.previous_at == T0

        clock.advance(timedelta(hours=7))
        scan(ctx)
        # keep_sizes 12h: the first sample is pruned, the history goes on.
        assert [at for at, _ in size_history(ctx, taken.id)] == [
            T0 + timedelta(hours=6),
            T0 + timedelta(hours=13),
        ]
    finally:
        ctx.close()


def test_an_unreachable_host_is_unknown_never_empty(ctx: AppContext) -> None:
    web, *_ = checkpointable(ctx)
    take_orphan(ctx, web, age=3 * DAY)

    def hv02_down(name: str, host: HyperVHost) -> HyperVHost:
        if name == "HV02":
            raise HostUnreachable("WinRM: connection refused", host=name)
        return host

    ctx.host_for.wrap(hv02_down)
    report = scan(ctx)
    assert [p.host for p in report.problems] == ["HV02"]
    assert report.hosts == 3
    [digest] = report.digests
    assert [p.host for p in digest.problems] == ["HV02"]
    payload = SlackRenderer(Renderer()).payload("sweep_digest", digest=digest, report=report)
    text = str(payload)
    assert "*HV02* could not be asked (WinRM: connection refused)" in text
    assert "unknown, not absent" in text

    # Nothing else to report: the default channel still hears of the hosts.
    def all_down(name: str, host: HyperVHost) -> HyperVHost:
        raise HostUnreachable("WinRM: connection refused", host=name)

    ctx.host_for.wrap(all_down)
    [alone] = scan(ctx).digests
    assert alone.channel == "C0SWEEP" and alone.items == () and len(alone.problems) == 3
    assert "some hosts could not be asked" in str(
        SlackRenderer(Renderer()).payload("sweep_digest", digest=alone, report=report)
    )


def _changes(ctx: AppContext) -> int:
    with session_scope(ctx.engine) as s:
        return len(s.exec(select(Change)).all())


def test_adopt_opens_an_active_change_in_the_clickers_name(
    ctx: AppContext, clock: ManualClock
) -> None:
    vm = ctx.inventory.vm("WEB01")
    orphan = take_orphan(ctx, vm, age=3 * DAY, name="before the SQL CU")
    result = adopt_checkpoint(ctx, vm.host, vm.vm_id, orphan.id, "U0BOB")
    change = show_change(ctx, result.change.ref)
    assert (change.state, change.requester, change.checkpoint_id) == ("active", "U0BOB", orphan.id)
    # TTL: the policy's default (72 h), counted from the adoption.
    assert change.expires_at == clock() + timedelta(hours=72)
    assert [(e.kind, e.actor, e.to_state) for e in change.events] == [
        ("requested", "U0BOB", "requested"),
        ("adopt", "U0BOB", "active"),
    ]
    assert "found by the sweep on HV01: 3d old" in change.events[-1].message
    with session_scope(ctx.engine) as s:
        adoption = s.get(CheckpointAdoption, orphan.id)
        assert adoption is not None and adoption.adopted_by == "U0BOB"
    assert scan(ctx).items == ()  # owned now, and not past its expiry
    # Nothing was asked for: no type "asked for", no warning that what was
    # taken differs from it (the record's type is the policy's reading).
    summary = Renderer().render("cli/change_summary.txt.j2", c=change).splitlines()
    assert summary[0] == (
        f"{change.ref}: active — WEB01 on HV01, adopted checkpoint (found by the sweep, "
        "not asked for)"
    )
    assert not any("was asked" in line for line in summary)
    root = json.dumps(
        SlackRenderer(Renderer()).payload(
            "change_root", c=change, pending=[], start_after_restore=True
        )
    )
    assert "*Adopted*\\nfound by the sweep" in root
    assert "Asked for" not in root and ":warning:" not in root


def test_adopt_refuses_what_it_must_not_touch(ctx: AppContext) -> None:
    web, app, other = checkpointable(ctx)[:3]
    gone = take_orphan(ctx, web, age=3 * DAY)
    ctx.host_for(web.host).remove_checkpoint(web.vm_id, gone.id)
    young = take_orphan(ctx, app, age=timedelta(hours=1))
    owned = ctx.host_for(other.host).create_checkpoint(other.vm_id, "owned")
    owner = record_change(ctx, other, owned, channel=None)
    before = _changes(ctx)

    with pytest.raises(Conflict, match="is no longer on"):
        adopt_checkpoint(ctx, web.host, web.vm_id, gone.id, "U0BOB")
    with pytest.raises(Conflict, match="only 1h old"):
        adopt_checkpoint(ctx, app.host, app.vm_id, young.id, "U0BOB")
    with pytest.raises(Conflict, match=f"CHG-{owner:04d} already owns"):
        adopt_checkpoint(ctx, other.host, other.vm_id, owned.id, "U0BOB")
    assert _changes(ctx) == before


def test_racing_adopts_make_one_change(tmp_path: Path, db_url: str, clock: ManualClock) -> None:
    clean_sweep_tables(db_url)
    ctx = _context(tmp_path, clock, db_url)
    try:
        vm = ctx.inventory.vm("WEB01")
        orphan = take_orphan(ctx, vm, age=3 * DAY)
        barrier = threading.Barrier(6)
        won: list[str] = []
        lost: list[str] = []

        def click(user: str) -> None:
            barrier.wait(timeout=10)
            try:
                adopt_checkpoint(ctx, vm.host, vm.vm_id, orphan.id, user)
                won.append(user)
            except Conflict as exc:
                lost.append(exc.message)

        threads = [threading.Thread(target=click, args=(f"U0USER{i}",)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert len(won) == 1 and len(lost) == 5
        assert all("already owns" in m or "at the same moment" in m for m in lost)
        with session_scope(ctx.engine) as s:
            owners = s.exec(select(Change).where(Change.checkpoint_id == orphan.id)).all()
        assert [c.requester for c in owners] == won
    finally:
        ctx.close()


def test_adopt_and_merge_goes_through_the_job_ledger(tmp_path: Path) -> None:
    clock = JumpClock(600, T0)
    ctx = _context(tmp_path, clock, inline=True)
    try:
        vm = ctx.inventory.vm("WEB01")
        orphan = take_orphan(ctx, vm, age=3 * DAY)
        result = adopt_checkpoint(ctx, vm.host, vm.vm_id, orphan.id, "U0BOB", then_merge=True)
        assert result.merge is not None and result.merge.job_id is not None
        job = ctx.ledger.get(result.merge.job_id)
        assert (job.kind, job.state, job.destructive) == ("merge", "succeeded", True)
        change = show_change(ctx, result.change.ref)
        assert change.state == "merged"
        assert [e.kind for e in change.events] == ["requested", "adopt", "start_merge", "merged"]
        assert orphan.id not in {c.id for c in ctx.host_for(vm.host).list_checkpoints()}
    finally:
        ctx.close()


def test_migration_0005_matches_the_models(sqlite_engine: Engine) -> None:
    with sqlite_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    mine = ("checkpoint_size", "checkpoint_adoption")
    assert [d for d in diff if any(t in str(d) for t in mine)] == []


def test_the_cli_sweeps_on_demand(tmp_path: Path) -> None:
    helped = run(tmp_path, "sweep", "--help")
    assert all(f"  {c}" in helped.stdout for c in ("run", "adopt", "history"))
    swept = run(tmp_path, "sweep", "run", "--json", "--post")
    assert swept.returncode == 0, swept.stderr
    report = json.loads(swept.stdout)
    assert (report["hosts"], report["items"], report["unreachable"]) == (3, [], [])
    assert "Slack is not configured" in swept.stderr
    missing = run(tmp_path, "sweep", "adopt", "00000000-0000-4000-8000-000000000000")
    assert missing.returncode == 1
    assert one_line_error(missing).endswith(
        "no checkpoint 00000000-0000-4000-8000-000000000000 on any host"
    )
    # Not an Id at all: said before any host is asked.
    mistyped = run(tmp_path, "sweep", "adopt", "WEB01")
    assert mistyped.returncode == 2
    assert one_line_error(mistyped) == (
        "checkpoint-bot: error: 'WEB01' is not a checkpoint Id: give its GUID as sweep run "
        "lists it, like 3f2504e0-4f89-41d3-9a0c-0305e82c3301"
    )
    # The same for a checkpoint's size history, which said "No size samples
    # of WEB01: no sweep has seen it" until 2026-12-05.
    history = run(tmp_path, "sweep", "history", "WEB01")
    assert history.returncode == 2
    assert one_line_error(history) == one_line_error(mistyped)


@pytest.mark.parametrize(
    "value",
    [
        "HV01/" + "-" * 36 + "/" + "-" * 36,  # the shape of a GUID, not one
        "HV01/3f2504e0-4f89-41d3-9a0c-0305e82c3301",
        "HV01/a/b/c",
        "HV 01/3f2504e0-4f89-41d3-9a0c-0305e82c3301/3f2504e0-4f89-41d3-9a0c-0305e82c3302",
    ],
)
def test_an_adopt_value_that_names_no_checkpoint_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="not an orphan button value"):
        parse_orphan_value(value)


def test_an_adopt_value_gives_the_ids_in_the_kept_form() -> None:
    vm, checkpoint = (
        "3F2504E0-4F89-41D3-9A0C-0305E82C3301",
        "{3f2504e0-4f89-41d3-9a0c-0305e82c3302}",
    )
    assert parse_orphan_value(f"HV01/{vm}/{checkpoint}") == (
        "HV01",
        vm.lower(),
        "3f2504e0-4f89-41d3-9a0c-0305e82c3302",
    )


def test_the_cli_adopt_prints_the_change_as_change_show_does(tmp_path: Path) -> None:
    ctx = build_context(settings_for(tmp_path), huey_kind="memory")
    try:
        orphan = take_orphan(ctx, ctx.inventory.vm("APP01"), age=3 * DAY)
    finally:
        ctx.close()
    adopted = invoke(tmp_path, "sweep", "adopt", orphan.id)
    assert adopted.returncode == 0, adopted.stderr
    ref = adopted.stdout.split(":", 1)[0]
    shown = invoke(tmp_path, "change", "show", ref)
    assert shown.returncode == 0, shown.stderr
    # It said "production checkpoint asked for" and "(production was asked)"
    # until 2026-12-05: it printed a view read without the adopt event.
    assert adopted.stdout.splitlines()[0].endswith(
        "adopted checkpoint (found by the sweep, not asked for)"
    )
    assert "was asked" not in adopted.stdout
    assert shown.stdout.startswith(adopted.stdout)
