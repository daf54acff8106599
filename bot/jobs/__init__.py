"""Jobs: the durable ledger, the runner and the Huey queue that feeds it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.lazy_names import names_on_first_use

if TYPE_CHECKING:
    from bot.jobs.errors import (
        HandledFailure,
        HandledInterruption,
        IdempotencyConflict,
        InvalidJobState,
        JobDeadlineExceeded,
        JobError,
        JobNotFound,
        JobOwnershipLost,
        RetryLater,
        RetryNotAllowed,
    )
    from bot.jobs.kinds import JOB_RULES, JobKind, JobRule, job_words
    from bot.jobs.ledger import DEADLINE_BEFORE_START, ClaimResult, Clock, JobLedger
    from bot.jobs.queue import InProcessConsumer, JobQueue, check_queue, make_huey
    from bot.jobs.runner import (
        VM_BUSY_PAST_DEADLINE,
        Handler,
        JobContext,
        JobRunner,
        ProgressCallback,
        RunOutcome,
        RunStatus,
        default_worker_id,
        describe_error,
    )
    from bot.jobs.states import FINAL_STATES, ClaimOutcome, HostCall, JobState, is_final

# Each name is imported from its module when first asked for (PEP 562,
# https://peps.python.org/pep-0562/): a command that reads the ledger
# (`outbox`) does not load the runner or the queue (bench/cli_start.py).
_WHERE = {
    "ClaimOutcome": "bot.jobs.states",
    "ClaimResult": "bot.jobs.ledger",
    "Clock": "bot.jobs.ledger",
    "DEADLINE_BEFORE_START": "bot.jobs.ledger",
    "FINAL_STATES": "bot.jobs.states",
    "HandledFailure": "bot.jobs.errors",
    "HandledInterruption": "bot.jobs.errors",
    "Handler": "bot.jobs.runner",
    "HostCall": "bot.jobs.states",
    "IdempotencyConflict": "bot.jobs.errors",
    "InProcessConsumer": "bot.jobs.queue",
    "InvalidJobState": "bot.jobs.errors",
    "JOB_RULES": "bot.jobs.kinds",
    "JobContext": "bot.jobs.runner",
    "JobDeadlineExceeded": "bot.jobs.errors",
    "JobError": "bot.jobs.errors",
    "JobKind": "bot.jobs.kinds",
    "JobLedger": "bot.jobs.ledger",
    "JobNotFound": "bot.jobs.errors",
    "JobOwnershipLost": "bot.jobs.errors",
    "JobQueue": "bot.jobs.queue",
    "JobRule": "bot.jobs.kinds",
    "JobRunner": "bot.jobs.runner",
    "JobState": "bot.jobs.states",
    "ProgressCallback": "bot.jobs.runner",
    "RetryLater": "bot.jobs.errors",
    "RetryNotAllowed": "bot.jobs.errors",
    "RunOutcome": "bot.jobs.runner",
    "RunStatus": "bot.jobs.runner",
    "VM_BUSY_PAST_DEADLINE": "bot.jobs.runner",
    "check_queue": "bot.jobs.queue",
    "default_worker_id": "bot.jobs.runner",
    "describe_error": "bot.jobs.runner",
    "is_final": "bot.jobs.states",
    "job_words": "bot.jobs.kinds",
    "make_huey": "bot.jobs.queue",
}


__getattr__ = names_on_first_use(__name__, _WHERE, globals())


__all__ = [
    "DEADLINE_BEFORE_START",
    "FINAL_STATES",
    "JOB_RULES",
    "VM_BUSY_PAST_DEADLINE",
    "ClaimOutcome",
    "ClaimResult",
    "Clock",
    "HandledFailure",
    "HandledInterruption",
    "Handler",
    "HostCall",
    "IdempotencyConflict",
    "InProcessConsumer",
    "InvalidJobState",
    "JobContext",
    "JobDeadlineExceeded",
    "JobError",
    "JobKind",
    "JobLedger",
    "JobNotFound",
    "JobOwnershipLost",
    "JobQueue",
    "JobRule",
    "JobRunner",
    "JobState",
    "ProgressCallback",
    "RetryLater",
    "RetryNotAllowed",
    "RunOutcome",
    "RunStatus",
    "check_queue",
    "default_worker_id",
    "describe_error",
    "is_final",
    "job_words",
    "make_huey",
]
