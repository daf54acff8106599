"""The kinds of host work a change asks for, and the rules each kind runs by.

One word per operation: a job's kind is the action the person asked for
(`rollback`, `merge`), not the host's verb (`Restore-VMSnapshot`,
`Remove-VMSnapshot`), so the record, the metrics and the thread say the same.
The rules are data, read by whoever records a job: a new kind is one line
here and one handler in `bot.service.execution`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

# The `jobs:` settings that bound how long each kind may wait and run.
DeadlineSetting = Literal["create_deadline", "restore_deadline", "merge_deadline"]


class JobKind(StrEnum):
    CREATE = "create"
    ROLLBACK = "rollback"
    MERGE = "merge"
    START = "start"
    # Setting a VM's CheckpointType back after a create's own set-back
    # failed (bot.service.reconcile.SetBackRetry): a Set-VM, under the VM's
    # lock like every host operation on it.
    SET_BACK = "set_back"

    @property
    def rule(self) -> JobRule:
        return JOB_RULES[self]


@dataclass(frozen=True)
class JobRule:
    # Destructive work changes or discards what the VM holds: never retried
    # blindly; an interrupted one is reconciled against the host first.
    destructive: bool
    deadline_setting: DeadlineSetting
    # What the thread calls the work ("… will start as soon as …").
    words: str


JOB_RULES: dict[JobKind, JobRule] = {
    JobKind.CREATE: JobRule(False, "create_deadline", "the checkpoint"),
    JobKind.ROLLBACK: JobRule(True, "restore_deadline", "the rollback"),
    JobKind.MERGE: JobRule(True, "merge_deadline", "the merge"),
    # Starting a VM after a rollback is bounded like the rollback it follows.
    JobKind.START: JobRule(False, "restore_deadline", "the VM start"),
    # Not destructive (a setting, read first and set only if still the
    # bot's), and bounded like the create that left it.
    JobKind.SET_BACK: JobRule(False, "create_deadline", "setting the CheckpointType back"),
}


def job_words(kind: str) -> str:
    """The thread's words for a job of `kind` (a stored word from before the
    kinds were named as actions reads as itself)."""
    try:
        return JobKind(kind).rule.words
    except ValueError:
        return f"the {kind} job"
