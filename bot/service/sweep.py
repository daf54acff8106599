"""The orphan and stale sweep: every checkpoint on every host, matched to the
changes that own them, reported as one digest per channel.

    tick ─► claim (sweep, slot) ─► fleet_checkpoints (at most hyperv.fanout hosts at once)
         ─► sample every size ─► classify ─► group by channel ─► one post per channel
         ─► changes whose checkpoint is gone ─► confirmed per VM ─► vanished

It reports and never acts on a checkpoint: merging or adopting is a human's
click. What it settles is the record: a change whose checkpoint a host that
answered no longer has ends as `vanished` (bot.service.vanished). A host
that cannot be asked is "unknown" in every digest, never "no checkpoints".
The slot is claimed before the work, so a sweep that dies half way is not
repeated by another replica: its digest goes out at most once, and the next
slot sweeps again. A periodic digest goes out only with news: a finding its
channel was not told of before (`digest_news`; recorded once a digest is
posted), so the same stale and orphan list is not posted every interval.

A change that holds a checkpoint whose VM or host is no longer in the
inventory cannot be swept (the bot reaches a host only through its
inventory entry): it is "out of sight", listed from the record with its
last sampled size, in the report, every digest and a logged warning, and
nothing is done to it (`out_of_sight`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import and_, delete, func
from sqlmodel import Session, col, select

from bot.changes import HOLDS_CHECKPOINT, State
from bot.changes.views import HostProblem
from bot.hyperv import Checkpoint
from bot.hyperv.evidence import judge_listed
from bot.hyperv.types import REPLICA_SNAPSHOT_TYPES
from bot.service import vanished
from bot.service.finding import checkpoint_id_of
from bot.service.provenance import provenance
from bot.service.queries import fleet_checkpoints
from bot.service.sweep_views import (
    ChannelDigest,
    Finding,
    Gone,
    OutOfSight,
    SweepItem,
    SweepReport,
    has_host,
    left_inventory,
)
from bot.store.db import session_scope
from bot.store.tables import batch_ref, change_ref
from bot.store.tables.changes import Change
from bot.store.tables.hosts import CheckpointSize

if TYPE_CHECKING:
    from bot.inventory import Inventory
    from bot.service.deps import ServiceDeps

log = logging.getLogger(__name__)

KIND = "sweep"
# What each channel's digests have reported, one tick row per finding.
NEWS_KIND = "sweep_news"
TEMPLATE = "sweep_digest"
# A human decides what happens to these once they are past their expiry.
_DECIDABLE = frozenset({State.ACTIVE, State.ROLLED_BACK})
# Work is under way, or the outcome is unknown and reconciliation (and the
# change's thread) owns the question: not the sweep's to report.
_IN_HAND = frozenset({State.CREATING, State.MERGING, State.ROLLING_BACK, State.INTERRUPTED})
# Hyper-V Replica's recovery points: Replica creates and prunes them.
REPLICA_TYPES = REPLICA_SNAPSHOT_TYPES
# Bound the IN (...) lists: SQLite and PostgreSQL both cap bind parameters.
_CHUNK = 500


@dataclass(frozen=True)
class Owner:
    """The change that names a checkpoint, as the sweep needs it."""

    change_id: int
    state: State
    version: int
    expires_at: datetime | None
    channel: str | None
    requester: str
    # The wave it is a member of (its digest line is the wave's).
    batch_id: int | None = None
    # What the host took, as recorded when it was taken: a production
    # checkpoint holds no memory, so the host's listing alone cannot tell it.
    taken_type: str | None = None


def sweep_slot(now: datetime, interval: timedelta) -> str:
    """The interval `now` falls in, named by its start: `2026-12-01T18:00Z`."""
    step = max(1, int(interval.total_seconds()))
    start = int(now.timestamp()) // step * step
    return datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%dT%H:%MZ")


def classify(
    owner: Owner | None,
    created_at: datetime,
    now: datetime,
    orphan_after: timedelta,
    *,
    foreign: bool = False,
) -> Finding | None:
    """What the sweep says about one checkpoint; None: nothing to report.

    A young checkpoint no change owns may be one a create job is taking right
    now (the change learns its Id only once Hyper-V returns), so it becomes
    an orphan only after `orphan_after`. One that carries another
    deployment's token (`foreign`) is never ours to adopt."""
    if owner is None:
        if now - created_at < orphan_after:
            return None
        return Finding.FOREIGN if foreign else Finding.ORPHAN
    if owner.state in _DECIDABLE:
        expired = owner.expires_at is not None and owner.expires_at <= now
        return Finding.STALE if expired else None
    if owner.state in _IN_HAND:
        return None
    return Finding.MISMATCH


def _chunks(ids: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


def owners_of(s: Session, checkpoint_ids: Sequence[str]) -> dict[str, Owner]:
    found: dict[str, Owner] = {}
    for chunk in _chunks(checkpoint_ids):
        rows = s.exec(select(Change).where(col(Change.checkpoint_id).in_(chunk))).all()
        for c in sorted(rows, key=lambda c: c.id or 0):
            assert c.id is not None and c.checkpoint_id is not None
            owner = Owner(
                c.id,
                State(c.state),
                c.version,
                c.expires_at,
                c.channel,
                c.requester,
                c.batch_id,
                c.taken_type,
            )
            held = found.get(c.checkpoint_id)
            # Two changes naming one checkpoint would be a bug; prefer the
            # one that still holds it, so nothing is reported as settled.
            if held is None or held.state not in _DECIDABLE:
                found[c.checkpoint_id] = owner
    return found


def previous_sizes(
    s: Session, checkpoint_ids: Sequence[str], before: datetime
) -> dict[str, tuple[datetime, int]]:
    """Each checkpoint's latest size sample taken before `before`."""
    found: dict[str, tuple[datetime, int]] = {}
    for chunk in _chunks(checkpoint_ids):
        latest = (
            select(
                CheckpointSize.checkpoint_id,
                func.max(CheckpointSize.at).label("last_at"),
            )
            .where(col(CheckpointSize.checkpoint_id).in_(chunk), col(CheckpointSize.at) < before)
            .group_by(col(CheckpointSize.checkpoint_id))
            .subquery()
        )
        rows = s.exec(
            select(CheckpointSize.checkpoint_id, CheckpointSize.at, CheckpointSize.size_bytes).join(
                latest,
                and_(
                    col(CheckpointSize.checkpoint_id) == latest.c.checkpoint_id,
                    col(CheckpointSize.at) == latest.c.last_at,
                ),
            )
        ).all()
        for checkpoint_id, at, size in rows:
            found[checkpoint_id] = (at, size)
    return found


def record_sizes(s: Session, checkpoints: Iterable[Checkpoint], at: datetime) -> None:
    s.add_all(
        CheckpointSize(
            host=c.host, vm_id=c.vm_id, checkpoint_id=c.id, at=at, size_bytes=c.size_bytes
        )
        for c in checkpoints
    )


def size_history(ctx: ServiceDeps, checkpoint_id: str) -> list[tuple[datetime, int]]:
    """Every kept sample of one checkpoint (its Id as a person wrote it),
    oldest first."""
    wanted = checkpoint_id_of(checkpoint_id)
    with session_scope(ctx.engine) as s:
        rows = s.exec(
            select(CheckpointSize.at, CheckpointSize.size_bytes)
            .where(CheckpointSize.checkpoint_id == wanted)
            .order_by(col(CheckpointSize.at))
        ).all()
    return [(at, size) for at, size in rows]


def _item(
    c: Checkpoint,
    finding: Finding,
    owner: Owner | None,
    previous: tuple[datetime, int] | None,
    now: datetime,
    default_channel: str | None,
    origin: str = "",
) -> SweepItem:
    return SweepItem(
        finding=finding,
        host=c.host,
        vm_name=c.vm_name,
        vm_id=c.vm_id,
        checkpoint_id=c.id,
        name=c.name,
        # The record first, the host's reading without one: as
        # `checkpoint list` says it (bot.service.queries.list_checkpoints).
        kind=owner.taken_type if owner and owner.taken_type else judge_listed(c).kind.value,
        created_at=c.created_at,
        age_seconds=max(0, int((now - c.created_at).total_seconds())),
        size_bytes=c.size_bytes,
        growth_bytes=c.size_bytes - previous[1] if previous else None,
        # Orphans have no thread: they go where the sweep is told to report.
        channel=(owner.channel if owner else None) or default_channel,
        change_ref=change_ref(owner.change_id) if owner else None,
        change_state=owner.state.value if owner else None,
        change_version=owner.version if owner else 0,
        requester=owner.requester if owner else None,
        expires_at=owner.expires_at if owner else None,
        provenance=origin,
        batch_ref=batch_ref(owner.batch_id) if owner and owner.batch_id is not None else None,
    )


def _digests(
    items: Sequence[SweepItem],
    problems: Sequence[HostProblem],
    default_channel: str | None,
    previous_at: datetime | None,
    away: Sequence[OutOfSight] = (),
) -> tuple[ChannelDigest, ...]:
    by_channel: dict[str, list[SweepItem]] = {}
    for item in items:
        if item.channel is not None:
            by_channel.setdefault(item.channel, []).append(item)
    # A change out of sight is news even when nothing else is: no other
    # screen shows it.
    away_by_channel: dict[str, list[OutOfSight]] = {}
    for change in away:
        if change.channel is not None:
            by_channel.setdefault(change.channel, [])
            away_by_channel.setdefault(change.channel, []).append(change)
    # An unreachable host is news even when nothing else is: its checkpoints
    # are unknown, so the default channel hears of it.
    if problems and default_channel and default_channel not in by_channel:
        by_channel[default_channel] = []
    return tuple(
        ChannelDigest(
            channel,
            tuple(found),
            tuple(problems),
            previous_at,
            tuple(away_by_channel.get(channel, ())),
        )
        for channel, found in sorted(by_channel.items())
    )


def out_of_sight(
    s: Session,
    inventory: Inventory,
    listed: Mapping[str, int],
    at: datetime,
    default_channel: str | None,
) -> list[OutOfSight]:
    """The changes that hold a checkpoint by the record (active, rolled
    back, merging, rolling back) and that the bot has no way to: their VM
    left the inventory (with its host, or alone), or their host did and
    their checkpoint is not among those `listed` (Id → size) on the
    inventory's hosts now (a VM the inventory puts elsewhere, its
    checkpoint with it, is followed there). Each with its size as listed
    now, else as last sampled before `at`; oldest change first."""
    rows = s.exec(
        select(Change)
        .where(col(Change.state).in_([state.value for state in HOLDS_CHECKPOINT]))
        .order_by(col(Change.id))
    ).all()
    away: list[tuple[Change, Gone]] = []
    for c in rows:
        gone = left_inventory(inventory, c.vm_id, c.host)
        if gone is None and c.checkpoint_id not in listed and not has_host(inventory, c.host):
            gone = Gone.HOST
        if gone is not None:
            away.append((c, gone))
    unseen = [c.checkpoint_id for c, _ in away if c.checkpoint_id and c.checkpoint_id not in listed]
    sampled = previous_sizes(s, unseen, at)
    found: list[OutOfSight] = []
    for c, gone in away:
        assert c.id is not None
        size = None
        if c.checkpoint_id is not None and c.checkpoint_id in listed:
            size = (at, listed[c.checkpoint_id])
        elif c.checkpoint_id is not None:
            size = sampled.get(c.checkpoint_id)
        found.append(
            OutOfSight(
                change_ref=change_ref(c.id),
                change_state=c.state,
                change_version=c.version,
                vm_name=c.vm_name,
                vm_id=c.vm_id,
                host=c.host,
                checkpoint_id=c.checkpoint_id,
                requester=c.requester,
                expires_at=c.expires_at,
                gone=gone,
                channel=c.channel or default_channel,
                size_bytes=size[1] if size else None,
                size_at=size[0] if size else None,
                batch_ref=batch_ref(c.batch_id) if c.batch_id is not None else None,
            )
        )
    return found


def _said(away: Sequence[OutOfSight], shown: int = 10) -> str:
    """The warning a sweep logs while changes are out of sight."""
    one = len(away) == 1
    listed = "; ".join(f"{o.change_ref} ({o.vm_name} on {o.host}: {o.why})" for o in away[:shown])
    more = f"; and {len(away) - shown} more" if len(away) > shown else ""
    it, its = ("it", "its") if one else ("them", "their")
    return (
        f"{len(away)} {'change holds a checkpoint' if one else 'changes hold checkpoints'} "
        f"out of sight, {its} VM or host not in the inventory: {listed}{more}. Nothing is "
        f"done to {it}: put {its} VM or host back in the inventory to merge or roll {it} back "
        "(checkpoint-bot sweep run lists them)"
    )


def scan(ctx: ServiceDeps, now: datetime | None = None, *, record: bool = True) -> SweepReport:
    """List every checkpoint on every host, sample its size (unless `record`
    is False) and say which are stale, orphaned or at odds with the record,
    and which changes hold one out of sight (their VM or host left the
    inventory)."""
    at = now or ctx.clock()
    config = ctx.settings.sweep
    default_channel = config.channel or ctx.settings.slack.changes_channel
    hosts = [h.name for h in ctx.inventory.hosts]
    found, problems = fleet_checkpoints(ctx, hosts)
    ours = [c for c in found if c.snapshot_type not in REPLICA_TYPES]
    ids = [c.id for c in found]
    unreachable = {p.host for p in problems}
    missing = vanished.candidates(ctx, [h for h in hosts if h not in unreachable], set(ids))
    with session_scope(ctx.engine) as s:
        owners = owners_of(s, ids)
        previous = previous_sizes(s, ids, at)
        origins = {c.id: provenance(s, c) for c in ours if c.id not in owners}
        listed = {c.id: c.size_bytes for c in found}
        away = out_of_sight(s, ctx.inventory, listed, at, default_channel)
        if record:
            record_sizes(s, found, at)
            s.execute(delete(CheckpointSize).where(col(CheckpointSize.at) < at - config.keep_sizes))
    # Reported as out of sight, and only so: never a row with buttons the
    # bot could not carry out, nor a "vanished" it has no host to prove.
    held_away = {o.checkpoint_id for o in away}
    away_refs = {o.change_ref for o in away}
    missing = [m for m in missing if m.ref not in away_refs]
    items: list[SweepItem] = []
    young = 0
    for c in ours:
        if c.id in held_away:
            continue
        owner = owners.get(c.id)
        foreign, origin = origins.get(c.id, (False, ""))
        finding = classify(owner, c.created_at, at, config.orphan_after, foreign=foreign)
        if finding is None:
            if owner is None:
                young += 1
            continue
        items.append(_item(c, finding, owner, previous.get(c.id), at, default_channel, origin))
    # The biggest first: they cost the most disk and take longest to merge.
    items.sort(key=lambda i: (-i.size_bytes, i.vm_name.lower(), i.checkpoint_id))
    previous_at = max((when for when, _ in previous.values()), default=None)
    if away:
        log.warning(_said(away))
    return SweepReport(
        at=at,
        slot=sweep_slot(at, config.interval),
        hosts=len(hosts),
        seen=len(found),
        items=tuple(items),
        problems=tuple(problems),
        digests=_digests(items, problems, default_channel, previous_at, away),
        young_orphans=young,
        replica_points=len(found) - len(ours),
        previous_at=previous_at,
        missing=tuple(missing),
        out_of_sight=tuple(away),
    )


def settle_vanished(ctx: ServiceDeps, report: SweepReport) -> SweepReport:
    """Changes whose checkpoint the sweep did not see: asked about one by
    one (the VM must be on its host, the checkpoint absent), then ended."""
    settled = tuple(
        change.ref
        for change in report.missing
        if vanished.check(ctx, change, "the sweep did not find it")
    )
    return replace(report, vanished=settled)


def digest_news(digest: ChannelDigest, at: datetime) -> list[str]:
    """What a digest reports, as keys that stay the same while nothing new
    happens: each finding (a stale one per version of its change, so an
    extension that runs out again is news), each host that could not be
    asked and each change out of sight (once a day: a host down or a
    checkpoint stranded for a week is still worth a line)."""
    keys = [
        f"{digest.channel}:{i.finding.value}:{i.checkpoint_id}:v{i.change_version}"
        for i in digest.items
    ]
    keys += [f"{digest.channel}:unreachable:{p.host}:{at:%Y-%m-%d}" for p in digest.problems]
    keys += [
        f"{digest.channel}:out_of_sight:{o.change_ref}:{at:%Y-%m-%d}" for o in digest.out_of_sight
    ]
    return keys


# A daily line's key ends in its day (`digest_news`).
_DAY_OF_KEY = re.compile(r"\d{4}-\d{2}-\d{2}$")
_A_DAY = timedelta(days=1)


def _told(ctx: ServiceDeps, key: str, at: datetime) -> bool:
    """Whether a channel was told `key` already. A daily line (a host
    down, a change out of sight) is told again a day after it last was,
    not at midnight: told at 23:00, it is not news at 01:00 (seen: two
    digests two hours apart, the second saying nothing new)."""
    if ctx.ticks.claimed(NEWS_KIND, key):
        return True
    day = _DAY_OF_KEY.search(key)
    if day is None:
        return False
    told = ctx.ticks.claimed_at(NEWS_KIND, key[: day.start()] + f"{at - _A_DAY:%Y-%m-%d}")
    return told is not None and at - told < _A_DAY


def post_digests(ctx: ServiceDeps, report: SweepReport, *, only_news: bool = False) -> SweepReport:
    """One message per channel, however many checkpoints it lists; with
    `only_news`, only to a channel that has not been told all of it."""
    posted: dict[str, str | None] = {}
    for digest in report.digests:
        keys = digest_news(digest, report.at)
        if only_news and all(_told(ctx, k, report.at) for k in keys):
            log.info("sweep %s: nothing new for %s, not posted", report.slot, digest.channel)
            continue
        try:
            posted[digest.channel] = ctx.channels.post(
                digest.channel, TEMPLATE, digest=digest, report=report
            )
            if posted[digest.channel]:
                # Told: these findings are news no more (a failed post keeps them news).
                for key in keys:
                    ctx.ticks.claim(NEWS_KIND, key)
        except Exception:
            # One channel's failure (a template bug) must not silence the others.
            log.exception("the sweep digest for %s could not be posted", digest.channel)
            posted[digest.channel] = None
    return replace(report, posted=posted)


def run_sweep(ctx: ServiceDeps, *, post: bool = False, now: datetime | None = None) -> SweepReport:
    """One sweep now (the CLI's `sweep run`): scan, and post if asked to."""
    report = settle_vanished(ctx, scan(ctx, now))
    if post and ctx.channels.enabled:
        report = post_digests(ctx, report)
    return report


@dataclass
class SweepTask:
    """The periodic sweep: once per `sweep.interval` across every replica."""

    ctx: ServiceDeps
    name: str = KIND

    def tick(self, now: datetime) -> None:
        config = self.ctx.settings.sweep
        if not config.enabled:
            return
        slot = sweep_slot(now, config.interval)
        if not self.ctx.ticks.claim(KIND, slot):
            return
        report = post_digests(
            self.ctx, settle_vanished(self.ctx, scan(self.ctx, now)), only_news=True
        )
        log.info(
            "sweep %s: %d checkpoints on %d hosts, %d reported, %d hosts unreachable, "
            "%d changes out of sight, %d digests posted",
            slot,
            report.seen,
            report.hosts,
            len(report.items),
            len(report.problems),
            len(report.out_of_sight),
            sum(1 for ts in report.posted.values() if ts),
        )
