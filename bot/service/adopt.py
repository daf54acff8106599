"""Adopt an orphan: a human takes ownership of a checkpoint no change owns,
so the usual buttons (merge, roll back, extend) and the TTL apply to it.

The click is the human the design asks for: nothing is adopted or merged
without one. Before writing, the host is asked whether the checkpoint is
still there; inside one transaction the record is checked for an owner and
an adoption row keyed by the checkpoint's Id is inserted, so two clicks on
any replicas make one change and the second is told who won.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from bot.changes import Command
from bot.changes.record import open_change, transition
from bot.changes.views import ChangeView
from bot.domain import CheckpointKind
from bot.durations import format_duration
from bot.hyperv import Checkpoint, HyperVError, SnapshotType
from bot.hyperv.evidence import holds_memory, judge_listed
from bot.inventory import VM, InventoryLookupError
from bot.service.deciding import Principal, as_principal
from bot.service.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    ServiceError,
    Unavailable,
)
from bot.service.finding import checkpoint_id_of
from bot.service.provenance import provenance
from bot.service.queries import fleet_checkpoints
from bot.service.requests import Outcome, merge, view
from bot.store.db import session_scope
from bot.store.tables import change_ref
from bot.store.tables.changes import Change
from bot.store.tables.vm_record import CheckpointAdoption
from policies import Facts, Permission, authorize
from policies.rules.lifetime import TTLParams
from templates import human_bytes

if TYPE_CHECKING:
    from bot.service.deps import ServiceDeps


@dataclass(frozen=True)
class AdoptOutcome:
    """The change that now owns the checkpoint; with `then_merge`, the merge
    request's outcome, or why it did not start (the adoption stands)."""

    change: ChangeView
    merge: Outcome | None = None
    merge_error: str | None = None


def _vm(ctx: ServiceDeps, host: str, vm_id: str) -> VM:
    try:
        vm = ctx.inventory.vm_by_id(vm_id)
    except InventoryLookupError:
        raise BadRequest(
            f"VM {vm_id} on {host} is not in the inventory; add it before the bot "
            "acts on its checkpoints"
        ) from None
    nodes = ctx.inventory.nodes_for(vm)
    seen_on = next((n for n in nodes if n.lower() == host.lower()), None)
    if seen_on is None:
        raise Conflict(
            f"the inventory has {vm.name} on {vm.host}, but the checkpoint was seen on {host}; "
            "update the inventory first"
        )
    # A node of its cluster (docs/clusters.md): the VM was live-migrated there,
    # its checkpoints with it, so that node is where to act.
    return vm if seen_on == vm.host else vm.model_copy(update={"host": seen_on})


def _on_host(ctx: ServiceDeps, vm: VM, checkpoint_id: str) -> Checkpoint:
    try:
        found = ctx.host_for(vm.host).list_checkpoints(vm.vm_id)
    except HyperVError as exc:
        raise Unavailable(
            f"cannot ask {vm.host} whether the checkpoint is still there ({exc.message}); "
            "nothing was done"
        ) from None
    for checkpoint in found:
        if checkpoint.id.lower() == checkpoint_id.lower():
            return checkpoint
    raise Conflict(
        f"checkpoint {checkpoint_id} of {vm.name} is no longer on {vm.host}: nothing to adopt"
    )


def locate_checkpoint(ctx: ServiceDeps, checkpoint_id: str) -> Checkpoint:
    """Find a checkpoint by Id on every host (for the CLI, which is given the
    Id alone). Not found while a host cannot be asked is "unknown"."""
    wanted = checkpoint_id_of(checkpoint_id)
    found, problems = fleet_checkpoints(ctx, [h.name for h in ctx.inventory.hosts])
    for checkpoint in found:
        if checkpoint.id.lower() == wanted:
            return checkpoint
    if problems:
        hosts = ", ".join(p.host for p in problems)
        raise Unavailable(
            f"checkpoint {checkpoint_id} is not on the hosts that answered, and {hosts} "
            "could not be asked"
        )
    raise NotFound(f"no checkpoint {checkpoint_id} on any host")


def _ttl(ctx: ServiceDeps, facts: Facts) -> timedelta:
    """The policy's default lifetime for this VM (`ttl` rule), as a create gets."""
    rule, _decided = ctx.policy.rule_settings("ttl", facts)
    if not rule.enabled or not isinstance(rule.params, TTLParams):
        return ctx.settings.defaults.ttl
    return rule.params.default


def _refuse_if_owned(s: Session, checkpoint_id: str) -> None:
    owner = s.exec(select(Change).where(Change.checkpoint_id == checkpoint_id)).first()
    if owner is not None and owner.id is not None:
        raise Conflict(
            f"{change_ref(owner.id)} already owns checkpoint {checkpoint_id} "
            f"({owner.state.replace('_', ' ')}); nothing was adopted"
        )


def adopt_checkpoint(
    ctx: ServiceDeps,
    host: str,
    vm_id: str,
    checkpoint_id: str,
    who: str | Principal,
    *,
    then_merge: bool = False,
    source: str = "slack",
) -> AdoptOutcome:
    """Open an active change, requested by `who`, that owns the orphan; with
    `then_merge`, ask for its merge through the policy and the job ledger."""
    person = as_principal(who)
    vm = _vm(ctx, host, vm_id)
    facts = ctx.decider.facts(vm)
    # Adopting opens a change: the permission to request one applies.
    allowed = authorize(
        ctx.policy, Permission.REQUEST, facts, person.id, person.groups, person.channel
    )
    if allowed.fired:
        raise Forbidden(allowed.message)
    checkpoint = _on_host(ctx, vm, checkpoint_id)
    if checkpoint.snapshot_type is not SnapshotType.Standard:
        raise Conflict(
            f"checkpoint {checkpoint.id} of {vm.name} is a {checkpoint.snapshot_type.name} "
            "snapshot (Hyper-V Replica's or a backup's); only checkpoints are adopted"
        )
    seen = judge_listed(checkpoint)
    with session_scope(ctx.engine) as s:
        foreign, origin = provenance(s, checkpoint)
    if foreign:
        raise Conflict(
            f"checkpoint {checkpoint.id} of {vm.name} {origin}; adopt it there, "
            "not here: nothing was adopted"
        )
    with session_scope(ctx.engine) as s:
        _refuse_if_owned(s, checkpoint.id)
    now = ctx.clock()
    age = now - checkpoint.created_at
    young = ctx.settings.sweep.orphan_after
    if age < young:
        raise Conflict(
            f"checkpoint {checkpoint.id} of {vm.name} is only {format_duration(age)} old: a "
            f"change may still be recording it; it can be adopted once {format_duration(young)} old"
        )
    ttl = _ttl(ctx, facts)
    try:
        with session_scope(ctx.engine) as s:
            # Again inside the transaction that writes: the adoption row's
            # primary key settles a race the first look could not see.
            _refuse_if_owned(s, checkpoint.id)
            change = open_change(
                s,
                Change(
                    vm_id=vm.vm_id,
                    vm_name=vm.name,
                    host=vm.host,
                    # Nothing was asked. For the policy, a checkpoint with the
                    # VM's memory (or one the host says nothing of) is a
                    # standard one: the riskier reading.
                    checkpoint_type=(
                        CheckpointKind.PRODUCTION
                        if holds_memory(checkpoint) is False
                        else CheckpointKind.STANDARD
                    ),
                    taken_type=seen.kind.value,
                    taken_evidence=seen.evidence[:500],
                    holds_memory=holds_memory(checkpoint),
                    reason=f'adopted orphan checkpoint "{checkpoint.name}"'[:2000],
                    requester=person.id,
                    requester_team=person.team,
                    source=source,
                    channel=person.channel,
                    state="",
                    decision={},
                    ttl_seconds=int(ttl.total_seconds()),
                ),
                actor=person.id,
                now=now,
            )
            assert change.id is not None
            s.add(
                CheckpointAdoption(
                    checkpoint_id=checkpoint.id,
                    change_id=change.id,
                    host=vm.host,
                    vm_id=vm.vm_id,
                    adopted_by=person.id,
                    at=now,
                )
            )
            s.flush()
            transition(
                s,
                change,
                Command.ADOPT,
                actor=person.id,
                actor_team=person.team,
                now=now,
                message=f"adopted checkpoint {checkpoint.id} found by the sweep on {vm.host}: "
                f"{format_duration(age)} old, {human_bytes(checkpoint.size_bytes)}; "
                f"expires in {format_duration(ttl)}",
                details={
                    "created_at": checkpoint.created_at.isoformat(),
                    "size_bytes": checkpoint.size_bytes,
                    "snapshot_type": checkpoint.snapshot_type.name,
                },
                checkpoint_id=checkpoint.id,
                checkpoint_name=checkpoint.name,
                expires_at=now + ttl,
            )
            change_id = change.id
    except IntegrityError:
        raise Conflict(
            f"someone adopted checkpoint {checkpoint.id} of {vm.name} at the same moment; "
            "nothing was adopted twice"
        ) from None
    ctx.notifier.changed(change_id)
    if not then_merge:
        return AdoptOutcome(view(ctx, change_id))
    try:
        outcome = merge(ctx, change_ref(change_id), requester=person)
    except ServiceError as exc:
        return AdoptOutcome(view(ctx, change_id), merge_error=exc.message)
    return AdoptOutcome(outcome.change, merge=outcome)
