"""The end of a wave's action as one event of the batch: "8 of 8 taken",
"7 of 9 taken, 1 failed: WEB03 — …" (docs/batches.md, "In Slack").

A wave's create, its Roll back all and its Keep & merge all each start
with a batch event naming the members they act on (`targets` in its
details: `members_recorded`, `rollback_started`/`_awaits_approval`,
`merge_started`/`_awaits_approval`). Once none of those members is still
on its way (waiting, queued, at work), the action has finished and
`note_finished` appends `create_finished` / `rollback_finished` /
`merge_finished` with the outcome, once: the batch row is locked first
(SQLite: every write transaction begins IMMEDIATE, bot/store/db.py;
PostgreSQL: `SELECT … FOR UPDATE`, after which each statement of the
transaction sees what other transactions committed meanwhile,
https://www.postgresql.org/docs/current/transaction-iso.html#XACT-READ-COMMITTED),
so of two processes seeing the last member end, the second finds the
first's event and adds none. Its reply in the wave's thread is then
claimed on `batch_event.slack_ts` like every milestone (bot/notify/thread.py).

Events written before `targets` existed name no members: they get no
finish event (an old wave is not told it finished long after it did).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from bot.changes.batch_load import load_batch
from bot.changes.batch_record import batch_note
from bot.changes.batch_views import BatchEventView, MemberView
from bot.changes.lifecycle import State
from bot.domain import user_mention
from bot.store.tables.batches import Batch
from bot.store.tables.changes import ChangeEvent

# The event that starts each action of a wave, and the one that ends it.
STARTS: dict[str, str] = {
    "members_recorded": "create",
    "rollback_started": "rollback",
    "rollback_awaits_approval": "rollback",
    "merge_started": "merge",
    "merge_awaits_approval": "merge",
}
FINISHED: dict[str, str] = {
    "create": "create_finished",
    "rollback": "rollback_finished",
    "merge": "merge_finished",
}

# A member still on its way for the action (its job waits, runs, or its
# request waits for approvers).
_BUSY: dict[str, frozenset[State]] = {
    "create": frozenset(
        {
            State.REQUESTED,
            State.AWAITING_APPROVAL,
            State.APPROVED,
            State.SCHEDULED,
            State.CREATING,
        }
    ),
    "rollback": frozenset({State.ROLLING_BACK}),
    "merge": frozenset({State.MERGING}),
}
# Where a member stands once the action did what it was asked (a member
# rolled back and then merged by hand was rolled back all the same).
_DONE: dict[str, frozenset[State]] = {
    "create": frozenset(
        {State.ACTIVE, State.ROLLING_BACK, State.ROLLED_BACK, State.MERGING, State.MERGED}
        | {State.VANISHED}
    ),
    "rollback": frozenset({State.ROLLED_BACK, State.MERGING, State.MERGED}),
    "merge": frozenset({State.MERGED, State.VANISHED}),
}
_REFUSED = frozenset({State.DENIED, State.REJECTED, State.EXPIRED})
_PAST = {"create": "taken", "rollback": "rolled back", "merge": "merged"}


@dataclass(frozen=True)
class Finish:
    """How one action of a wave ended."""

    action: str
    start: BatchEventView
    done: tuple[str, ...]
    failed: tuple[tuple[str, str], ...]
    refused: int
    # Targets the action never ran on (an approval rejected, moved on meanwhile).
    not_run: int
    # Who asked for the action: the wave's requester for its create.
    asked_by: str
    # Members whose create its requester took back before it ran: said as
    # withdrawn, never as refused (nobody refused them).
    withdrawn: int = 0

    @property
    def ran(self) -> int:
        return len(self.done) + len(self.failed)

    def message(self) -> str:
        """ "7 of 9 taken, 1 failed: WEB03 — VSS writer failed", then who asked."""
        text = f"{len(self.done)} of {self.ran} {_PAST[self.action]}"
        if self.failed:
            text += f", {len(self.failed)} failed: " + "; ".join(
                f"{vm} — {why}" for vm, why in self.failed
            )
        if self.refused:
            text += f", {self.refused} refused"
        if self.withdrawn:
            text += f", {self.withdrawn} withdrawn"
        if self.not_run:
            text += f", {self.not_run} not run"
        return text + f" (asked by {user_mention(self.asked_by)})"


def _targets(start: BatchEventView) -> set[int] | None:
    found = start.details.get("targets")
    if not isinstance(found, list):
        return None
    return {int(t) for t in found}


def _failure(member: MemberView, action: str, failed_after: set[int]) -> bool:
    state = State(member.state)
    if state in (State.FAILED, State.INTERRUPTED):
        return True
    # A restore or a merge that fails leaves the member where it was
    # (active): its failure event since the action started says it.
    return action != "create" and member.change_id in failed_after


def finish_of(s: Session, batch_id: int) -> Finish | None:
    """How the wave's latest action ended; None while it runs, when it
    was told already, or when it never ran on any member."""
    batch = load_batch(s, batch_id)
    starts = [e for e in batch.events if e.kind in STARTS]
    if not starts:
        return None
    start = starts[-1]
    action = STARTS[start.kind]
    if any(e.kind == FINISHED[action] and e.seq > start.seq for e in batch.events):
        return None
    targets = _targets(start)
    if targets is None:
        return None
    members = [m for m in batch.members if m.change_id in targets]
    if any(State(m.state) in _BUSY[action] or m.waiting == action for m in members):
        return None
    failed_after = set(
        s.exec(
            select(ChangeEvent.change_id).where(
                col(ChangeEvent.change_id).in_(sorted(targets)),
                col(ChangeEvent.at) >= start.at,
                col(ChangeEvent.kind).like("%failed") | (col(ChangeEvent.kind) == "interrupt"),
            )
        ).all()
    )
    done: list[str] = []
    failed: list[tuple[str, str]] = []
    refused = withdrawn = not_run = 0
    for m in members:
        state = State(m.state)
        if _failure(m, action, failed_after):
            failed.append((m.vm_name, m.note or "failed"))
        elif state in _DONE[action]:
            done.append(m.vm_name)
        elif action == "create" and state in _REFUSED:
            refused += 1
        elif action == "create" and state is State.WITHDRAWN:
            withdrawn += 1
        else:
            not_run += 1
    asked_by = batch.requester if action == "create" else start.actor
    finish = Finish(
        action, start, tuple(done), tuple(failed), refused, not_run, asked_by, withdrawn
    )
    return finish if finish.ran else None


def note_finished(s: Session, batch_id: int, *, now: datetime | None = None) -> bool:
    """Append the end of the wave's latest action if it just finished and
    is not told yet; True when this call appended it. Call after the
    members' changes were committed (their thread's sync)."""
    batch = s.exec(select(Batch).where(col(Batch.id) == batch_id).with_for_update()).one()
    finish = finish_of(s, batch_id)
    if finish is None:
        return False
    if now is None:
        # When the last member's step was recorded: the event tells when the
        # action ended, whichever process notices it and however late.
        now = s.exec(
            select(func.max(col(ChangeEvent.at))).where(
                col(ChangeEvent.change_id).in_(sorted(_targets(finish.start) or ()))
            )
        ).one()
        assert now is not None
    batch_note(
        s,
        batch,
        kind=FINISHED[finish.action],
        actor="bot",
        now=now,
        message=finish.message(),
        details={
            "action": finish.action,
            "started": finish.start.seq,
            "done": list(finish.done),
            "failed": dict(finish.failed),
            "refused": finish.refused,
            "withdrawn": finish.withdrawn,
            "not_run": finish.not_run,
        },
    )
    return True
