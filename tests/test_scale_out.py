"""Scale-out on the real servers: bot replicas and workers in separate
contexts (separate engines and Huey instances, as separate processes have)
sharing PostgreSQL and a Huey queue on Redis."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from bot.clock import ScaledClock
from bot.config import JobsConfig
from bot.context import AppContext, build_context
from bot.service import list_checkpoints, request_checkpoint, show_change
from tests.helpers import T0, settings_for

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
_REDIS_START = (
    'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" '
    "--appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log"
)


def _redis_problem() -> str | None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


@pytest.fixture(scope="session")
def redis_url() -> str:
    problem = _redis_problem()
    if problem and "127.0.0.1:6379" in REDIS_URL:
        subprocess.run(_REDIS_START, shell=True, check=False, capture_output=True)  # noqa: S602
        for _ in range(20):
            if (problem := _redis_problem()) is None:
                break
            time.sleep(0.25)
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"Redis at {REDIS_URL} is unreachable in CI: {problem}")
        pytest.skip(f"Redis at {REDIS_URL} unreachable, scale-out tests SKIPPED: {problem}")
    return REDIS_URL


@pytest.fixture
def replicas(
    tmp_path: Path, pg_database_url: str, pg_engine: object, redis_url: str
) -> Iterator[tuple[AppContext, AppContext]]:
    jobs = JobsConfig(queue="redis", redis_url=redis_url, queue_name=f"cb-{uuid.uuid4().hex[:8]}")
    settings = replace(settings_for(tmp_path, pg_database_url), jobs=jobs)
    clock = ScaledClock(600, start=T0)
    bot = build_context(settings, clock=clock)  # enqueues only: no consumer here
    worker = build_context(settings, clock=clock)
    worker.start_workers()
    try:
        yield bot, worker
    finally:
        worker.close()
        bot.close()
        bot.queue.huey.flush()


def test_a_replica_enqueues_and_a_worker_elsewhere_runs_it(
    replicas: tuple[AppContext, AppContext],
) -> None:
    bot, worker = replicas
    out = request_checkpoint(bot, "WEB01", reason="scale-out", requester="alice")
    assert out.job_id is not None
    job = bot.ledger.wait(out.job_id, timeout=30)
    assert job.state == "succeeded" and job.worker == worker.worker_id
    assert show_change(bot, out.change.ref).state == "active"
    assert [r.change_ref for r in list_checkpoints(bot, vm="WEB01").rows] == [out.change.ref]
