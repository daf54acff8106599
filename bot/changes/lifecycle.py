"""The lifecycle of a checkpoint change: a pure transition table.

    requested ──► denied | awaiting_approval | approved
    requested ──► active                     (a human adopts an orphan checkpoint)
    awaiting_approval ──► approved | rejected | withdrawn | expired | denied
    approved ──► scheduled | creating | denied | expired | failed
    scheduled ──► creating | denied | expired | failed | withdrawn
    creating ──► active | failed
    active ──► merging ──► merged            (keep the change)
    active ──► rolling_back ──► rolled_back  (restore the checkpoint)
    rolled_back ──► merging | active
    creating | merging | rolling_back ──► interrupted ──► (reconciled)
    active | rolled_back | merging | rolling_back | interrupted
                                  ──► vanished   (the host no longer has it)

A failed restore or merge returns the change to `active`: the checkpoint is
still there, and the failure is an event in the record. `interrupted` means
the outcome is unknown (a worker died); only reconciliation against the host
leaves it. `vanished` is where a change ends when the host answered and its
checkpoint is gone (deleted in Hyper-V Manager, the host rebuilt): nothing
is left to merge or roll back, so nothing is chased any more.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class State(enum.StrEnum):
    REQUESTED = "requested"
    DENIED = "denied"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    SCHEDULED = "scheduled"
    CREATING = "creating"
    ACTIVE = "active"
    FAILED = "failed"
    MERGING = "merging"
    MERGED = "merged"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    INTERRUPTED = "interrupted"
    VANISHED = "vanished"
    # The requester took their own request back before anyone decided it.
    WITHDRAWN = "withdrawn"


class Command(enum.StrEnum):
    DENY = "deny"
    REQUEST_APPROVAL = "request_approval"
    ADOPT = "adopt"
    APPROVE = "approve"
    REJECT = "reject"
    EXPIRE = "expire"
    SCHEDULE = "schedule"
    START_CREATE = "start_create"
    CREATED = "created"
    CREATE_FAILED = "create_failed"
    START_MERGE = "start_merge"
    MERGED = "merged"
    MERGE_FAILED = "merge_failed"
    START_ROLLBACK = "start_rollback"
    ROLLED_BACK = "rolled_back"
    ROLLBACK_FAILED = "rollback_failed"
    RESUME = "resume"
    INTERRUPT = "interrupt"
    RECONCILE_ACTIVE = "reconcile_active"
    RECONCILE_FAILED = "reconcile_failed"
    RECONCILE_MERGED = "reconcile_merged"
    RECONCILE_ROLLED_BACK = "reconcile_rolled_back"
    VANISH = "vanish"
    WITHDRAW = "withdraw"
    TAKE_BACK = "take_back"


S, C = State, Command

TRANSITIONS: dict[Command, dict[State, State]] = {
    C.DENY: {
        S.REQUESTED: S.DENIED,
        S.AWAITING_APPROVAL: S.DENIED,
        S.APPROVED: S.DENIED,
        S.SCHEDULED: S.DENIED,
    },
    C.REQUEST_APPROVAL: {S.REQUESTED: S.AWAITING_APPROVAL},
    # The checkpoint already exists (the sweep found it, no change owned it).
    C.ADOPT: {S.REQUESTED: S.ACTIVE},
    C.APPROVE: {S.REQUESTED: S.APPROVED, S.AWAITING_APPROVAL: S.APPROVED},
    C.REJECT: {S.AWAITING_APPROVAL: S.REJECTED},
    # A scheduled create (`--at`, or a change window) is withdrawn before
    # its job starts, or an approved one whose command was interrupted
    # (Ctrl-C) before any worker claimed its job (withdrawn with the job
    # cancelled, bot.service.withdrawal): nothing ran on the host.
    C.WITHDRAW: {
        S.AWAITING_APPROVAL: S.WITHDRAWN,
        S.APPROVED: S.WITHDRAWN,
        S.SCHEDULED: S.WITHDRAWN,
    },
    # A rollback or merge whose command was interrupted (Ctrl-C) before any
    # worker claimed its job (cancelled with it, bot.service.withdrawal):
    # nothing ran, the checkpoint is still there. Back to active, as a
    # merge that failed goes (a rolled-back change may also `resume`).
    C.TAKE_BACK: {S.ROLLING_BACK: S.ACTIVE, S.MERGING: S.ACTIVE},
    C.EXPIRE: {S.AWAITING_APPROVAL: S.EXPIRED, S.APPROVED: S.EXPIRED, S.SCHEDULED: S.EXPIRED},
    C.SCHEDULE: {S.APPROVED: S.SCHEDULED},
    C.START_CREATE: {S.APPROVED: S.CREATING, S.SCHEDULED: S.CREATING},
    C.CREATED: {S.CREATING: S.ACTIVE},
    # From approved or scheduled: the job could not start (the host could not
    # be reached to re-check, the VM is gone); nothing ran on the host.
    C.CREATE_FAILED: {S.CREATING: S.FAILED, S.APPROVED: S.FAILED, S.SCHEDULED: S.FAILED},
    C.START_MERGE: {S.ACTIVE: S.MERGING, S.ROLLED_BACK: S.MERGING},
    C.MERGED: {S.MERGING: S.MERGED},
    C.MERGE_FAILED: {S.MERGING: S.ACTIVE},
    C.START_ROLLBACK: {S.ACTIVE: S.ROLLING_BACK},
    C.ROLLED_BACK: {S.ROLLING_BACK: S.ROLLED_BACK},
    C.ROLLBACK_FAILED: {S.ROLLING_BACK: S.ACTIVE},
    C.RESUME: {S.ROLLED_BACK: S.ACTIVE},
    C.INTERRUPT: {
        S.CREATING: S.INTERRUPTED,
        S.MERGING: S.INTERRUPTED,
        S.ROLLING_BACK: S.INTERRUPTED,
    },
    C.RECONCILE_ACTIVE: {S.INTERRUPTED: S.ACTIVE},
    C.RECONCILE_FAILED: {S.INTERRUPTED: S.FAILED},
    C.RECONCILE_MERGED: {S.INTERRUPTED: S.MERGED},
    C.RECONCILE_ROLLED_BACK: {S.INTERRUPTED: S.ROLLED_BACK},
    # A restore or merge that finds its checkpoint gone, too.
    C.VANISH: {
        S.ACTIVE: S.VANISHED,
        S.ROLLED_BACK: S.VANISHED,
        S.INTERRUPTED: S.VANISHED,
        S.MERGING: S.VANISHED,
        S.ROLLING_BACK: S.VANISHED,
    },
}

FINAL_STATES = frozenset(
    {S.DENIED, S.REJECTED, S.WITHDRAWN, S.EXPIRED, S.FAILED, S.MERGED, S.VANISHED}
)
# A checkpoint exists on the host in these states (or may, while creating).
HOLDS_CHECKPOINT = frozenset({S.ACTIVE, S.MERGING, S.ROLLING_BACK, S.ROLLED_BACK})
# Host work is under way: a job owns the change.
IN_FLIGHT = frozenset({S.CREATING, S.MERGING, S.ROLLING_BACK})
# Outcomes a human may record for an interrupted change, and the command each
# is (`change resolve`, the thread's buttons; bot.service.reconcile). Here, in
# the pure table, so the CLI declares its choices without loading the service.
RESOLUTIONS: dict[str, Command] = {
    "active": C.RECONCILE_ACTIVE,
    "failed": C.RECONCILE_FAILED,
    "rolled_back": C.RECONCILE_ROLLED_BACK,
    "merged": C.RECONCILE_MERGED,
}


# While a change is in these states, a request waiting for approvers still
# makes sense; once it leaves them the request is superseded (a rollback
# waiting while the change is kept & merged would otherwise stay "waiting"
# on a change that has no checkpoint left).
_WANTED_IN: dict[str, frozenset[State]] = {
    "create": frozenset({S.REQUESTED, S.AWAITING_APPROVAL}),
    "rollback": frozenset({S.ACTIVE}),
    "merge": frozenset({S.ACTIVE, S.ROLLED_BACK, S.ROLLING_BACK}),
    "extend": frozenset({S.ACTIVE, S.ROLLED_BACK, S.ROLLING_BACK, S.INTERRUPTED}),
}


def still_wanted(action: str, state: State) -> bool:
    """Whether a pending request for `action` can still be carried out on a
    change in `state` (now, or once the work under way ends well)."""
    return state in _WANTED_IN.get(action, frozenset())


class IllegalTransition(Exception):
    """`command` is not allowed in `state`; `allowed` lists what would be."""

    def __init__(self, state: State, command: Command) -> None:
        self.state = state
        self.command = command
        self.allowed = tuple(c for c, edges in TRANSITIONS.items() if state in edges)
        expected = ", ".join(sorted(s.value for s in TRANSITIONS[command]))
        super().__init__(
            f"cannot {command.value.replace('_', ' ')} a change that is "
            f"{state.value.replace('_', ' ')} (expected: {expected})"
        )


def next_state(state: State, command: Command) -> State:
    """The state `command` leads to from `state`; raises IllegalTransition."""
    target = TRANSITIONS[command].get(state)
    if target is None:
        raise IllegalTransition(state, command)
    return target


def allowed_commands(state: State) -> tuple[Command, ...]:
    return tuple(c for c, edges in TRANSITIONS.items() if state in edges)


@dataclass(frozen=True)
class Transition:
    """One accepted step: what the record appends as an event."""

    command: Command
    from_state: State
    to_state: State


def apply(state: State, command: Command) -> Transition:
    return Transition(command, state, next_state(state, command))
