"""A database outage, for real: PostgreSQL behind a proxy the test cuts
(tests/db_proxy.py), so the bot's connections die and reconnecting fails
(issue #13, item 7).

- Slack: while the database is away, every answer says so, and says that
  nothing was changed (true: nothing this request wrote was committed);
  once it is back, the same request works.
- Jobs: an approved create whose job hit the outage before reaching the
  host is tried again and takes its checkpoint once; nothing is lost.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from bot.clock import ScaledClock
from bot.context import build_context
from bot.hyperv import HyperVHost
from bot.service import request_checkpoint
from bot.store.db import make_engine, session_scope
from bot.store.models import Change, Job
from handlers.outage import DATABASE_DOWN
from tests.db_proxy import CuttableProxy
from tests.helpers import T0, settings_for
from tests.slack_support import running_bot
from tests.test_slack_flow import click, command, root_button, shown
from tests.test_slack_http import wait_state

pytestmark = pytest.mark.postgres


def test_slack_answers_say_the_database_is_unavailable_and_nothing_changed(
    tmp_path: Path, through_proxy: tuple[CuttableProxy, str], pg_engine: Engine
) -> None:
    proxy, url = through_proxy
    with running_bot(tmp_path, database_url=url) as bot:
        command(bot, "create STG-WEB01 --reason patch")
        active = wait_state(bot, "STG-WEB01", "active")
        rollback = root_button(bot, active.ref, "checkpoint:rollback")

        proxy.cut()
        for text in ("create WEB01 --reason patch", f"status {active.ref}"):
            said = shown(command(bot, text))
            assert DATABASE_DOWN in said and "Something went wrong" not in said, said
        clicked = shown(click(bot, "checkpoint:rollback", rollback, "U0ALICE"))
        assert DATABASE_DOWN in clicked, clicked
        with session_scope(pg_engine) as s:  # straight to the server: nothing was written
            assert [c.vm_name for c in s.exec(select(Change)).all()] == ["STG-WEB01"]
            assert s.exec(select(Change)).one().state == "active"

        proxy.restore()
        again = shown(command(bot, "create WEB01 --reason patch"))
        assert DATABASE_DOWN not in again
        wait_state(bot, "WEB01", "active")


def _cut_on_first_host_call(
    proxy: CuttableProxy, outage: float
) -> Callable[[str, HyperVHost], HyperVHost]:
    """A host wrapper that cuts the database the first time the job asks
    for a host (the re-check right before the create), back after `outage` s."""
    armed = threading.Event()
    armed.set()

    def wrapped(_name: str, host: HyperVHost) -> HyperVHost:
        if armed.is_set():
            armed.clear()
            proxy.cut()
            threading.Timer(outage, proxy.restore).start()
        return host

    return wrapped


def test_an_approved_create_that_hit_the_outage_runs_once_it_is_back(
    tmp_path: Path, through_proxy: tuple[CuttableProxy, str], pg_database_url: str
) -> None:
    proxy, url = through_proxy
    # 60x: the job's 30-minute deadline is 30 real seconds.
    ctx = build_context(
        settings_for(tmp_path, url), clock=ScaledClock(60, start=T0), huey_kind="memory"
    )
    direct = make_engine(pg_database_url)
    try:
        out = request_checkpoint(ctx, "STG-WEB01", reason="patch", requester="alice")
        assert out.change.state == "approved" and out.job_id is not None
        ctx.host_for.wrap(_cut_on_first_host_call(proxy, 3.0))
        # Only the runner's own retries: no periodic re-delivery of stranded jobs.
        ctx.start_workers(periodic=False)
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            with session_scope(direct) as s:
                job = s.get(Job, out.job_id)
                assert job is not None
                if job.state in ("succeeded", "failed"):
                    break
            time.sleep(0.2)
        assert job.state == "succeeded", (job.state, job.error)
        assert job.attempt >= 2  # the first attempt hit the outage
        with session_scope(direct) as s:
            change = s.exec(select(Change)).one()
        assert change.state == "active" and change.checkpoint_id
        host = ctx.host_for(change.host)
        taken = [c for c in host.list_checkpoints(change.vm_id) if c.id == change.checkpoint_id]
        assert len(taken) == 1
        assert len(host.list_checkpoints(change.vm_id)) == 1
    finally:
        ctx.close()
        direct.dispose()
