"""Live migration between the nodes of a modelled failover cluster.

    live_migrate(store, vm_id, source, destination, clock) -> None

What it models, from Microsoft's documentation:

- `Move-ClusterVirtualMachineRole` "moves the ownership of a clustered
  virtual machine to a different node" and is how a clustered VM is live
  migrated
  (https://learn.microsoft.com/powershell/module/failoverclusters/move-clustervirtualmachinerole).
  Afterwards `Get-VM` on the old node no longer lists it ("gets all virtual
  machines on the local virtual machine host",
  https://learn.microsoft.com/powershell/module/hyper-v/get-vm), and
  `Get-VM -Id` there fails as for any VM the host does not hold.
- The VM's files stay where they are: on a Cluster Shared Volume every node
  reads and writes the same files
  (https://learn.microsoft.com/windows-server/failover-clustering/failover-cluster-csvs),
  so its checkpoints (part of the VM's configuration and its disk chain),
  the merges in progress and its power state go along unchanged, and so do
  its checkpoint settings.
- Both nodes must be in the same cluster and the VM on shared storage; a VM
  on a node's local disk needs a storage migration as well, which the model
  refuses as a live migration.

The two nodes' states are separate documents (one per host, bot.devtools.hostmodel.store),
so the move is two transactions: the VM leaves the source, then arrives on the
destination. Between them no node lists it, as during a real migration's
brief blackout; if the arrival fails the VM is put back on the source, so it
is never lost nor on two nodes at once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from bot.devtools.hostmodel.engine import advance
from bot.devtools.hostmodel.state import HostState, ModelCheckpoint, ModelMerge, ModelVM
from bot.devtools.hostmodel.store import HostStateStore

Clock = Callable[[], datetime]


class MigrationRefused(ValueError):
    """The model cannot live-migrate this VM there (the reason says why)."""


def _take(
    state: HostState, vm_id: str, destination: str
) -> tuple[ModelVM, list[ModelCheckpoint], list[ModelMerge]]:
    vm = state.vms.get(vm_id.casefold())
    if vm is None:
        raise MigrationRefused(f'{state.host} has no virtual machine with ID "{vm_id}"')
    if destination.casefold() not in {n.casefold() for n in state.cluster_nodes}:
        raise MigrationRefused(
            f"{destination} is not a node of {state.host}'s cluster "
            f"({', '.join(state.cluster_nodes) or 'it is standalone'})"
        )
    volume = state.volumes.get(vm.volume_path)
    if volume is None or not volume.shared:
        raise MigrationRefused(
            f"{vm.name} is on {vm.volume_path}, which is not a Cluster Shared Volume: "
            "a live migration keeps the VM's files in place, so they must be on shared storage"
        )
    checkpoints = [cp for cp in state.checkpoints.values() if cp.vm_id == vm.vm_id]
    merges = [m for m in state.merges if m.vm_id == vm.vm_id]
    del state.vms[vm.vm_id]
    for cp in checkpoints:
        del state.checkpoints[cp.id]
    state.merges = [m for m in state.merges if m.vm_id != vm.vm_id]
    return vm, checkpoints, merges


def _put(
    state: HostState, vm: ModelVM, checkpoints: list[ModelCheckpoint], merges: list[ModelMerge]
) -> None:
    if vm.vm_id in state.vms:
        raise MigrationRefused(f"{state.host} already has a VM with ID {vm.vm_id}")
    volume = state.volumes.get(vm.volume_path)
    if volume is None or not volume.shared:
        raise MigrationRefused(f"{state.host} does not see the shared volume {vm.volume_path}")
    state.vms[vm.vm_id] = vm
    for cp in checkpoints:
        # The destination's own counter orders "oldest first" among equal times.
        cp.seq, state.next_seq = state.next_seq, state.next_seq + 1
        state.checkpoints[cp.id] = cp
    state.merges.extend(merges)


def live_migrate(
    store: HostStateStore, vm_id: str, source: str, destination: str, clock: Clock
) -> None:
    """Move the VM (with its checkpoints and merges) from `source` to
    `destination`; raises MigrationRefused when the model does not allow it."""
    now = clock()
    with store.edit(source) as state:
        advance(state, now)
        vm, checkpoints, merges = _take(state, vm_id, destination)
    try:
        with store.edit(destination) as state:
            advance(state, now)
            _put(state, vm, checkpoints, merges)
    except BaseException:
        with store.edit(source) as state:
            _put(state, vm, checkpoints, merges)
        raise
