"""Plain snapshots of records for callers: no ORM objects leave the service."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from bot.hyperv.types import SnapshotType
from bot.store.models import Change, ChangeEvent, Job, change_ref


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@dataclass(frozen=True)
class EventView:
    seq: int
    at: datetime
    actor: str
    kind: str
    from_state: str | None
    to_state: str | None
    message: str
    details: dict[str, Any]

    @classmethod
    def of(cls, e: ChangeEvent) -> EventView:
        return cls(e.seq, e.at, e.actor, e.kind, e.from_state, e.to_state, e.message, e.details)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "at": _iso(self.at)}


@dataclass(frozen=True)
class JobView:
    id: int
    kind: str
    state: str
    attempt: int
    worker: str | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, j: Job) -> JobView:
        assert j.id is not None
        return cls(j.id, j.kind, j.state, j.attempt, j.worker, j.error, j.created_at, j.finished_at)

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "created_at": _iso(self.created_at),
            "finished_at": _iso(self.finished_at),
        }


@dataclass(frozen=True)
class ChangeView:
    id: int
    ref: str
    action: str
    state: str
    vm_name: str
    vm_id: str
    host: str
    checkpoint_type: str
    reason: str
    requester: str
    source: str
    created_at: datetime
    updated_at: datetime
    ttl_seconds: int
    expires_at: datetime | None
    checkpoint_id: str | None
    checkpoint_name: str | None
    decision: dict[str, Any]
    # The record's optimistic-lock version: buttons carry it, so a click on
    # an outdated message is recognised.
    version: int = 0
    events: tuple[EventView, ...] = ()
    jobs: tuple[JobView, ...] = field(default=())

    @classmethod
    def of(
        cls, c: Change, events: list[ChangeEvent] | None = None, jobs: list[Job] | None = None
    ) -> ChangeView:
        assert c.id is not None
        return cls(
            id=c.id,
            ref=change_ref(c.id),
            action=c.action,
            state=c.state,
            vm_name=c.vm_name,
            vm_id=c.vm_id,
            host=c.host,
            checkpoint_type=c.checkpoint_type,
            reason=c.reason,
            requester=c.requester,
            source=c.source,
            created_at=c.created_at,
            updated_at=c.updated_at,
            ttl_seconds=c.ttl_seconds,
            expires_at=c.expires_at,
            checkpoint_id=c.checkpoint_id,
            checkpoint_name=c.checkpoint_name,
            decision=dict(c.decision),
            version=c.version,
            events=tuple(EventView.of(e) for e in events or ()),
            jobs=tuple(JobView.of(j) for j in jobs or ()),
        )

    @property
    def last_error(self) -> str | None:
        for e in reversed(self.events):
            if e.kind.endswith("failed") or e.kind == "interrupt":
                return e.message
        return None

    @property
    def resolutions(self) -> tuple[str, ...]:
        """For an interrupted change the host could not settle: the outcomes
        a human may record, as the last `needs_human` event offered them."""
        if self.state != "interrupted":
            return ()
        for e in reversed(self.events):
            if e.to_state:
                return ()
            if e.kind == "needs_human":
                return tuple(str(x) for x in e.details.get("choices", ()))
        return ()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = _iso(self.created_at)
        data["updated_at"] = _iso(self.updated_at)
        data["expires_at"] = _iso(self.expires_at)
        data["events"] = [e.to_dict() for e in self.events]
        data["jobs"] = [j.to_dict() for j in self.jobs]
        return data


@dataclass(frozen=True)
class CheckpointRow:
    host: str
    vm_name: str
    vm_id: str
    id: str
    name: str
    parent_id: str | None
    depth: int
    created_at: datetime
    age_seconds: int
    size_bytes: int
    snapshot_type: str
    change_ref: str | None
    change_state: str | None

    @property
    def kind(self) -> str:
        # What the host calls it: Standard for production and standard
        # checkpoints alike (bot.hyperv.evidence tells them apart).
        return SnapshotType.read(self.snapshot_type).name.lower()

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "kind": self.kind, "created_at": _iso(self.created_at)}


@dataclass(frozen=True)
class HostProblem:
    host: str
    error: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
