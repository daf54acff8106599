"""A batch's state: a pure function of its members' states.

A batch stores no state of its own, so it can never disagree with its
members. Each member's state falls into one `Part`; the batch's state
follows from the parts, first rule that holds wins (docs/batches.md,
"The batch's state"):

    no members                               → empty
    every member refused                     → refused
    every member refused or withdrawn        → withdrawn
    (the refused and withdrawn members set aside, of the others:)
    any pending or running                   → running
    any awaiting approval                    → awaiting_approval
    any scheduled (waiting for its time)     → scheduled
    any interrupted (outcome unknown)        → interrupted
    all failed                               → failed
    any failed                               → partly_failed
    all active                               → active
    all rolled back                          → rolled_back
    all ended (merged, vanished)             → done
    otherwise (e.g. 7 rolled back, 1 active) → mixed

Refused members (denied, rejected, expired) never ran, so they neither hold
a batch back nor make it fail: "10 VMs, 2 refused, 8 active" is active.
Withdrawn members never ran either, but nobody refused them: their
requester took them back, so they are counted (and a wave of nothing else
is named) as withdrawn, never as refused.

An interrupted member's outcome is unknown: its host stopped answering
mid-call, maybe after it did what was asked (seen: a checkpoint taken, the
answer lost), and the reconciler asks the host how it ended. It is neither
done nor failed until then: it is counted as "1 outcome unknown", and the
wave is `interrupted` (never `partly_failed` on its account) until no
member is. A member that did fail beside it is still said as failed.

The progress line counts each member once, in the words of its part:
"7 of 9 done, 1 failed, 2 refused, 1 withdrawn": "done" is what did what
it was asked (never a failure), out of the members taking part. What was
asked is the wave's latest action (`Action`): its create ("done": taken),
a Roll back all ("24 of 40 rolled back, 13 not rolled back, 3 failed") or
a Keep & merge all ("6 of 9 merged, 2 not merged"). A member is done only
in a state that action leaves it in (`DID`); any other settled member that
did not fail is said in its own words (`LEFT`), never as done.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from bot.changes.lifecycle import State


class Part(enum.StrEnum):
    """What a member's state means for its batch."""

    REFUSED = "refused"
    # Rejected by an approver: set aside like a refusal (the policy's), but
    # said as what it is, a person's decision.
    REJECTED = "rejected"
    # Taken back by its requester before it ran: set aside like a refusal,
    # but said as what it is.
    WITHDRAWN = "withdrawn"
    WAITING = "waiting"
    PENDING = "pending"
    # Waiting for its time (`--at`) or its change window to open.
    SCHEDULED = "scheduled"
    RUNNING = "running"
    ACTIVE = "active"
    ROLLED_BACK = "rolled_back"
    ENDED = "ended"
    FAILED = "failed"
    # Interrupted: the host may have done it; the reconciler asks it. Said
    # as what single changes say of it ("outcome unknown"), never failed.
    UNKNOWN = "outcome unknown"


PART_OF: dict[State, Part] = {
    State.DENIED: Part.REFUSED,
    State.REJECTED: Part.REJECTED,
    State.EXPIRED: Part.REFUSED,
    State.WITHDRAWN: Part.WITHDRAWN,
    State.AWAITING_APPROVAL: Part.WAITING,
    State.REQUESTED: Part.PENDING,
    State.APPROVED: Part.PENDING,
    State.SCHEDULED: Part.SCHEDULED,
    State.CREATING: Part.RUNNING,
    State.MERGING: Part.RUNNING,
    State.ROLLING_BACK: Part.RUNNING,
    State.ACTIVE: Part.ACTIVE,
    State.ROLLED_BACK: Part.ROLLED_BACK,
    State.MERGED: Part.ENDED,
    State.VANISHED: Part.ENDED,
    State.FAILED: Part.FAILED,
    # Until 2026-12-06 counted with the failures, so a wave whose member's
    # host took the checkpoint and then went quiet read "1 failed" and
    # "partly failed", and seconds later, reconciled, "6 of 6 done".
    State.INTERRUPTED: Part.UNKNOWN,
}


class BatchState(enum.StrEnum):
    EMPTY = "empty"
    REFUSED = "refused"
    WITHDRAWN = "withdrawn"
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    SCHEDULED = "scheduled"
    # A member's outcome is unknown (interrupted) until the reconciler asks
    # its host: what the wave comes to is not known yet either.
    INTERRUPTED = "interrupted"
    FAILED = "failed"
    PARTLY_FAILED = "partly_failed"
    ACTIVE = "active"
    ROLLED_BACK = "rolled_back"
    DONE = "done"
    MIXED = "mixed"


class Action(enum.StrEnum):
    """A wave's action, the one its progress line is about: its create
    (until a Roll back all or a Keep & merge all), then the latest of those."""

    CREATE = "create"
    ROLLBACK = "rollback"
    MERGE = "merge"


# Where a member stands once the action did what it was asked: the create
# took its checkpoint (whatever became of it since), a rollback restored it,
# a merge ended it (merged, or its checkpoint already gone). A member merged
# or vanished after a Roll back all may never have been restored: it is
# said as merged or vanished, not as rolled back.
DID: dict[Action, frozenset[State]] = {
    Action.CREATE: frozenset({State.ACTIVE, State.ROLLED_BACK, State.MERGED, State.VANISHED}),
    Action.ROLLBACK: frozenset({State.ROLLED_BACK}),
    Action.MERGE: frozenset({State.MERGED, State.VANISHED}),
}
# The progress line's word for those members.
DONE_WORD: dict[Action, str] = {
    Action.CREATE: "done",
    Action.ROLLBACK: "rolled back",
    Action.MERGE: "merged",
}
# Settled members the action did not do, that did not fail either, each
# group in its own words, in this order.
LEFT: dict[Action, tuple[tuple[str, frozenset[State]], ...]] = {
    Action.CREATE: (),
    Action.ROLLBACK: (
        ("not rolled back", frozenset({State.ACTIVE})),
        ("merged", frozenset({State.MERGED})),
        ("vanished", frozenset({State.VANISHED})),
    ),
    Action.MERGE: (("not merged", frozenset({State.ACTIVE, State.ROLLED_BACK})),),
}

# Members that never took part: set aside when the batch's state is derived.
ASIDE = frozenset({Part.REFUSED, Part.REJECTED, Part.WITHDRAWN})
# Members whose step is not over yet.
BUSY = frozenset({Part.PENDING, Part.SCHEDULED, Part.RUNNING, Part.WAITING})
# "all <part>" → the batch state it makes, in the order the rules apply.
_ALL = ((Part.ACTIVE, BatchState.ACTIVE), (Part.ROLLED_BACK, BatchState.ROLLED_BACK))


def batch_state(members: Iterable[State]) -> BatchState:
    """The batch's state from its members' states (the table above)."""
    parts = [PART_OF[State(m)] for m in members]
    if not parts:
        return BatchState.EMPTY
    live = [p for p in parts if p not in ASIDE]
    if not live:
        return BatchState.WITHDRAWN if Part.WITHDRAWN in parts else BatchState.REFUSED
    present = set(live)
    if present & {Part.PENDING, Part.RUNNING}:
        return BatchState.RUNNING
    if Part.WAITING in present:
        return BatchState.AWAITING_APPROVAL
    if Part.SCHEDULED in present:
        return BatchState.SCHEDULED
    if Part.UNKNOWN in present:
        return BatchState.INTERRUPTED
    if present == {Part.FAILED}:
        return BatchState.FAILED
    if Part.FAILED in present:
        return BatchState.PARTLY_FAILED
    for part, state in _ALL:
        if present == {part}:
            return state
    if present == {Part.ENDED}:
        return BatchState.DONE
    return BatchState.MIXED


@dataclass(frozen=True)
class Tally:
    """How many members are in each state, and the wave's action the
    progress line is about: "7 of 9 done, 1 failed", "24 of 40 rolled back,
    13 not rolled back, 3 failed"."""

    counts: dict[State, int]
    action: Action = Action.CREATE

    @classmethod
    def of(cls, members: Iterable[State], action: Action = Action.CREATE) -> Tally:
        return cls(dict(Counter(State(m) for m in members)), Action(action))

    def count(self, part: Part) -> int:
        return sum(n for state, n in self.counts.items() if PART_OF[state] is part)

    def _of(self, states: frozenset[State]) -> int:
        return sum(self.counts.get(s, 0) for s in states)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def taking_part(self) -> int:
        """Members that were neither refused nor withdrawn."""
        return self.total - sum(self.count(p) for p in ASIDE)

    @property
    def settled(self) -> int:
        """Members whose last step is over (nothing pending, scheduled,
        running or waiting, and not of unknown outcome), whether it went
        well or failed."""
        return self.taking_part - sum(self.count(p) for p in BUSY) - self.count(Part.UNKNOWN)

    @property
    def done(self) -> int:
        """Members the wave's action did what it asked of (`DID`): settled,
        not failed, and where that action leaves a member."""
        return self._of(DID[self.action])

    @property
    def left(self) -> tuple[tuple[str, int], ...]:
        """Settled members the action did not do and that did not fail, by
        their words: (("not rolled back", 13),)."""
        return tuple((word, self._of(states)) for word, states in LEFT[self.action])

    def describe(self) -> str:
        """ "7 of 9 done, 1 failed, 1 outcome unknown, 2 refused, 1 rejected,
        1 withdrawn" (after a Roll back all: "24 of 40 rolled back, 13 not
        rolled back, 3 failed"); a wave none of whose members took part is only what
        became of them ("1 refused, 3 withdrawn"), never "0 of 0 done"."""
        said = []
        if self.taking_part:
            said.append(f"{self.done} of {self.taking_part} {DONE_WORD[self.action]}")
        said += [f"{n} {word}" for word, n in self.left if n]
        for part in (Part.FAILED, Part.UNKNOWN, Part.REFUSED, Part.REJECTED, Part.WITHDRAWN):
            if n := self.count(part):
                said.append(f"{n} {part.value}")
        return ", ".join(said)
