"""Errors raised by the job ledger, the runner and job handlers.

    JobError                         job_id
    ├── JobNotFound                  no job with that id
    ├── IdempotencyConflict          a key reused for a different operation
    ├── InvalidJobState              cannot X in state Y, expected Z
    │   └── JobOwnershipLost         this worker no longer owns the job
    ├── RetryNotAllowed              requeue of a destructive job
    ├── JobDeadlineExceeded          raised by `JobContext.check_deadline`
    ├── RetryLater                   raised by a handler: nothing was done, try again
    └── HandledFailure               raised by a handler: failed, and already recorded

Handlers may raise anything; the runner turns every exception into a
one-line message on the job row. `RetryLater` is the one a handler raises
on purpose: the job is delivered again with backoff until its deadline,
however many attempts it was given (a destructive job never is).
"""

from __future__ import annotations

from datetime import datetime


class JobError(Exception):
    def __init__(self, message: str, *, job_id: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.job_id = job_id


class JobNotFound(JobError):
    pass


class IdempotencyConflict(JobError):
    def __init__(self, message: str, *, job_id: int | None = None, key: str = "") -> None:
        super().__init__(message, job_id=job_id)
        self.key = key


class InvalidJobState(JobError):
    def __init__(
        self,
        message: str,
        *,
        job_id: int | None = None,
        state: str | None = None,
        expected: str = "",
    ) -> None:
        super().__init__(message, job_id=job_id)
        self.state = state
        self.expected = expected


class JobOwnershipLost(InvalidJobState):
    pass


class RetryNotAllowed(JobError):
    pass


class JobDeadlineExceeded(JobError):
    """`deadline`: when the job had to be done by, so whoever records why
    it stopped can say when in words (its message is the ledger's)."""

    def __init__(
        self, message: str, *, job_id: int | None = None, deadline: datetime | None = None
    ) -> None:
        super().__init__(message, job_id=job_id)
        self.deadline = deadline


class RetryLater(JobError):
    """Nothing was done (a precondition could not be checked yet); the job
    may run again later."""


class HandledFailure(JobError):
    """The job failed in a way its handler has already recorded where people
    read it (the change's history and thread): the runner fails the job and
    logs one line, not a traceback. Seen: every host refusal or timeout of a
    CLI create also printed "logged error: job 1 (create on <VM id>) failed"."""


class HandledInterruption(HandledFailure):
    """Raised by a handler whose host call ended with its outcome unknown
    (the connection dropped, no answer in time), after it recorded that
    where people read it (the change is `interrupted`): the job ends
    `interrupted`, never `failed` (the host may have done the work: seen,
    a create the host had taken recorded as "failed") and never retried
    (it could run twice); the reconciler asks the host. Its message is
    the job's error as people read it: words, no exception class name."""
