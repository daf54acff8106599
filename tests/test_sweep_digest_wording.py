"""The sweep digest says what `/checkpoint list` says: a checkpoint's type
as the bot recorded it when it was taken (a production checkpoint holds no
memory, so the host's listing alone reads it as "unknown"), and Slack
commands, not the CLI's, where a person is pointed at something."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from bot.clock import ManualClock
from bot.config import SweepConfig
from bot.context import AppContext, build_context
from bot.hyperv.evidence import TakenKind, judge_listed
from bot.service.queries import list_checkpoints
from bot.service.sweep import scan
from bot.service.sweep_views import ChannelDigest, Finding, SweepItem, SweepReport
from bot.store.db import session_scope
from bot.store.models import Change
from templates import Renderer
from templates.blocks import SlackRenderer
from tests.helpers import settings_for
from tests.sweep_support import checkpointable, record_change
from tests.test_slack_flow import shown


@pytest.fixture
def ctx(tmp_path: Path, clock: ManualClock) -> Iterator[AppContext]:
    settings = replace(settings_for(tmp_path), sweep=SweepConfig(channel="C0SWEEP"))
    context = build_context(settings, clock=clock, huey_kind="memory")
    try:
        yield context
    finally:
        context.close()


def _recorded_as(ctx: AppContext, change_id: int, taken: str) -> None:
    """What the create job writes once the host answered (execution.py)."""
    with session_scope(ctx.engine) as s:
        change = s.exec(select(Change).where(Change.id == change_id)).one()
        change.taken_type = taken
        change.taken_evidence = "the host reported a production checkpoint"
        s.add(change)


def test_a_stale_production_checkpoint_reads_production_as_in_the_list(ctx: AppContext) -> None:
    vm = checkpointable(ctx)[0]
    host = ctx.host_for(vm.host)
    taken = host.create_checkpoint(vm.vm_id, "before patching")
    listed = next(c for c in host.list_checkpoints(vm.vm_id) if c.id == taken.id)
    change_id = record_change(ctx, vm, listed, channel="C0WEB")
    _recorded_as(ctx, change_id, "production")

    report = scan(ctx)
    [item] = [i for i in report.items if i.checkpoint_id == taken.id]
    [row] = [r for r in list_checkpoints(ctx, vm=vm.name).rows if r.id == taken.id]

    assert item.finding is Finding.STALE
    assert item.kind == row.taken == "production"
    [digest] = [d for d in report.digests if d.channel == "C0WEB"]
    text = shown(SlackRenderer(Renderer()).payload("sweep_digest", digest=digest, report=report))
    assert " · production · " in text and " · unknown · " not in text


def test_without_a_record_the_digest_reads_the_host_as_the_list_does(ctx: AppContext) -> None:
    vm = checkpointable(ctx)[1]
    host = ctx.host_for(vm.host)
    taken = host.create_checkpoint(vm.vm_id, "before patching")
    listed = next(c for c in host.list_checkpoints(vm.vm_id) if c.id == taken.id)
    # A change recorded before the bot kept what was taken (migration 0006).
    record_change(ctx, vm, listed, channel="C0WEB")

    [item] = [i for i in scan(ctx).items if i.checkpoint_id == taken.id]
    [row] = [r for r in list_checkpoints(ctx, vm=vm.name).rows if r.id == taken.id]

    assert item.kind == row.taken == judge_listed(listed).kind.value
    assert item.kind in {k.value for k in TakenKind}


def mismatch_digest() -> tuple[ChannelDigest, SweepReport]:
    now = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)
    item = SweepItem(
        finding=Finding.MISMATCH,
        host="HV01",
        vm_name="WEB01",
        vm_id="6f1c1c36-0000-4000-8000-000000000001",
        checkpoint_id="a8eff17b-0000-4000-8000-000000000002",
        name="CHG-0012 before patching",
        kind="production",
        created_at=now - timedelta(hours=7),
        age_seconds=7 * 3600,
        size_bytes=1024**3,
        growth_bytes=None,
        channel="C0A",
        change_ref="CHG-0012",
        change_state="merged",
        change_version=4,
        requester="U0ALICE",
    )
    digest = ChannelDigest("C0A", (item,), ())
    return digest, SweepReport(now, "s", 3, 1, (item,), (), (digest,))


def test_a_row_at_odds_with_the_record_points_at_the_slack_command() -> None:
    digest, report = mismatch_digest()
    text = shown(SlackRenderer(Renderer()).payload("sweep_digest", digest=digest, report=report))
    assert "`/checkpoint status CHG-0012`" in text
    assert "checkpoint-bot change show" not in text
