"""Gauges read from the database at scrape time: the job queue and the
checkpoints the bot holds. Every replica reports the same numbers (they
come from the shared record), so dashboards take `max` over instances."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import func, or_
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.changes.lifecycle import HOLDS_CHECKPOINT, IN_FLIGHT, State
from bot.inventory import Inventory
from bot.jobs.states import JobState
from bot.observe.metrics import PREFIX
from bot.store.tables.changes import Change, ChangeEvent
from bot.store.tables.hosts import CheckpointSize
from bot.store.tables.jobs import Job

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckpointRow:
    host: str
    checkpoint_id: str | None
    created_at: datetime
    expires_at: datetime | None


@dataclass
class GroupTotals:
    count: int = 0
    expired: int = 0
    size_bytes: int = 0
    oldest_seconds: float = 0.0


def host_group_of(inventory: Inventory, host: str) -> str:
    """The host's `host_group`, else the host's own name (a lone host is its
    own group); a host no longer in the inventory keeps its name."""
    try:
        found = inventory.host(host)
    except Exception:
        return host
    return found.host_group or found.name


def inventory_groups(inventory: Inventory) -> set[str]:
    """Every host group of the inventory (`host_group_of` each host): the
    groups a per-group gauge reports, 0 when they hold nothing, so that an
    alert or a dashboard sees "none", not "no data"."""
    return {host_group_of(inventory, h.name) for h in inventory.hosts}


def unowned_by_group(
    per_host: list[tuple[str, int, int]], group_of: Callable[[str], str]
) -> dict[str, tuple[int, int]]:
    """Pure: (count, bytes) of the unowned checkpoints per host group, from
    (host, count, bytes) rows."""
    out: dict[str, tuple[int, int]] = {}
    for host, count, size in per_host:
        group = group_of(host)
        seen, total = out.get(group, (0, 0))
        out[group] = (seen + count, total + size)
    return out


def totals_by_group(
    rows: list[CheckpointRow],
    sizes: dict[str, int],
    group_of: Callable[[str], str],
    now: datetime,
    groups: Iterable[str] = (),
) -> dict[str, GroupTotals]:
    """Pure: count, expired, bytes and the oldest age per host group; each
    of `groups` is there too, all 0 when it holds none (its oldest age
    then is 0: no checkpoint is no age)."""
    out: dict[str, GroupTotals] = {group: GroupTotals() for group in groups}
    for row in rows:
        totals = out.setdefault(group_of(row.host), GroupTotals())
        totals.count += 1
        if row.expires_at is not None and row.expires_at <= now:
            totals.expired += 1
        if row.checkpoint_id is not None:
            totals.size_bytes += sizes.get(row.checkpoint_id, 0)
        totals.oldest_seconds = max(totals.oldest_seconds, (now - row.created_at).total_seconds())
    return out


class DatabaseGauges:
    """A prometheus-client collector over the jobs and changes tables."""

    def __init__(self, engine: Engine, inventory: Inventory, clock: Callable[[], datetime]) -> None:
        self.engine, self.inventory, self.clock = engine, inventory, clock

    def describe(self) -> list[Metric]:
        # Describing without querying keeps registration free of I/O.
        return []

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            PREFIX + "database_up", "1 if the last scrape could read the database, else 0."
        )
        try:
            families = list(self._families(self.clock()))
        except Exception as exc:
            log.warning("metrics: cannot read the database: %s", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self, now: datetime) -> Iterator[Metric]:
        with Session(self.engine) as s:
            due = or_(col(Job.not_before).is_(None), col(Job.not_before) <= now)
            depth, oldest = s.exec(
                select(func.count(), func.min(Job.created_at)).where(
                    Job.state == JobState.QUEUED, due
                )
            ).one()
            scheduled = s.exec(
                select(func.count()).where(Job.state == JobState.QUEUED, col(Job.not_before) > now)
            ).one()
            running, oldest_beat = s.exec(
                select(func.count(), func.min(Job.heartbeat_at)).where(
                    Job.state == JobState.RUNNING
                )
            ).one()
            # The job row stays `interrupted` as history once its change is
            # reconciled: only those whose change still waits count (in
            # flight for the reconciler, or interrupted for a human), or the
            # alert on this gauge would fire for ever after one crash.
            waiting = [st.value for st in (*IN_FLIGHT, State.INTERRUPTED)]
            interrupted = s.exec(
                select(func.count())
                .select_from(Job)
                .join(Change, col(Change.id) == col(Job.change_id))
                .where(Job.state == JobState.INTERRUPTED, col(Change.state).in_(waiting))
            ).one()
            holding = s.exec(
                select(Change).where(col(Change.state).in_([st.value for st in HOLDS_CHECKPOINT]))
            ).all()
            adopted = self._adopted_created(s)
            rows = [
                # An adopted checkpoint is as old as the host says it is, not
                # as its change (seen: an orphan of weeks read 5 s old once
                # adopted, and the week-old alert stayed quiet).
                CheckpointRow(
                    c.host,
                    c.checkpoint_id,
                    adopted.get(c.id or 0, c.created_at),
                    c.expires_at,
                )
                for c in holding
            ]
            sizes = self._latest_sizes(s, [r.checkpoint_id for r in rows if r.checkpoint_id])
            unowned = self._unowned_last_seen(s)
        yield _gauge("queue_depth", "Jobs queued and due now (not waiting for a window).", depth)
        yield _gauge(
            "queue_oldest_age_seconds",
            "Age of the oldest job queued and due now (0 when none).",
            (now - _utc(oldest)).total_seconds() if oldest is not None else 0.0,
        )
        yield _gauge("queue_scheduled", "Jobs queued for a later time (a window).", scheduled)
        yield _gauge("jobs_running", "Jobs running on any worker.", running)
        yield _gauge(
            "running_job_heartbeat_age_seconds",
            "Seconds since the stalest heartbeat of a running job (0 when none).",
            (now - _utc(oldest_beat)).total_seconds() if oldest_beat is not None else 0.0,
        )
        yield _gauge(
            "jobs_interrupted",
            "Jobs whose worker died mid-work, waiting for reconciliation.",
            interrupted,
        )
        totals = totals_by_group(
            rows,
            sizes,
            lambda h: host_group_of(self.inventory, h),
            now,
            inventory_groups(self.inventory),
        )
        families = {
            "count": GaugeMetricFamily(
                PREFIX + "active_checkpoints",
                "Checkpoints the bot's changes hold on hosts, by host group.",
                labels=["host_group"],
            ),
            "expired": GaugeMetricFamily(
                PREFIX + "expired_checkpoints",
                "Held checkpoints past their expiry (TTL), by host group.",
                labels=["host_group"],
            ),
            "size": GaugeMetricFamily(
                PREFIX + "active_checkpoint_bytes",
                "Total size of the held checkpoints (last sweep's sample), by host group.",
                labels=["host_group"],
            ),
            "oldest": GaugeMetricFamily(
                PREFIX + "oldest_checkpoint_age_seconds",
                "Age of the oldest held checkpoint, by host group (0 when none).",
                labels=["host_group"],
            ),
        }
        for group, t in sorted(totals.items()):
            families["count"].add_metric([group], t.count)
            families["expired"].add_metric([group], t.expired)
            families["size"].add_metric([group], t.size_bytes)
            families["oldest"].add_metric([group], t.oldest_seconds)
        yield from families.values()
        # What the bot's own gauges above leave out: checkpoints no change of
        # this bot owns (orphans made by hand, another deployment's), which
        # eat the same storage. As each host's last sweep saw them.
        orphans = GaugeMetricFamily(
            PREFIX + "unowned_checkpoints",
            "Checkpoints no change of this bot owns (orphans, another deployment's), "
            "as each host's last sweep saw them, by host group.",
            labels=["host_group"],
        )
        orphan_bytes = GaugeMetricFamily(
            PREFIX + "unowned_checkpoint_bytes",
            "Total size of the checkpoints no change of this bot owns, as each host's last "
            "sweep saw them, by host group.",
            labels=["host_group"],
        )
        groups = dict.fromkeys(inventory_groups(self.inventory), (0, 0))
        groups |= unowned_by_group(unowned, lambda h: host_group_of(self.inventory, h))
        for group, (count, size) in sorted(groups.items()):
            orphans.add_metric([group], count)
            orphan_bytes.add_metric([group], size)
        yield orphans
        yield orphan_bytes

    @staticmethod
    def _adopted_created(s: Session) -> dict[int, datetime]:
        """When the host made each adopted checkpoint (the adopt event's
        `created_at`, bot.service.adopt), by change id."""
        found: dict[int, datetime] = {}
        for change_id, details in s.exec(
            select(ChangeEvent.change_id, ChangeEvent.details).where(ChangeEvent.kind == "adopt")
        ).all():
            created = (details or {}).get("created_at")
            if isinstance(created, str):
                try:
                    found[change_id] = _utc(datetime.fromisoformat(created))
                except ValueError:
                    continue
        return found

    @staticmethod
    def _unowned_last_seen(s: Session) -> list[tuple[str, int, int]]:
        """(host, count, bytes) of the checkpoints each host's latest sweep
        sample holds that no change names."""
        last = (
            select(CheckpointSize.host, func.max(CheckpointSize.at).label("at"))
            .group_by(col(CheckpointSize.host))
            .subquery()
        )
        owned = select(Change.checkpoint_id).where(col(Change.checkpoint_id).is_not(None))
        rows = s.exec(
            select(
                CheckpointSize.host,
                func.count(),
                func.coalesce(func.sum(CheckpointSize.size_bytes), 0),
            )
            .join(
                last,
                (col(CheckpointSize.host) == last.c.host) & (col(CheckpointSize.at) == last.c.at),
            )
            .where(col(CheckpointSize.checkpoint_id).not_in(owned))
            .group_by(col(CheckpointSize.host))
        ).all()
        return [(host, int(count), int(size)) for host, count, size in rows]

    @staticmethod
    def _latest_sizes(s: Session, checkpoint_ids: list[str]) -> dict[str, int]:
        if not checkpoint_ids:
            return {}
        latest = (
            select(CheckpointSize.checkpoint_id, func.max(CheckpointSize.at).label("at"))
            .where(col(CheckpointSize.checkpoint_id).in_(checkpoint_ids))
            .group_by(col(CheckpointSize.checkpoint_id))
            .subquery()
        )
        rows = s.exec(
            select(CheckpointSize.checkpoint_id, CheckpointSize.size_bytes).join(
                latest,
                (col(CheckpointSize.checkpoint_id) == latest.c.checkpoint_id)
                & (col(CheckpointSize.at) == latest.c.at),
            )
        ).all()
        return dict(rows)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, doc, value=value)


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
