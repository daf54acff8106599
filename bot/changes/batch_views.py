"""Plain snapshots of batches (`BatchView`, `MemberView`): what the service
hands its callers; no ORM object leaves the service."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.changes.batch_state import Action, BatchState, Tally, batch_state
from bot.changes.lifecycle import State
from bot.domain import WAVE_ACTIONS
from bot.store.tables import batch_ref, change_ref
from bot.store.tables.batches import Batch, BatchEvent
from bot.store.tables.changes import Change
from bot.wave_keys import MERGE_STATES, ROLLBACK_STATES, key_of, merge_item, value_of

# The batch event that starts each action of a wave (bot/changes/batch_milestones.py).
STARTS: dict[str, Action] = {
    "members_recorded": Action.CREATE,
    "rollback_started": Action.ROLLBACK,
    "rollback_awaits_approval": Action.ROLLBACK,
    "merge_started": Action.MERGE,
    "merge_awaits_approval": Action.MERGE,
}


def planned_run(c: Change) -> datetime | None:
    """When a scheduled change was planned to run, from its own record: the
    time its requester asked for (--at), else the opening of the change
    window its decision scheduled it for. Its queued job's due time, when
    there is one, is what a worker keeps to (`batch_load`)."""
    if c.run_at is not None:
        return c.run_at
    planned = c.decision.get("schedule_at") if isinstance(c.decision, dict) else None
    return datetime.fromisoformat(planned) if isinstance(planned, str) else None


@dataclass(frozen=True)
class MemberView:
    """One VM of a batch: its change, where it stands, what was taken."""

    change: str
    vm_name: str
    host: str
    state: str
    checkpoint_type: str
    taken_type: str | None
    checkpoint_id: str | None
    # Why it was refused, or what went wrong last; None when nothing did.
    note: str | None = None
    change_id: int = 0
    # What waits for approvers on this member (create, rollback, merge,
    # extend), if anything: approvers see the list before approving all.
    waiting: str | None = None
    # Who asked for what waits: only they may withdraw it.
    waiting_by: str | None = None
    # The checkpoint's size at the last sweep (bot.service.sweep); None
    # before the first sample.
    size_bytes: int | None = None
    # What the card's per-VM buttons need: the record's version (a click on
    # an outdated card is recognised), whether the checkpoint holds memory
    # (what a restore does to the VM) and the VM's state after a rollback.
    version: int = 0
    holds_memory: bool | None = None
    vm_state_after: str | None = None
    # When a scheduled member runs: its queued create job's due time (else
    # what its change asked for, or its window's opening); None when it is
    # not scheduled. `run_asked`: its requester asked for that time (--at);
    # else its change window opens then.
    run_at: datetime | None = None
    run_asked: bool = False
    # A rejected member: who rejected its create and why, in their own
    # words ("" when they gave none). Shown apart from `note` (which says
    # both in plain text): the rejecter as a mention, the reason escaped.
    rejected_by: str | None = None
    rejected_reason: str | None = None
    # Its lifetime once taken (a wave asked for without --ttl gives each
    # member its own scope's policy default).
    ttl_seconds: int | None = None

    @property
    def ref(self) -> str:
        return self.change

    @property
    def needs_start(self) -> bool:
        return self.state == "rolled_back" and self.vm_state_after in ("Off", "Saved")

    @property
    def resolutions(self) -> tuple[str, ...]:
        # An interrupted member is settled from its own record (`change
        # show`), not from the wave's card.
        return ()

    @classmethod
    def of(
        cls,
        c: Change,
        note: str | None = None,
        *,
        rejected_by: str | None = None,
        rejected_reason: str | None = None,
    ) -> MemberView:
        assert c.id is not None
        scheduled = c.state == State.SCHEDULED
        return cls(
            change=change_ref(c.id),
            vm_name=c.vm_name,
            host=c.host,
            state=c.state,
            checkpoint_type=c.checkpoint_type,
            taken_type=c.taken_type,
            checkpoint_id=c.checkpoint_id,
            note=note,
            change_id=c.id,
            version=c.version,
            holds_memory=c.holds_memory,
            vm_state_after=c.vm_state_after,
            run_at=planned_run(c) if scheduled else None,
            run_asked=scheduled and c.run_at is not None,
            rejected_by=rejected_by,
            rejected_reason=rejected_reason,
            ttl_seconds=c.ttl_seconds,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "change": self.change,
            "vm": self.vm_name,
            "host": self.host,
            "state": self.state,
            "checkpoint_type": self.checkpoint_type,
            "taken_type": self.taken_type,
            "checkpoint_id": self.checkpoint_id,
            "note": self.note,
            "rejected_by": self.rejected_by,
            "rejected_reason": self.rejected_reason,
            "waiting_for_approval": self.waiting,
            "waiting_asked_by": self.waiting_by,
            "size_bytes": self.size_bytes,
            "run_at": self.run_at.isoformat() if self.run_at else None,
        }


@dataclass(frozen=True)
class BatchEventView:
    seq: int
    at: datetime
    actor: str
    kind: str
    message: str
    details: dict[str, Any]

    @classmethod
    def of(cls, e: BatchEvent) -> BatchEventView:
        return cls(e.seq, e.at, e.actor, e.kind, e.message, dict(e.details))

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "kind": self.kind,
            "message": self.message,
            "details": self.details,
        }


@dataclass(frozen=True)
class BatchView:
    id: int
    ref: str
    requester: str
    reason: str
    checkpoint_type: str
    ttl_seconds: int
    selection: dict[str, Any]
    source: str
    created_at: datetime
    members: tuple[MemberView, ...]
    events: tuple[BatchEventView, ...] = ()
    # Members with a request waiting for approvers (a create, a rollback, …).
    awaiting: int = 0
    # When the wave was asked to run (`--at`); None: at once.
    run_at: datetime | None = None
    # Every pending approval request of its members (ids): what an Approve
    # all drawn now is for (bot/wave_keys.py).
    pending_requests: tuple[int, ...] = ()

    @classmethod
    def of(
        cls,
        b: Batch,
        members: list[MemberView],
        events: list[BatchEvent] | None = None,
        awaiting: int = 0,
        pending_requests: tuple[int, ...] = (),
    ) -> BatchView:
        assert b.id is not None
        return cls(
            id=b.id,
            ref=batch_ref(b.id),
            requester=b.requester,
            reason=b.reason,
            checkpoint_type=b.checkpoint_type,
            ttl_seconds=b.ttl_seconds,
            selection=dict(b.selection),
            source=b.source,
            created_at=b.created_at,
            members=tuple(members),
            events=tuple(BatchEventView.of(e) for e in events or ()),
            awaiting=awaiting,
            run_at=b.run_at,
            pending_requests=pending_requests,
        )

    @property
    def lifetimes(self) -> tuple[int, int]:
        """The shortest and longest lifetime of its members that are not
        refused (the wave's recorded one when it has none): one value when
        the wave was asked for with --ttl or its VMs share a policy default."""
        ended = ("denied", "rejected", "withdrawn")
        found = [m.ttl_seconds for m in self.members if m.ttl_seconds and m.state not in ended] or [
            self.ttl_seconds
        ]
        return min(found), max(found)

    @property
    def recorded(self) -> bool:
        """Whether its create has recorded every member it will (the
        `members_recorded` event): until then its card lists only some."""
        return any(e.kind == "members_recorded" for e in self.events)

    def shown_items(self, verb: str) -> tuple[str, ...]:
        """What a `verb` button drawn from this view is for
        (bot/wave_keys.py)."""
        if verb == "rollback":
            return tuple(m.change for m in self.members if m.state in ROLLBACK_STATES)
        if verb == "merge":
            return tuple(
                merge_item(m.change, m.state) for m in self.members if m.state in MERGE_STATES
            )
        if verb == "approve":
            return tuple(str(r) for r in self.pending_requests)
        if verb == "withdraw":
            return tuple(f"{m.change}:{action}:{by}" for m, action, by in self.withdrawals)
        raise ValueError(f"a wave's card has no '{verb}' button")

    def button_value(self, verb: str) -> str:
        """The value of the card's `verb` button, bound to what it shows now."""
        return value_of(self.ref, verb, self.shown_items(verb))

    def shows_as_drawn(self, verb: str, key: str) -> bool:
        """Whether a `verb` button drawn with `key` showed the wave as it is."""
        return key_of(verb, self.shown_items(verb)) == key

    @property
    def state(self) -> BatchState:
        return batch_state(State(m.state) for m in self.members)

    @property
    def action(self) -> Action:
        """The wave's latest action that went ahead (its create until a Roll
        back all or a Keep & merge all started, or was approved): what its
        progress line counts. One still waiting for an approver, withdrawn
        or refused leaves the line on the action before it: nothing of it
        was done, and "0 of 3 rolled back" would say otherwise."""
        action, asked = Action.CREATE, None
        for e in self.events:
            if e.kind.endswith("_awaits_approval") and e.kind in STARTS:
                asked = STARTS[e.kind]
            elif e.kind in STARTS:
                action, asked = STARTS[e.kind], None
            elif e.kind == "approved" and asked is not None:
                action, asked = asked, None
            elif e.kind == "withdrawn" or e.kind.endswith("_refused"):
                asked = None
        return action

    @property
    def tally(self) -> Tally:
        return Tally.of((State(m.state) for m in self.members), self.action)

    @property
    def withdrawable(self) -> tuple[MemberView, ...]:
        """Members with a request that has not run and may still be taken
        back (`batch withdraw`): scheduled, or waiting for the approval of
        their checkpoint, or of the wave's rollback or merge."""
        return tuple(m for m, _action, _by in self.withdrawals)

    @property
    def withdrawals(self) -> tuple[tuple[MemberView, str, str], ...]:
        """Each withdrawable member with what would be withdrawn (create,
        rollback or merge) and who asked for it, the one who may: the
        wave's requester for its checkpoints, whoever asked for the wave's
        rollback or merge for those. A single member's extend is not the
        wave's to take back (`checkpoint withdraw CHG-n` is)."""
        found: list[tuple[MemberView, str, str]] = []
        for m in self.members:
            if m.state in (State.SCHEDULED, State.AWAITING_APPROVAL):
                found.append((m, "create", self.requester))
            elif m.waiting in WAVE_ACTIONS and m.waiting_by is not None:
                found.append((m, m.waiting, m.waiting_by))
        return tuple(found)

    @property
    def withdraw_effect(self) -> str:
        """What withdrawing all that waits leaves undone, for the card's
        confirmation: `nothing is taken on WEB01, WEB02; APP01 is not rolled
        back`."""
        said: list[str] = []
        for action, words in (("create", ""), ("rollback", "rolled back"), ("merge", "merged")):
            vms = [m.vm_name for m, asked, _by in self.withdrawals if asked == action]
            if not vms:
                continue
            if action == "create":
                said.append(f"nothing is taken on {', '.join(vms)}")
            else:
                said.append(f"{', '.join(vms)} {'is' if len(vms) == 1 else 'are'} not {words}")
        return "; ".join(said)

    @property
    def progress(self) -> str:
        return self.tally.describe()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ref": self.ref,
            "state": self.state.value,
            "progress": self.progress,
            "requester": self.requester,
            "reason": self.reason,
            "checkpoint_type": self.checkpoint_type,
            "ttl_seconds": self.ttl_seconds,
            "selection": self.selection,
            "source": self.source,
            "created_at": self.created_at.isoformat(),
            "members": [m.to_dict() for m in self.members],
            "events": [e.to_dict() for e in self.events],
            "awaiting_approval": self.awaiting,
            "run_at": self.run_at.isoformat() if self.run_at else None,
        }
