"""Job states and claim outcomes, as stored in `job.state`."""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    # The worker vanished mid-job: the outcome on the host is unknown until
    # someone reconciles it, so this is final for the runner.
    INTERRUPTED = "interrupted"
    CANCELLED = "cancelled"


FINAL_STATES: frozenset[str] = frozenset(
    {JobState.SUCCEEDED, JobState.FAILED, JobState.INTERRUPTED, JobState.CANCELLED}
)


def is_final(state: str) -> bool:
    return state in FINAL_STATES


class ClaimOutcome(StrEnum):
    WON = "won"
    # Another worker has it, or it is no longer queued.
    LOST = "lost"
    # Another live job holds the VM lock; nothing was changed.
    VM_BUSY = "vm_busy"
    # The job is bounded per host (a batch member) and its host's slots are
    # all taken (bot.jobs.hostslots); nothing was changed.
    HOST_BUSY = "host_busy"
    # Queued, but `not_before` (a retry backoff) is still in the future.
    NOT_DUE = "not_due"


class HostCall(StrEnum):
    """Whether a running job sent its destructive host call (`job.host_call`).

    A rollback's change is `rolling_back` (a merge's `merging`) from the
    moment it is asked for, so the change cannot tell a job cut off while
    it re-checked from one cut off while Restore-VMSnapshot ran; this does.
    The claim writes NOT_SENT; the job writes SENT right before the call,
    in an UPDATE that needs it still running and its own, so a reconciler
    that interrupted it first knows the call will never be sent."""

    NOT_SENT = "not_sent"
    SENT = "sent"
