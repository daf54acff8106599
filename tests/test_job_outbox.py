"""The job queue goes down (a real redis-server of the test's own is
stopped): Roll back, Approve and create, clicked and typed as signed Slack
requests, tell the user what really happened ("… will start as soon as the
job queue is back"), the database holds the moved change and its recorded
job, and when Redis comes back the job outbox hands the job over within a
tick, the thread says so, and the job reaches the (emulated, real WinRM)
host exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import col, select

from bot.changes.views import ChangeView
from bot.jobs.queue import JobQueue, make_huey
from bot.service.showing import show_change
from bot.store.db import session_scope
from bot.store.models import Job
from tests.redis_support import RedisServer
from tests.slack_support import Call, RunningBot, running_bot
from tests.test_slack_flow import (
    checked_calls,
    click,
    command,
    quiet_click,
    replies,
    root_button,
    roots,
    shown,
    slack_problems,
    thread_ts_of,
)
from tests.test_slack_http import wait_state

# WEB01's rollback goes straight to the host; every other prod rollback
# keeps the shipped rule (one approval).
POLICY = """
rules:
  approvals:
    overrides:
      - scope: {tags: {env: prod}}
        params: {count: 1}
      - scope: {names: [WEB01]}
        params: {count: 0}
"""
TICK = 0.2  # real seconds between the outbox's ticks
QUEUE_DOWN = "will start as soon as the job queue is back"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    with server:
        yield server


@pytest.fixture
def bot(tmp_path: Path, redis_server: RedisServer) -> Iterator[RunningBot]:
    # At the bot's 600x clock a job's default deadline is 3 real seconds;
    # the queue stays down longer than that here.
    jobs = {
        "queue": "redis",
        "redis_url": redis_server.url,
        "queue_name": f"outbox-{redis_server.port}",
        "tick_seconds": TICK,
        "create_deadline": "7d",
        "restore_deadline": "7d",
    }
    with running_bot(tmp_path, policy_text=POLICY, emulated=True, jobs=jobs) as running:
        yield running
    problems = [p for call in checked_calls(running.api.calls) for p in slack_problems(call)]
    assert problems == []


def jobs_of(bot: RunningBot, change_ref: str) -> list[Job]:
    change_id = int(change_ref.split("-")[1])
    with session_scope(bot.ctx.engine) as s:
        return list(
            s.exec(select(Job).where(col(Job.change_id) == change_id).order_by(col(Job.id)))
        )


def settled_job(bot: RunningBot, change_ref: str, kind: str, timeout: float = 10.0) -> Job:
    """The change's one job of `kind`, once it is no longer queued or running."""
    deadline = time.monotonic() + timeout
    while True:
        (job,) = [j for j in jobs_of(bot, change_ref) if j.kind == kind]
        if job.state not in ("queued", "running") or time.monotonic() > deadline:
            return job
        time.sleep(0.05)


def view_of(bot: RunningBot, change_ref: str) -> ChangeView:
    return show_change(bot.ctx, change_ref)


def thread_says(bot: RunningBot, change_ref: str, text: str, timeout: float = 10.0) -> None:
    def said(calls: list[Call]) -> bool:
        ts = thread_ts_of(bot, change_ref)
        return ts is not None and any(text in shown(c.body) for c in replies(calls, ts))

    bot.api.wait_for(said, timeout)


def test_queue_down_roll_back_and_approve_say_what_happened_and_run_once_after(
    bot: RunningBot, redis_server: RedisServer
) -> None:
    assert "being taken" in shown(command(bot, "create WEB01 --reason patch"))
    direct = wait_state(bot, "WEB01", "active", timeout=30)
    assert "being taken" in shown(command(bot, "create WEB02 --reason patch"))
    approved = wait_state(bot, "WEB02", "active", timeout=30)
    direct_button = root_button(bot, direct.ref, "checkpoint:rollback")
    # The card asks the approvers (no private echo): its Approve appears.
    quiet_click(
        bot, "checkpoint:rollback", root_button(bot, approved.ref, "checkpoint:rollback"), "U0ALICE"
    )
    approve = root_button(bot, approved.ref, "checkpoint:approve")

    redis_server.stop()
    # A direct Roll back: the change moved and its job is recorded.
    said = shown(click(bot, "checkpoint:rollback", direct_button, "U0ALICE"))
    assert "Something went wrong" not in said and "nothing was changed" not in said
    assert f"rollback recorded; the rollback {QUEUE_DOWN}" in said
    # The approval that lets a rollback go ahead.
    said = shown(click(bot, "checkpoint:approve", approve, "U0BOB"))
    assert "Something went wrong" not in said and "nothing was changed" not in said
    assert f"approved; the rollback {QUEUE_DOWN}" in said
    # A create the policy allows at once.
    said = shown(command(bot, "create APP01 --reason patch"))
    assert "Something went wrong" not in said and f"the checkpoint {QUEUE_DOWN}" in said
    created = wait_state(bot, "APP01", "approved")

    for ref in (direct.ref, approved.ref):
        assert view_of(bot, ref).state == "rolling_back"
        (job,) = [j for j in jobs_of(bot, ref) if j.kind == "rollback"]
        assert (job.state, job.delivered_at, job.attempt) == ("queued", None, 0)
        thread_says(bot, ref, f"the rollback {QUEUE_DOWN}")
    (job,) = jobs_of(bot, created.ref)
    assert (job.kind, job.state, job.delivered_at) == ("create", "queued", None)

    def root_updates() -> int:
        return sum(c.method == "chat.update" for c in roots(bot.api.calls, direct.ref))

    updated = root_updates()
    time.sleep(10 * TICK)  # ticks while the queue is down change nothing
    assert bot.host_commands("Restore-VMSnapshot") == []
    assert view_of(bot, direct.ref).state == "rolling_back"
    # Nor do they say the queue is back, or re-post the thread's root (seen:
    # "the job queue is back" logged, and the root updated, on every tick).
    assert root_updates() - updated <= 1
    assert "queue_back" not in [e.kind for e in view_of(bot, direct.ref).events]

    redis_server.start()
    back = time.monotonic()
    for vm in ("WEB01", "WEB02"):
        wait_state(bot, vm, "rolled_back", timeout=30)
    wait_state(bot, "APP01", "active", timeout=30)
    # Handed over within a few ticks of the queue answering, not a minute.
    assert time.monotonic() - back < 10
    for ref in (direct.ref, approved.ref):
        thread_says(bot, ref, "the job queue is back: the rollback starts now")
        # The change is rolled back inside the job; the ledger marks the job
        # succeeded once it returns, a moment later.
        job = settled_job(bot, ref, "rollback")
        assert (job.state, job.attempt) == ("succeeded", 1) and job.delivered_at is not None
        events = [e.kind for e in view_of(bot, ref).events]
        assert events.count("queue_wait") == events.count("queue_back") == 1
        assert events.index("queue_back") < events.index("rolled_back")
    thread_says(bot, created.ref, "the job queue is back: the checkpoint starts now")
    # Each rollback reached the host once, over real WinRM.
    time.sleep(5 * TICK)
    assert len(bot.host_commands("Restore-VMSnapshot")) == 2


def test_delivery_refused_leaves_the_job_for_the_outbox(tmp_path: Path) -> None:
    """The outbox on its own: a queue that refuses keeps `delivered_at`
    NULL; the next delivery once it answers marks it, once."""
    from bot.jobs.delivery import JobDelivery  # new with the outbox
    from tests.helpers import running_context

    server = RedisServer(tmp_path)
    with running_context(tmp_path) as ctx:
        queue = JobQueue(make_huey("redis", redis_url=server.url, name="refusing"), None)
        delivery = JobDelivery(ctx.engine, queue, ctx.clock, lambda _at: 0.0)
        job, _ = ctx.ledger.submit(
            "create",
            vm_id="vm-1",
            host="HV01",
            change_id=None,
            payload={},
            idempotency_key="outbox-test",
            destructive=False,
            deadline=timedelta(days=7),
        )
        assert job.id is not None
        assert delivery.deliver(job.id) is False
        assert ctx.ledger.get(job.id).delivered_at is None
        assert delivery.undelivered(timedelta(0)) == [job.id]
        with server:
            assert delivery.redeliver(grace=timedelta(0)) == [job.id]
            assert delivery.undelivered(timedelta(0)) == []
            assert ctx.ledger.get(job.id).delivered_at is not None
            assert len(queue.huey) == 1
            # Delivered already: a second delivery hands nothing over.
            assert delivery.deliver(job.id) is True
            assert len(queue.huey) == 1
