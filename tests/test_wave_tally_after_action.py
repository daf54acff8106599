"""A wave's progress line speaks of its latest action (docs/batches.md, "The
batch's state"): after a Roll back all, "done" was "any member whose step is
over", so a wave with a host down mid-rollback read "37 of 40 done" while 24
were rolled back and 13 still active. Now it says "24 of 40 rolled back, 13
not rolled back, 3 failed", as the end milestone counts it; and a member
that ended vanished says why on the wave's lines, as a failed one does."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.changes.batch_views import BatchEventView, BatchView, MemberView
from bot.clock import ScaledClock
from bot.config import BatchesConfig
from bot.context import AppContext, build_context
from bot.hyperv import HostUnreachable
from bot.service import (
    Selection,
    approve_batch,
    create_batch,
    merge_batch,
    rollback_batch,
    show_batch,
)
from bot.service.vanished import settle
from tests.helpers import T0, settings_for

WAIT = 30.0


@pytest.fixture
def ctx(tmp_path: Path, db_url: str) -> Iterator[AppContext]:
    settings = dataclasses.replace(
        settings_for(tmp_path, db_url), batches=BatchesConfig(max_vms=6, per_host=2)
    )
    context = build_context(settings, clock=ScaledClock(600, start=T0), huey_kind="memory")
    context.start_workers(periodic=False)
    try:
        yield context
    finally:
        context.close()


def _settle(ctx: AppContext, job_ids: list[int]) -> None:
    for job_id in job_ids:
        assert ctx.ledger.wait(job_id, timeout=WAIT).state in ("succeeded", "failed")


def _taken(ctx: AppContext, vms: list[str]) -> str:
    out = create_batch(ctx, Selection.of(vms), reason="KB5044284 wave", requester="alice")
    _settle(ctx, [o.job_id for o in out.outcomes if o.job_id is not None])
    return out.batch.ref


class _Down:
    """A host that cannot be reached: every call is refused."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __getattr__(self, _call: str) -> object:
        def refused(*_args: object, **_kwargs: object) -> object:
            raise HostUnreachable("connection refused", host=self.name)

        return refused


def test_a_rollback_with_a_host_down_counts_only_the_members_rolled_back(
    ctx: AppContext,
) -> None:
    ref = _taken(ctx, ["WEB01", "STG-WEB01", "CORP-DC01"])
    assert show_batch(ctx, ref).progress == "2 of 2 done, 1 refused"
    # WEB01 is prod: the wave's rollback waits for an approver; meanwhile
    # HV03 (STG-WEB01's host) goes down.
    rollback_batch(ctx, ref, requester="alice")
    ctx.host_for.wrap(
        lambda name, host: _Down(name) if name == "HV03" else host  # type: ignore[arg-type,return-value]
    )
    _settle(ctx, list(approve_batch(ctx, ref, approver="bob").job_ids))
    batch = show_batch(ctx, ref)
    states = {m.vm_name: m.state for m in batch.members}
    assert states == {"WEB01": "rolled_back", "STG-WEB01": "active", "CORP-DC01": "denied"}
    # Never "2 of 2 done": STG-WEB01 was not restored.
    assert batch.progress == "1 of 2 rolled back, 1 not rolled back, 1 refused"
    assert batch.to_dict()["progress"] == batch.progress


def test_a_wave_rolled_back_then_merged_says_so(ctx: AppContext) -> None:
    ref = _taken(ctx, ["STG-WEB01", "STG-APP01"])
    _settle(ctx, list(rollback_batch(ctx, ref, requester="alice").job_ids))
    assert show_batch(ctx, ref).progress == "2 of 2 rolled back"
    _settle(ctx, list(merge_batch(ctx, ref, requester="alice").job_ids))
    assert show_batch(ctx, ref).progress == "2 of 2 merged"


def test_a_vanished_member_says_why_on_the_waves_lines(ctx: AppContext) -> None:
    ref = _taken(ctx, ["STG-WEB01", "STG-APP01"])
    gone = next(m for m in show_batch(ctx, ref).members if m.vm_name == "STG-APP01")
    assert settle(ctx, gone.change_id, gone.version, "the sweep's listing")
    batch = show_batch(ctx, ref)
    vanished = next(m for m in batch.members if m.vm_name == "STG-APP01")
    assert vanished.state == "vanished"
    assert vanished.note is not None and "deleted outside the bot" in vanished.note
    assert batch.to_dict()["members"][1]["note"] == vanished.note
    # The member still holding its checkpoint says nothing.
    assert next(m for m in batch.members if m.vm_name == "STG-WEB01").note is None


def _member(i: int, state: str) -> MemberView:
    return MemberView(
        change=f"CHG-{i:04d}",
        vm_name=f"PW{i:02d}",
        host=f"HV0{i % 4}",
        state=state,
        checkpoint_type="production",
        taken_type="production",
        checkpoint_id=None,
        change_id=i,
    )


def _event(seq: int, kind: str) -> BatchEventView:
    return BatchEventView(seq, T0 + timedelta(minutes=seq), "carol", kind, "", {})


def _wave(states: list[str], kinds: list[str]) -> BatchView:
    return BatchView(
        id=2,
        ref="BAT-0002",
        requester="alice",
        reason="patch",
        checkpoint_type="production",
        ttl_seconds=86400,
        selection={},
        source="cli",
        created_at=T0,
        members=tuple(_member(i, s) for i, s in enumerate(states, 1)),
        events=tuple(_event(i, k) for i, k in enumerate(kinds, 1)),
    )


# The on-call's wave of 42: 2 refused, then a Roll back all with HV03 killed.
ON_CALL = ["denied"] * 2 + ["rolled_back"] * 24 + ["active"] * 13 + ["interrupted"] * 2 + ["failed"]


def test_the_on_calls_wave_is_not_37_done() -> None:
    created = ["requested", "members_recorded", "create_finished"]
    wave = _wave(ON_CALL, [*created, "rollback_started"])
    # The 2 interrupted are not failed: their outcome is unknown.
    assert wave.progress == (
        "24 of 40 rolled back, 13 not rolled back, 1 failed, 2 outcome unknown, 2 refused"
    )
    # Its end said the same, and is not what the line counts by.
    done = _wave(ON_CALL, [*created, "rollback_started", "rollback_finished"])
    assert done.progress == wave.progress
    # A rollback that waited for an approver is a rollback all the same.
    asked = _wave(ON_CALL, [*created, "rollback_awaits_approval", "approved"])
    assert asked.progress == wave.progress
    # Before any Roll back all, the create's words: taken.
    assert _wave(ON_CALL, created).progress == (
        "37 of 40 done, 1 failed, 2 outcome unknown, 2 refused"
    )


def test_after_keep_and_merge_all_members_holding_a_checkpoint_are_not_merged() -> None:
    states = ["merged"] * 5 + ["vanished", "active", "rolled_back", "failed"]
    wave = _wave(states, ["members_recorded", "rollback_started", "merge_started"])
    assert wave.progress == "6 of 9 merged, 2 not merged, 1 failed"
