"""Lazy modelled time and space accounting for one `HostState`.

Nothing runs in the background: every host operation first advances the
state from `as_of` to the clock's now. Between two instants the only events
are merges ending, so time is walked segment by segment between merge ends:
running VMs' differencing disks grow at their write rate within each segment,
and at each segment's end the merges due then hand their space back. A VM
whose disk cannot grow because its volume is full is paused, as Hyper-V does
(the "Paused-Critical" state).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from bot.devtools.hostmodel.enums import VMState
from bot.devtools.hostmodel.state import HostState, ModelCheckpoint

_MICROSECOND = timedelta(microseconds=1)


def checkpoint_size(state: HostState, checkpoint: ModelCheckpoint) -> int:
    """Its .avhdx plus memory state; the live disk counts toward the VM's
    current parent (that is what merging the parent would have to fold in)."""
    size = checkpoint.avhdx_bytes + checkpoint.memory_bytes
    vm = state.vms.get(checkpoint.vm_id)
    if vm is not None and vm.parent_checkpoint_id == checkpoint.id:
        size += vm.live_bytes
    return size


def allocated_bytes(state: HostState, volume_path: str) -> int:
    volume = state.volumes[volume_path]
    total = volume.used_bytes + volume.written_bytes
    for checkpoint in state.checkpoints.values():
        if state.vms[checkpoint.vm_id].volume_path == volume_path:
            total += checkpoint.avhdx_bytes + checkpoint.memory_bytes
    total += sum(vm.live_bytes for vm in state.vms.values() if vm.volume_path == volume_path)
    total += sum(m.release_bytes for m in state.merges if m.volume_path == volume_path)
    return total


def free_bytes(state: HostState, volume_path: str, peers: Mapping[str, int] | None = None) -> int:
    """`peers`: what the other nodes of a cluster hold on a Cluster Shared
    Volume (their checkpoints and merges), which this node's CSV shares."""
    taken = allocated_bytes(state, volume_path) + (peers or {}).get(volume_path, 0)
    return state.volumes[volume_path].capacity_bytes - taken


def peer_bytes(state: HostState, volume_path: str) -> int:
    """What this node holds on a shared volume beyond its base `used_bytes`
    (which every node's copy of the CSV carries once): its VMs' checkpoints
    and merges, and the other files written through it."""
    return allocated_bytes(state, volume_path) - state.volumes[volume_path].used_bytes


def is_merging(state: HostState, vm_id: str) -> bool:
    return any(merge.vm_id == vm_id for merge in state.merges)


def advance(state: HostState, now: datetime, peers: Mapping[str, int] | None = None) -> None:
    """Bring `state` to `now`. A clock that steps backwards changes nothing:
    modelled time never runs in reverse. `peers` as for `free_bytes`."""
    if state.as_of is None:
        _first_sight(state, now)
        return
    if now <= state.as_of:
        return
    cursor = state.as_of
    ends = sorted({m.ends_at for m in state.merges if cursor < m.ends_at <= now})
    for boundary in [*ends, now]:
        _grow(state, boundary - cursor, peers or {})
        _finish_merges(state, boundary)
        cursor = boundary
    state.as_of = now


def _first_sight(state: HostState, now: datetime) -> None:
    # A freshly seeded host has no history: running VMs count their uptime
    # from here, and nothing has been written yet.
    for vm in state.vms.values():
        if vm.state == VMState.Running and vm.started_at is None:
            vm.started_at = now
    _finish_merges(state, now)
    state.as_of = now


def _finish_merges(state: HostState, at: datetime) -> None:
    state.merges = [merge for merge in state.merges if merge.ends_at > at]


def _grow(state: HostState, elapsed: timedelta, peers: Mapping[str, int]) -> None:
    micros = elapsed // _MICROSECOND
    if micros <= 0:
        return
    for volume_path in state.volumes:
        free = free_bytes(state, volume_path, peers)
        writers = sorted(
            (
                vm
                for vm in state.vms.values()
                if vm.volume_path == volume_path
                and vm.state == VMState.Running
                and vm.parent_checkpoint_id is not None
                and vm.write_rate_bytes_per_s > 0
            ),
            key=lambda vm: vm.vm_id,
        )
        for vm in writers:
            wanted = vm.write_rate_bytes_per_s * micros // 1_000_000
            granted = min(wanted, max(free, 0))
            vm.live_bytes += granted
            free -= granted
            if granted < wanted:
                vm.state = VMState.Paused
