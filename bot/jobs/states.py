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
