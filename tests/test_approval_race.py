"""Racing approvals: many approvers click Approve at the same moment. Only
the approvals that count are recorded; everyone else is told theirs was
not, and the request is carried out once. Real threads on SQLite and on
PostgreSQL (issue #13, item 8)."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from sqlmodel import select

from bot.context import AppContext
from bot.service import ServiceError, approve, request_checkpoint, rollback, show_change
from bot.store.db import session_scope
from bot.store.models import ApprovalRequest

WAIT = 60.0
CLICKS = 50


@pytest.fixture
def ctx(inline_ctx: AppContext) -> AppContext:
    # Jobs run inline: the one approval that counts runs the rollback in
    # its own thread, while the other clicks are told theirs did not count.
    return inline_ctx


def test_fifty_simultaneous_approvals_record_exactly_the_one_that_counts(
    ctx: AppContext,
) -> None:
    out = request_checkpoint(ctx, "web01", reason="patch", requester="alice")
    assert out.job_id is not None
    assert ctx.ledger.get(out.job_id).state == "succeeded"
    # Shipped policy: a prod rollback waits for one approver.
    assert rollback(ctx, out.change.ref, requester="alice").waiting

    gate = threading.Barrier(CLICKS)
    answers: list[str] = []
    jobs: list[int] = []
    lock = threading.Lock()

    def click(n: int) -> None:
        gate.wait()
        try:
            outcome = approve(ctx, out.change.ref, approver=f"U0APPROVER{n:02d}")
        except ServiceError as exc:
            with lock:
                answers.append(type(exc).__name__)
            return
        with lock:
            answers.append(outcome.state)
            if outcome.job_id is not None:
                jobs.append(outcome.job_id)

    threads = [threading.Thread(target=click, args=(n,)) for n in range(CLICKS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=WAIT)

    told = Counter(answers)
    assert told["approved"] == 1 and told["pending"] == 0, told
    assert sum(told.values()) == CLICKS and len(jobs) == 1, told
    assert ctx.ledger.get(jobs[0]).state == "succeeded"
    change = show_change(ctx, out.change.ref)
    approvals = [e for e in change.events if e.kind == "approval"]
    assert len(approvals) == 1, [e.message for e in approvals]
    assert approvals[0].message.endswith("(1 of 1)")
    assert [e.kind for e in change.events].count("start_rollback") == 1
    with session_scope(ctx.engine) as s:
        request = s.exec(select(ApprovalRequest)).one()
    assert request.state == "approved" and len(request.approvals) == 1
    assert request.approvals[0]["by"] == approvals[0].actor
