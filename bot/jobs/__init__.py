"""Jobs: the durable ledger, the runner and the Huey queue that feeds it."""

from bot.jobs.errors import (
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
from bot.jobs.states import FINAL_STATES, ClaimOutcome, JobState, is_final

__all__ = [
    "DEADLINE_BEFORE_START",
    "FINAL_STATES",
    "JOB_RULES",
    "VM_BUSY_PAST_DEADLINE",
    "ClaimOutcome",
    "ClaimResult",
    "Clock",
    "Handler",
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
