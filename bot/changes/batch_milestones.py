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

A member interrupted (its host stopped answering mid-call, so whether it
did what was asked is unknown until the reconciler asks the host) is never
counted as failed: the end says "7 of 9 taken, 1 outcome unknown: WEB03 —
…", and the card, brought up to date with every member's step, says how
the reconciler settled it.

A member's request an approver rejected (its create, or a rollback, merge
or extension) is a step of that member the card alone would not tell: who
said no and why. `note_rejected` appends one `member_rejected` event per
rejection, naming the member, the rejecter and their reason (a person's
words, kept in the details apart from the bot's, so they are shown
escaped), once: under the same lock, `note_finished` appends them before
the end that counts them, and an event already naming a rejection is not
appended again. A rejection recorded long before the wave's members last
moved (`_TOLD_WITHIN`: a wave rejected before this was told, synced again
days later) is not told late.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, col, select

from bot.changes.batch_load import load_batch, rejection_in
from bot.changes.batch_record import batch_note
from bot.changes.batch_views import STARTS, BatchEventView, MemberView
from bot.changes.lifecycle import Command, State
from bot.domain import user_mention
from bot.store.tables import change_ref
from bot.store.tables.batches import Batch, BatchEvent
from bot.store.tables.changes import Change, ChangeEvent

# The event that ends each action of a wave (`STARTS` names the one that
# starts it).
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

# A member's request rejected by an approver, one reply each in the wave's
# thread (batch_event.kind).
REJECTED = "member_rejected"
# A rejection recorded this long before the latest step of any member of
# its wave is not told any more (see above).
_TOLD_WITHIN = timedelta(days=1)


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
    # Members whose create an approver rejected: said as rejected, not as
    # refused (a refusal is the policy's).
    rejected: int = 0
    # Members interrupted, their outcome unknown (VM, why): never failed.
    unknown: tuple[tuple[str, str], ...] = ()

    @property
    def ran(self) -> int:
        return len(self.done) + len(self.failed) + len(self.unknown)

    def message(self) -> str:
        """ "7 of 9 taken, 1 failed: WEB03 — VSS writer failed", then who asked."""
        text = f"{len(self.done)} of {self.ran} {_PAST[self.action]}"
        if self.failed:
            text += f", {len(self.failed)} failed: " + "; ".join(
                f"{vm} — {why}" for vm, why in self.failed
            )
        if self.unknown:
            text += f", {len(self.unknown)} outcome unknown: " + "; ".join(
                f"{vm} — {why}" for vm, why in self.unknown
            )
        if self.refused:
            text += f", {self.refused} refused"
        if self.rejected:
            text += f", {self.rejected} rejected"
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


def _failure(
    member: MemberView, action: str, failed_after: set[int], interrupted_after: set[int]
) -> bool:
    state = State(member.state)
    if state is State.FAILED:
        return True
    if state is State.INTERRUPTED or action == "create":
        return False  # interrupted: its outcome is unknown (`Finish.unknown`)
    # A restore or a merge that fails leaves the member where it was
    # (active): its failure event since the action started says it; so
    # does an interruption the reconciler since found it had not done.
    if member.change_id in failed_after:
        return True
    return member.change_id in interrupted_after and state not in _DONE[action]


def finish_of(s: Session, batch_id: int) -> Finish | None:
    """How the wave's latest action ended; None while it runs, when it
    was told already, or when it never ran on any member."""
    batch = load_batch(s, batch_id)
    starts = [e for e in batch.events if e.kind in STARTS]
    if not starts:
        return None
    start = starts[-1]
    action = STARTS[start.kind].value
    if any(e.kind == FINISHED[action] and e.seq > start.seq for e in batch.events):
        return None
    targets = _targets(start)
    if targets is None:
        return None
    members = [m for m in batch.members if m.change_id in targets]
    if any(State(m.state) in _BUSY[action] or m.waiting == action for m in members):
        return None
    since = s.exec(
        select(ChangeEvent.change_id, ChangeEvent.kind).where(
            col(ChangeEvent.change_id).in_(sorted(targets)),
            col(ChangeEvent.at) >= start.at,
            col(ChangeEvent.kind).like("%failed") | (col(ChangeEvent.kind) == "interrupt"),
        )
    ).all()
    failed_after = {change_id for change_id, kind in since if kind != "interrupt"}
    interrupted_after = {change_id for change_id, kind in since if kind == "interrupt"}
    done: list[str] = []
    failed: list[tuple[str, str]] = []
    unknown: list[tuple[str, str]] = []
    refused = withdrawn = not_run = rejected = 0
    for m in members:
        state = State(m.state)
        if state is State.INTERRUPTED:
            unknown.append((m.vm_name, m.note or "outcome unknown"))
        elif _failure(m, action, failed_after, interrupted_after):
            failed.append((m.vm_name, m.note or "failed"))
        elif state in _DONE[action]:
            done.append(m.vm_name)
        elif action == "create" and state is State.REJECTED:
            rejected += 1
        elif action == "create" and state in _REFUSED:
            refused += 1
        elif action == "create" and state is State.WITHDRAWN:
            withdrawn += 1
        else:
            not_run += 1
    asked_by = batch.requester if action == "create" else start.actor
    finish = Finish(
        action,
        start,
        tuple(done),
        tuple(failed),
        refused,
        not_run,
        asked_by,
        withdrawn,
        rejected,
        tuple(unknown),
    )
    return finish if finish.ran else None


def note_finished(s: Session, batch_id: int, *, now: datetime | None = None) -> bool:
    """Append the end of the wave's latest action if it just finished and
    is not told yet; True when this call appended it. Members rejected and
    not told yet are appended first (`note_rejected`), so the end never
    comes before a rejection it counts. Call after the members' changes
    were committed (their thread's sync)."""
    batch = s.exec(select(Batch).where(col(Batch.id) == batch_id).with_for_update()).one()
    note_rejected(s, batch)
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
            "unknown": dict(finish.unknown),
            "refused": finish.refused,
            "withdrawn": finish.withdrawn,
            "rejected": finish.rejected,
            "not_run": finish.not_run,
        },
    )
    return True


def _rejected_action(e: ChangeEvent) -> str:
    """What a rejection refused: a `reject` step its create (or what its
    details name), an `<action>_rejected` note that action."""
    if e.kind == Command.REJECT:
        return str((e.details or {}).get("action") or "create")
    return e.kind.removesuffix("_rejected")


def untold_rejections(s: Session, batch_id: int) -> list[tuple[Change, ChangeEvent]]:
    """Each rejection of a member's request its wave's history does not
    name yet, oldest first, leaving out those recorded more than
    `_TOLD_WITHIN` before the latest step of any member."""
    changes = {
        c.id: c for c in s.exec(select(Change).where(col(Change.batch_id) == batch_id)).all()
    }
    ids = sorted(i for i in changes if i is not None)
    if not ids:
        return []
    rows = s.exec(
        select(ChangeEvent)
        .where(
            col(ChangeEvent.change_id).in_(ids),
            (col(ChangeEvent.kind) == Command.REJECT.value)
            | col(ChangeEvent.kind).like("%rejected"),
        )
        .order_by(col(ChangeEvent.id))
    ).all()
    found = [
        e
        for e in rows
        if (e.kind == Command.REJECT and e.to_state == State.REJECTED)
        or e.kind.endswith("_rejected")
    ]
    if not found:
        return []  # the common case, every sync of a member
    told = {
        e.details.get("event")
        for e in s.exec(
            select(BatchEvent).where(
                col(BatchEvent.batch_id) == batch_id, col(BatchEvent.kind) == REJECTED
            )
        ).all()
    }
    latest = s.exec(
        select(func.max(col(ChangeEvent.at))).where(col(ChangeEvent.change_id).in_(ids))
    ).one()
    assert latest is not None
    return [
        (changes[e.change_id], e)
        for e in found
        if e.id not in told and latest - e.at <= _TOLD_WITHIN
    ]


def note_rejected(s: Session, batch: Batch) -> int:
    """Append one `member_rejected` event for each rejection of a member
    not told yet (`untold_rejections`); how many were appended. The caller
    holds the batch row's lock (`note_finished` takes it), so of two
    processes syncing the wave at once only the first appends."""
    assert batch.id is not None
    untold = untold_rejections(s, batch.id)
    for change, e in untold:
        assert change.id is not None
        action, rejected = _rejected_action(e), rejection_in(e)
        said = {"reason": rejected.reason} if rejected.reason else {}
        batch_note(
            s,
            batch,
            kind=REJECTED,
            actor=e.actor,
            actor_team=e.actor_team,
            now=e.at,
            # The bot's words; the rejecter's own (the reason) stay in the
            # details, shown escaped (templates/slack/batch_event.json.j2).
            message=(
                f"{change_ref(change.id)} ({change.vm_name} on {change.host}): "
                f"{action} rejected by {user_mention(rejected.by)}"
            ),
            details={
                "event": e.id,
                "change_id": change.id,
                "ref": change_ref(change.id),
                "vm": change.vm_name,
                "host": change.host,
                "action": action,
                "by": rejected.by,
                **said,
            },
        )
    return len(untold)
