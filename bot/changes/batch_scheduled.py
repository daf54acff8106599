"""The members of a wave that wait for their time, told once in its thread.

An approved member outside its change window (or asked for `--at` a
time) is `scheduled`: its create job waits for that moment. A member has
no thread of its own, and the wave's create is told only when it ends
("8 of 9 taken", bot/changes/batch_milestones.py), so its thread said
nothing of a member that waits, perhaps for days. `note_scheduled`
appends one `members_scheduled` event naming each such member and when it
runs; its reply is posted with the other milestones (bot/notify/thread.py).

Once: members already named by an earlier such event are not named
again, and the batch row is locked first (as `note_finished` does), so of
two processes syncing the wave at once only the first appends. All at
once: nothing is told while the wave's create is still being decided (a
member still waits for its approval or is not recorded yet) unless the
wave's approval was given, so an "Approve all" that approves member after
member is told in one reply, not one per member.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from bot.changes.batch_load import due_times, load_batch
from bot.changes.batch_record import batch_note
from bot.changes.batch_views import BatchEventView, BatchView, MemberView
from bot.changes.lifecycle import State
from bot.clock import utc_text
from bot.store.tables.batches import Batch
from bot.store.tables.changes import Change, ChangeEvent

SCHEDULED = "members_scheduled"
# A member whose create is still being decided.
_DECIDING = frozenset({State.REQUESTED, State.AWAITING_APPROVAL})


@dataclass(frozen=True)
class Waits:
    """One member waiting for its time."""

    change_id: int
    ref: str
    vm: str
    at: datetime
    # Its requester asked for that time (`--at`); else its change window opens then.
    asked: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "change_id": self.change_id,
            "ref": self.ref,
            "vm": self.vm,
            "at": self.at.isoformat(),
            "asked": self.asked,
        }

    def words(self) -> str:
        why = "as asked" if self.asked else "when its change window opens"
        return f"{self.vm} ({self.ref}) runs at {utc_text(self.at)}, {why}"


def _create_start(batch: BatchView) -> BatchEventView | None:
    starts = [e for e in batch.events if e.kind == "members_recorded"]
    return starts[-1] if starts else None


def _told(batch: BatchView) -> set[int]:
    return {
        int(m["change_id"])
        for e in batch.events
        if e.kind == SCHEDULED
        for m in e.details.get("members") or ()
        if isinstance(m, dict) and "change_id" in m
    }


def _decided(batch: BatchView, start: BatchEventView, members: list[MemberView]) -> bool:
    approved = any(e.kind == "approved" and e.seq > start.seq for e in batch.events)
    return approved or not any(State(m.state) in _DECIDING for m in members)


def _waits(s: Session, member: MemberView) -> Waits | None:
    """When the member's create job runs and why; None when it has no
    create job waiting (it is starting this very moment)."""
    runs = due_times(s, [member.change_id]).get(member.change_id)
    if runs is None:
        return None
    by = s.exec(
        select(ChangeEvent.actor)
        .where(col(ChangeEvent.change_id) == member.change_id, col(ChangeEvent.kind) == "schedule")
        .order_by(col(ChangeEvent.seq).desc())
    ).first()
    # The policy schedules for a window; a requester's `--at` is theirs.
    asked = by is not None and by != "policy"
    return Waits(member.change_id, member.ref, member.vm_name, runs, asked)


def untold(s: Session, batch_id: int) -> list[Waits]:
    """The wave's scheduled members its thread has not named yet, once its
    create is decided; [] otherwise."""
    batch = load_batch(s, batch_id)
    start = _create_start(batch)
    targets = (start.details.get("targets") if start is not None else None) or []
    if start is None or not isinstance(targets, list):
        return []
    members = [m for m in batch.members if m.change_id in {int(t) for t in targets}]
    if not _decided(batch, start, members):
        return []
    told = _told(batch)
    found = [
        _waits(s, m) for m in members if m.state == State.SCHEDULED and m.change_id not in told
    ]
    return [w for w in found if w is not None]


def _any_scheduled(s: Session, batch_id: int) -> bool:
    found = s.exec(
        select(Change.id).where(
            col(Change.batch_id) == batch_id, col(Change.state) == State.SCHEDULED.value
        )
    ).first()
    return found is not None


def note_scheduled(s: Session, batch_id: int, *, now: datetime) -> bool:
    """Append which members wait for their time, if any is untold; True
    when this call appended it. Call after the members' changes were
    committed (their thread's sync)."""
    if not _any_scheduled(s, batch_id):
        return False  # the common case, every sync of a member: no lock taken
    batch = s.exec(select(Batch).where(col(Batch.id) == batch_id).with_for_update()).one()
    waits = untold(s, batch_id)
    if not waits:
        return False
    batch_note(
        s,
        batch,
        kind=SCHEDULED,
        actor="bot",
        now=now,
        message="; ".join(w.words() for w in waits),
        details={"members": [w.to_dict() for w in waits]},
    )
    return True
