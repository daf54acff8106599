"""A fleet with forgotten checkpoints, for the sweep's tests and its bench.

Stale changes are recorded through the lifecycle as a create job would
(approve → start create → created), against checkpoints really taken on the
simulated hosts; orphans are checkpoints taken on a host behind the bot's
back, backdated in the simulator's state (someone took them days ago).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import text

from bot.changes import Command
from bot.changes.record import open_change, transition
from bot.clock import ScaledClock
from bot.context import AppContext
from bot.devtools.hostmodel import CheckpointType, SqlHostStateStore
from bot.hyperv import Checkpoint
from bot.inventory import VM
from bot.store.db import make_engine, session_scope
from bot.store.models import Change

# Hyper-V's hard limit is 50 per VM; stay well under it.
PER_VM = 40


def checkpointable(ctx: AppContext) -> list[VM]:
    """The VMs the modelled hosts let us checkpoint (not Disabled, no
    pass-through, Fibre Channel or shared VHDX), read from their state
    without touching it."""
    store = SqlHostStateStore(ctx.engine)
    found = []
    for vm in ctx.inventory.vms:
        sim = store.read(vm.host).vms[vm.vm_id]
        blocked = any(
            d.passthrough or d.fibre_channel or (d.shared and not d.path.lower().endswith(".vhds"))
            for d in sim.disks
        )
        if sim.checkpoint_type is not CheckpointType.Disabled and not blocked:
            found.append(vm)
    return found


def backdate(ctx: AppContext, checkpoint: Checkpoint, by: timedelta) -> None:
    """Make a checkpoint `by` older, as if taken that long ago."""
    with SqlHostStateStore(ctx.engine).edit(checkpoint.host) as state:
        state.checkpoints[checkpoint.id].created_at -= by


def take_orphan(ctx: AppContext, vm: VM, *, age: timedelta, name: str = "") -> Checkpoint:
    taken = ctx.host_for(vm.host).create_checkpoint(vm.vm_id, name or f"{vm.name} by hand")
    backdate(ctx, taken, age)
    return next(c for c in ctx.host_for(vm.host).list_checkpoints(vm.vm_id) if c.id == taken.id)


def record_change(
    ctx: AppContext,
    vm: VM,
    checkpoint: Checkpoint,
    *,
    channel: str | None,
    expired_by: timedelta = timedelta(hours=1),
    requester: str = "U0ALICE",
) -> int:
    """An active change that owns `checkpoint`, `expired_by` past its expiry."""
    now = ctx.clock()
    with session_scope(ctx.engine) as s:
        change = open_change(
            s,
            Change(
                vm_id=vm.vm_id,
                vm_name=vm.name,
                host=vm.host,
                checkpoint_type="production",
                reason="monthly patching",
                requester=requester,
                source="slack",
                channel=channel,
                state="",
                ttl_seconds=3600,
            ),
            actor=requester,
            now=now,
        )
        for command in (Command.APPROVE, Command.START_CREATE):
            transition(s, change, command, actor="checkpoint-bot", now=now)
        transition(
            s,
            change,
            Command.CREATED,
            actor="checkpoint-bot",
            now=now,
            checkpoint_id=checkpoint.id,
            checkpoint_name=checkpoint.name,
            expires_at=now - expired_by,
        )
        assert change.id is not None
        return change.id


def seed_stale(
    ctx: AppContext, count: int, channels: Sequence[str], vms: Sequence[VM]
) -> list[int]:
    """`count` expired changes spread over `vms` and, round-robin, `channels`."""
    if count > PER_VM * len(vms):
        raise ValueError(f"{count} checkpoints do not fit on {len(vms)} VMs")
    ids = []
    for index, vm in zip(range(count), itertools.cycle(vms), strict=False):
        taken = ctx.host_for(vm.host).create_checkpoint(vm.vm_id, f"patch {index}")
        ids.append(record_change(ctx, vm, taken, channel=channels[index % len(channels)]))
    return ids


class JumpClock(ScaledClock):
    """Real time at `speed` (so simulated merges finish), plus jumps: a
    sweep test moves days ahead without waiting for them."""

    def __init__(self, speed: float, start: datetime) -> None:
        super().__init__(speed, start)
        self._offset = timedelta(0)

    def __call__(self) -> datetime:
        return super().__call__() + self._offset

    def advance(self, delta: timedelta) -> datetime:
        self._offset += delta
        return self()


def clean_sweep_tables(db_url: str) -> None:
    """conftest truncates the change tables on PostgreSQL, not these: every
    test's sweep claims the same slot, so clear them too."""
    if not db_url.startswith("postgresql"):
        return
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE tick, checkpoint_size, checkpoint_adoption"))
    engine.dispose()
