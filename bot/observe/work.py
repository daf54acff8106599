"""Jobs and policy decisions, measured and logged with their context.

`MeteredRunner` is the `JobRunner` a process runs jobs with: the place a
job's work starts, so its change, job, VM and host are bound for every log
line written while it runs, and its outcome and duration are counted.
`MeteredDecider` counts each guardrail decision and the rules that fired.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from bot.changes.views import held_back_words
from bot.domain import ChangeRef
from bot.jobs import JobRunner
from bot.jobs.runner import RunOutcome
from bot.observe.logs import bound
from bot.observe.metrics import Metrics
from bot.service.deciding import Decider
from bot.store.tables.jobs import Job
from policies import Action, Decision

log = logging.getLogger("checkpoint_bot.jobs")


class MeteredRunner(JobRunner):
    """A JobRunner whose every executed job is logged, counted and timed."""

    def __init__(self, *args: Any, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.metrics = metrics

    def _execute(self, job: Job) -> RunOutcome:
        change = str(ChangeRef(job.change_id)) if job.change_id is not None else None
        with bound(job=job.id, job_kind=job.kind, change=change, vm=job.vm_id, host=job.host):
            log.info("job %s (%s) started, attempt %s", job.id, job.kind, job.attempt)
            started = time.perf_counter()
            outcome = super()._execute(job)
            seconds = time.perf_counter() - started
            status = outcome.status.value
            self.metrics.jobs.labels(job.kind, status).inc()
            self.metrics.job_seconds.labels(job.kind, status).observe(seconds)
            # Seen: "succeeded" in the log for a create its re-check refused.
            said = held_back_words(status, outcome.result or {}) or status
            log.info("job %s (%s) %s after %.2fs", job.id, job.kind, said, seconds)
        return outcome


@dataclass
class MeteredDecider(Decider):
    metrics: Metrics | None = None

    def observe(self, action: Action, decision: Decision, *, strict: bool) -> None:
        if self.metrics is not None and strict:
            # `strict=False` is `policy explain`: a preview, not a decision.
            record_decision(self.metrics, str(action), decision)


def record_decision(metrics: Metrics, action: str, decision: Decision) -> None:
    metrics.policy_decisions.labels(action, decision.verdict.value).inc()
    for fired in decision.fired:
        effect = fired.effect.value if fired.effect is not None else "none"
        metrics.policy_rules.labels(fired.rule, effect).inc()
