"""Read-only use cases: the checkpoint list, a change, the audit trail."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlmodel import col, select

from bot.changes import State
from bot.changes.views import CheckpointRow, HostProblem
from bot.hyperv import Checkpoint, HostAuthError, HyperVError, HyperVHost, VMNotFound
from bot.hyperv.evidence import judge_listed
from bot.hyperv.fanout import ask_hosts
from bot.inventory import VM, InventoryLookupError
from bot.service.errors import BadRequest, Unavailable, from_inventory
from bot.service.finding import resolve_vm
from bot.service.locate import NotOnCluster
from bot.service.whereabouts import FocusKind, focus_on, nodes_of
from bot.store.db import session_scope
from bot.store.tables import batch_ref, change_ref
from bot.store.tables.changes import Change

if TYPE_CHECKING:
    from bot.service.deps import ServiceDeps


@dataclass(frozen=True)
class CheckpointListing:
    rows: tuple[CheckpointRow, ...]
    problems: tuple[HostProblem, ...]
    # The hosts that answered (a problem's host did not), in the order asked.
    answered: tuple[str, ...] = ()
    # A listing of one VM: its inventory name, and its failover cluster when
    # it has one (the host asked is then the node found to have it now).
    vm: str | None = None
    cluster: str | None = None

    def asked_said(self) -> str:
        """Which host a listing of one VM asked, for when it is empty ("asked
        HV02, the node of prod-cluster that has it"): the host that said
        "none". A clustered VM's checkpoints are on the node that owns it
        now, and move with it (docs/clusters.md). "" for any other listing
        (its scope names the hosts) and when no host answered."""
        if self.vm is None or not self.answered:
            return ""
        said = f"asked {', '.join(self.answered)}"
        if self.cluster is not None and len(self.answered) == 1:
            said += f", the node of {self.cluster} that has it"
        return said

    @property
    def none_answered(self) -> bool:
        """Every host asked failed: nothing is known, which is not "none"."""
        return bool(self.problems) and not self.answered and not self.rows

    def problems_said(self) -> str:
        """The hosts that could not be asked, each group as its own line
        says it: "HV01, HV02 could not be reached; HV03 could not be logged
        in to" (a refused login is not an outage)."""
        grouped: dict[str, list[str]] = {}
        for problem in self.problems:
            grouped.setdefault(problem.what, []).append(problem.host)
        return "; ".join(f"{', '.join(hosts)} {what}" for what, hosts in grouped.items())

    def to_dict(self) -> dict[str, Any]:
        return {
            "checkpoints": [r.to_dict() for r in self.rows],
            "unreachable": [p.to_dict() for p in self.problems],
        }


def _tree_order(checkpoints: list[Checkpoint]) -> Iterator[tuple[Checkpoint, int]]:
    """Parents before children, siblings oldest first, with their depth."""
    ids = {c.id for c in checkpoints}
    children: dict[str | None, list[Checkpoint]] = {}
    for c in sorted(checkpoints, key=lambda c: c.created_at):
        parent = c.parent_id if c.parent_id in ids else None
        children.setdefault(parent, []).append(c)
    stack = [(c, 0) for c in reversed(children.get(None, []))]
    while stack:
        node, depth = stack.pop()
        yield node, depth
        stack.extend((c, depth + 1) for c in reversed(children.get(node.id, [])))


def fleet_checkpoints(
    ctx: ServiceDeps, hosts: list[str], vm_id: str | None = None
) -> tuple[list[Checkpoint], list[HostProblem]]:
    """Every checkpoint on `hosts`, asking at most `hyperv.fanout` at once.
    A host that cannot be asked is a problem, never an empty list: its
    checkpoints are unknown."""
    return checkpoints_on(ctx.host_for, hosts, fanout=ctx.settings.hyperv.fanout, vm_id=vm_id)


def checkpoints_on(
    host_for: Callable[[str], HyperVHost],
    hosts: list[str],
    *,
    fanout: int,
    vm_id: str | None = None,
) -> tuple[list[Checkpoint], list[HostProblem]]:
    """`fleet_checkpoints` given the host factory and fan-out themselves (the
    fleet bench runs exactly this)."""
    found, problems, _without = _checkpoints_asked(host_for, hosts, fanout=fanout, vm_id=vm_id)
    return found, problems


def _checkpoints_asked(
    host_for: Callable[[str], HyperVHost],
    hosts: list[str],
    *,
    fanout: int,
    vm_id: str | None = None,
) -> tuple[list[Checkpoint], list[HostProblem], list[tuple[str, str]]]:
    """`checkpoints_on`, and the hosts that answered that they have no VM
    `vm_id` (with their words). Such a host answered: it holds none of the
    VM's checkpoints (they move with the VM). Seen: a cluster peer asked
    because the owner node could not be, reported as "could not be
    reached" for saying the VM is not there."""
    results = ask_hosts(host_for, hosts, lambda host: host.list_checkpoints(vm_id), fanout=fanout)
    found: list[Checkpoint] = []
    problems: list[HostProblem] = []
    without: list[tuple[str, str]] = []
    for name, result in results:
        if vm_id is not None and isinstance(result, VMNotFound):
            without.append((name, result.message))
        elif isinstance(result, HyperVError):
            problems.append(HostProblem(name, result.message, isinstance(result, HostAuthError)))
        else:
            found.extend(result)
    return found, problems, without


def list_checkpoints(
    ctx: ServiceDeps, *, vm: str | None = None, host: str | None = None, target: str | None = None
) -> CheckpointListing:
    """Every checkpoint on the hosts; or one VM's (`vm`), one host's
    (`host`), or those of whatever host, VM, failover cluster or group
    `target` names (bot.service.whereabouts.focus_on)."""
    vm_id = None
    record: VM | None = None
    found: list[Checkpoint] | None = None
    hosts: list[str] | None = None
    only: set[str] | None = None  # a group's VM ids
    if target is not None:
        if vm is not None or host is not None:
            raise BadRequest("name the VM or host once: as the target, or as the VM or host")
        focus = focus_on(ctx.inventory, target)
        if focus.kind is FocusKind.HOST:
            host = focus.name
        elif focus.kind is FocusKind.VM:
            vm = focus.name
        elif focus.kind is FocusKind.CLUSTER:
            hosts = list(focus.hosts)
        else:  # a group: every node its VMs may be on, then only its VMs
            members = [ctx.inventory.vm(name) for name in focus.vms or ()]
            hosts, only = nodes_of(ctx.inventory, members), {m.vm_id for m in members}
    if vm is not None:
        # An empty --vm is a mistake to name, not "every VM".
        record = resolve_vm(ctx, vm)
        standalone = ctx.decider.locator.standalone(record)
        vm_id, hosts = record.vm_id, [record.host] if standalone else _where(ctx, record)
        if host and all(host.lower() != h.lower() for h in hosts):
            raise BadRequest(f"{record.name} runs on {hosts[0]}, not {host}")
        if host:
            hosts = [h for h in hosts if h.lower() == host.lower()]
        if standalone:
            found, problems = _on_its_host(ctx, record)
    elif host is not None:
        try:
            hosts = [ctx.inventory.host(host).name]
        except InventoryLookupError as exc:
            raise from_inventory(exc) from None
    elif hosts is None:
        hosts = [h.name for h in ctx.inventory.hosts]

    if found is None:
        found, problems, without = _checkpoints_asked(
            ctx.host_for, hosts, fanout=ctx.settings.hyperv.fanout, vm_id=vm_id
        )
        if record is not None and without and len(without) == len(hosts):
            # Every node asked answered, and none has the VM (it moved away
            # between being located and being listed): as `_where` says it.
            group = ctx.inventory.group_of(record)
            raise NotOnCluster(record, group, [name for name, _ in without], without[0][1])
    if only is not None:
        found = [c for c in found if c.vm_id in only]
    owners = _owners(ctx, [c.id for c in found])
    foreign, marked, made = _provenances(ctx, [c for c in found if c.id not in owners])
    now = ctx.clock()
    rows: list[CheckpointRow] = []
    by_vm: dict[str, list[Checkpoint]] = {}
    for c in found:
        by_vm.setdefault(c.vm_id, []).append(c)
    # The inventory names the VMs (by VMId) and every command takes its
    # names: a host's name may be another VM's (seen: a DR copy its host
    # calls WEB02 listed as "WEB02" beside the production WEB02).
    names = {vm_id: _inventory_name(ctx, vm_id, items[0].vm_name) for vm_id, items in by_vm.items()}
    for vm_id, items in sorted(by_vm.items(), key=lambda kv: names[kv[0]].casefold()):
        name = names[vm_id]
        for c, depth in _tree_order(items):
            owner = owners.get(c.id)
            seen = judge_listed(c)
            rows.append(
                CheckpointRow(
                    host=c.host,
                    vm_name=name,
                    host_vm_name=None if c.vm_name.casefold() == name.casefold() else c.vm_name,
                    vm_id=c.vm_id,
                    id=c.id,
                    name=c.name,
                    parent_id=c.parent_id,
                    depth=depth,
                    created_at=c.created_at,
                    age_seconds=max(0, int((now - c.created_at).total_seconds())),
                    size_bytes=c.size_bytes,
                    snapshot_type=c.snapshot_type.name,
                    captured_state=c.captured_state.name if c.captured_state else None,
                    change_ref=change_ref(owner.id) if owner else None,
                    change_state=owner.state if owner else None,
                    taken=(owner.taken_type if owner and owner.taken_type else seen.kind.value),
                    evidence=(
                        owner.taken_evidence if owner and owner.taken_evidence else seen.evidence
                    ),
                    asked=owner.checkpoint_type if owner else None,
                    foreign_token=foreign.get(c.id),
                    marked_token=marked.get(c.id),
                    made_by=made[c.id].ref if c.id in made else None,
                    made_by_state=made[c.id].state if c.id in made else None,
                    made_by_running=c.id in made and made[c.id].running,
                )
            )
    failed = {p.host for p in problems}
    return CheckpointListing(
        tuple(rows),
        tuple(problems),
        answered=tuple(h for h in hosts if h not in failed),
        vm=record.name if record is not None else None,
        cluster=_cluster_of(ctx, record),
    )


def _cluster_of(ctx: ServiceDeps, vm: VM | None) -> str | None:
    """The failover cluster of a listed VM, None for a standalone one (or
    for a listing that is not of one VM)."""
    cluster = ctx.inventory.cluster_of(vm.host) if vm is not None else None
    return cluster.name if cluster is not None else None


def _inventory_name(ctx: ServiceDeps, vm_id: str, host_says: str) -> str:
    """The inventory's name for the VM with this VMId; the host's name for
    a VM the inventory does not hold."""
    try:
        return ctx.inventory.vm_by_id(vm_id).name
    except InventoryLookupError:
        return host_says


def _on_its_host(ctx: ServiceDeps, vm: VM) -> tuple[list[Checkpoint], list[HostProblem]]:
    """A standalone VM's checkpoints, asked of the only host it can be on
    without asking first whether it is there: `Get-VM -Id` at the head of
    the listing's pipeline says so itself (a VM the host lacks ends it
    before `Get-VMSnapshot`). What `_where` concluded is kept: a VM the
    host lacks is `NotOnCluster`, in the host's words; a host that cannot
    be asked is a problem of the listing; a VM found is a sighting."""
    group = ctx.inventory.group_of(vm)
    try:
        found = ctx.host_for(vm.host).list_checkpoints(vm.vm_id)
    except VMNotFound as exc:
        raise NotOnCluster(vm, group, [vm.host], exc.message) from None
    except HyperVError as exc:
        return [], [HostProblem(vm.host, exc.message, isinstance(exc, HostAuthError))]
    locator = ctx.decider.locator
    locator.seen(vm, vm.host, group, locator.last_seen(vm))
    return found, []


def _where(ctx: ServiceDeps, vm: VM) -> list[str]:
    """The node that has the VM now (its checkpoints are there: they move
    with it). When a node cannot be asked the owner is unknown, so every node
    of its cluster is listed and the one that did not answer is named; a VM
    no node has is `NotOnCluster` (a NotFound), never an empty list."""
    try:
        return [ctx.decider.locator.locate(vm).host]
    except NotOnCluster:
        raise
    except Unavailable:
        return ctx.inventory.nodes_for(vm)


@dataclass(frozen=True)
class _Owner:
    id: int
    state: str
    checkpoint_type: str
    taken_type: str | None
    taken_evidence: str | None


def _owners(ctx: ServiceDeps, checkpoint_ids: list[str]) -> dict[str, _Owner]:
    if not checkpoint_ids:
        return {}
    with session_scope(ctx.engine) as s:
        rows = s.exec(select(Change).where(col(Change.checkpoint_id).in_(checkpoint_ids))).all()
        return {
            c.checkpoint_id: _Owner(
                c.id, c.state, c.checkpoint_type, c.taken_type, c.taken_evidence
            )
            for c in rows
            if c.checkpoint_id and c.id is not None
        }


@dataclass(frozen=True)
class _MadeBy:
    """The change whose create job made a checkpoint no change owns."""

    ref: str
    state: str
    # Its create job still runs (its worker heart-beats): it records it.
    running: bool


def _provenances(
    ctx: ServiceDeps, unowned: list[Checkpoint]
) -> tuple[dict[str, str], dict[str, str], dict[str, _MadeBy]]:
    """For those of `unowned` whose name carries a token (most orphans have
    none: made by hand), so that a listing and a sweep name one checkpoint
    alike: checkpoint id -> its token, when none of this bot's jobs drew it
    and its mark is not this record's (another deployment's: the sweep's
    `foreign`); checkpoint id -> its token, when no job drew it but its mark
    is this record's (the sweep's orphan "with this deployment's mark");
    and checkpoint id -> (ref, state) of the change whose create job made
    it, which has not recorded it (interrupted, say: the reconciler will)
    or was settled before it came."""
    from bot.service.ownership import token_of

    tokened = [(c, token) for c in unowned if (token := token_of(c.name)) is not None]
    if not tokened:
        return {}, {}, {}
    from bot.service.provenance import drawn_by, made_by, unrecorded_but_ours

    foreign: dict[str, str] = {}
    marked: dict[str, str] = {}
    found: dict[str, tuple[int, str]] = {}
    with session_scope(ctx.engine) as s:
        for c, token in tokened:
            change_id = made_by(s, c)
            if change_id is not None:
                found[c.id] = (
                    change_id,
                    s.exec(select(Change.state).where(Change.id == change_id)).one(),
                )
            elif drawn_by(s, token) is None:  # as `provenance` judges it
                (marked if unrecorded_but_ours(s, c) else foreign)[c.id] = token
    # The ledger's own reads, outside that transaction (SQLite's write lock).
    made = {
        cid: _MadeBy(change_ref(change_id), state, _creating_now(ctx, change_id))
        for cid, (change_id, state) in found.items()
    }
    return foreign, marked, made


def _creating_now(ctx: ServiceDeps, change_id: int) -> bool:
    """Whether the change's create job still runs: claimed, and its worker
    heart-beat within `jobs.lock_stale_after` (seen: "its create is under
    way" for a create whose CLI had been stopped with Ctrl-C)."""
    ran = [j for j in ctx.ledger.jobs_of_change(change_id) if j.kind == "create"]
    if not ran or ran[-1].state != "running" or ran[-1].heartbeat_at is None:
        return False
    beat = ran[-1].heartbeat_at
    beat = beat if beat.tzinfo is not None else beat.replace(tzinfo=UTC)
    return ctx.clock() - beat < ctx.ledger.lock_stale_after


def audit_rows(ctx: ServiceDeps) -> Iterator[dict[str, Any]]:
    """Every event of every change, then every settings change, streamed
    (bot.service.audit, imported here: listing checkpoints needs none of it)."""
    from bot.service.audit import stream_audit

    return stream_audit(ctx.engine)


@dataclass(frozen=True)
class ScheduledRun:
    """A change or a wave asked for at a time (`--at`) that has not run
    yet: what `windows` and the App Home list beside the windows."""

    ref: str  # BAT-n for a wave, CHG-n for a change asked for alone
    run_at: datetime
    requester: str
    reason: str
    vms: tuple[str, ...]
    # The members of a wave (CHG-n), in the order of its VMs.
    changes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "run_at": self.run_at.isoformat(),
            "requester": self.requester,
            "reason": self.reason,
            "vms": list(self.vms),
            "changes": list(self.changes),
        }


def scheduled_runs(ctx: ServiceDeps, *, requester: str | None = None) -> list[ScheduledRun]:
    """Everything asked for at a time that waits for it (scheduled, or for
    the approval of its create), soonest first, one line per wave; only
    `requester`'s with it (the App Home shows a person their own)."""
    waiting = [State.SCHEDULED.value, State.AWAITING_APPROVAL.value, State.APPROVED.value]
    query = select(Change).where(col(Change.run_at).is_not(None), col(Change.state).in_(waiting))
    if requester is not None:
        query = query.where(col(Change.requester) == requester)
    with session_scope(ctx.engine) as s:
        changes = s.exec(query.order_by(col(Change.run_at), col(Change.id))).all()
        runs: dict[str, ScheduledRun] = {}
        for c in changes:
            assert c.id is not None and c.run_at is not None
            key = batch_ref(c.batch_id) if c.batch_id is not None else change_ref(c.id)
            seen = runs.get(key)
            runs[key] = ScheduledRun(
                key,
                c.run_at,
                c.requester,
                c.reason,
                (*(seen.vms if seen else ()), c.vm_name),
                (*(seen.changes if seen else ()), change_ref(c.id)),
            )
    return sorted(runs.values(), key=lambda r: (r.run_at, r.ref))
