"""Huey wiring: one task that carries a job id, and an in-process consumer.

Huey delivers; the ledger decides. The task takes only the job id, Huey's
own retries stay off (the runner requeues through the ledger), and its
result store is off (results live on the job row). Nothing here is a
module-level singleton: every Huey instance is built and passed in.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from bot.jobs.runner import JobRunner
from bot.store.outage_log import OutageLog, unreachable

if TYPE_CHECKING:
    # Huey (and the Redis and PostgreSQL clients its storage module tries)
    # is imported by `make_huey`, not here: a CLI command that queues
    # nothing never loads it (bench/cli_start.py).
    from huey import Huey

log = logging.getLogger(__name__)

HueyKind = Literal["sqlite", "memory", "redis"]
TASK_NAME = "run_job"
REDIS_CONNECT_TIMEOUT = 2.0  # seconds
# Huey's loggers that log a failed read of the queue, with its traceback,
# on every retry (huey/consumer.py: `Worker.loop`, `Scheduler.loop`).
_HUEY_LOOPS = ("huey.consumer.Worker", "huey.consumer.Scheduler")
# A blocking queue (Redis) makes an idle worker wait in the read itself, so
# Huey's poll delay only spaces the retries after a failed read: growing
# to this many seconds, each worker stops knocking ten times a second on
# a queue that is down (and picks up again at most this long after it is back).
BLOCKING_RETRY_MAX = 2.0
BLOCKING_RETRY_BACKOFF = 2.0


def sqlite_queue_file(database_url: str, workdir: Path) -> Path:
    """The SQLite job queue's file for the record at `database_url`:
    beside a SQLite record, named after it (`queue.db` beside the default
    `checkpoint-bot.db`, `state.queue.db` beside `state.db`), so two configs
    run from one directory, each with its own record, never take each
    other's jobs; else `<workdir>/var/queue.db`. A job a queue loses is
    delivered again from the record's outbox (bot/jobs/delivery.py), so a
    file that moves loses nothing."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    database = url.database if url.get_backend_name() == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        return workdir / "var" / "queue.db"
    record = Path(database)
    name = "queue.db" if record.name == "checkpoint-bot.db" else f"{record.stem}.queue.db"
    return record.with_name(name)


def make_huey(
    kind: HueyKind,
    *,
    path: Path | None = None,
    name: str = "checkpoint-bot",
    workdir: Path | None = None,
    redis_url: str | None = None,
) -> Huey:
    """A Huey instance that is never in immediate mode.

    The SQLite file defaults to `<workdir>/var/queue.db`, the one the bot's
    context opens (bot.context), beside the bot's own database; `workdir`
    defaults to the current directory.
    """
    check_queue(kind, redis_url)
    _import_huey(with_redis=kind == "redis")
    from huey import MemoryHuey, RedisHuey, SqliteHuey

    options: dict[str, Any] = {"name": name, "results": False, "immediate": False}
    if kind == "memory":
        return MemoryHuey(**options)
    if kind == "sqlite":
        if path is None:
            path = (workdir or Path.cwd()) / "var" / "queue.db"
        # Its owner's alone when made here, as the record's (bot.store.db).
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        return SqliteHuey(filename=str(path), **options)
    if kind == "redis" and redis_url:
        # Several bot replicas and `checkpoint-bot worker` processes share
        # this queue; the Job ledger still decides who runs what.
        # A queue host that does not answer must fail an enqueue in seconds:
        # the job outbox (bot.jobs.delivery) enqueues inside a short
        # database transaction and leaves the job for a later tick.
        from redis import ConnectionPool  # only a Redis queue needs the client

        pool = ConnectionPool.from_url(redis_url, socket_connect_timeout=REDIS_CONNECT_TIMEOUT)
        return RedisHuey(connection_pool=pool, **options)
    raise AssertionError(kind)  # check_queue refused it


# Clients huey.storage imports at module level for storages the bot's
# SQLite and memory queues never use: 0.16 s of `import huey` on an idle
# machine, 0.45 s of a CLI create's start at load 8 (`python -X
# importtime`, bench/op_latency.py), a third of it psycopg.
_QUEUE_CLIENTS = ("redis", "psycopg")


def _import_huey(*, with_redis: bool) -> None:
    """Import Huey; without the Redis and PostgreSQL clients unless the
    queue is Redis. huey.storage tries each client in `try: import …
    except ImportError` and leaves that storage's names None, and a None in
    `sys.modules` makes an import raise ImportError
    (https://docs.python.org/3/reference/import.html#the-module-cache), so
    the clients are hidden only while Huey imports: the bot's PostgreSQL
    engine imports psycopg on its own when the database needs it."""
    if with_redis:
        from redis.client import Redis
        from redis.connection import ConnectionPool
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        storage: Any = sys.modules.get("huey.storage")
        if storage is not None and storage.Redis is None:
            # Huey was imported earlier in this process for a SQLite or
            # memory queue (only tests mix them): give its Redis storage the
            # names its `try: from redis import …` would have bound.
            storage.ConnectionPool, storage.Redis = ConnectionPool, Redis
            storage.ConnectionError = RedisConnectionError
            storage.TimeoutError = RedisTimeoutError
            storage.RedisStorage.redis_client = Redis
        return
    if "huey" in sys.modules:
        return
    hidden = [name for name in _QUEUE_CLIENTS if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        import huey  # noqa: F401
    finally:
        for name in hidden:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]


def check_queue(kind: str, redis_url: str | None) -> None:
    """What `make_huey` refuses, said before any queue is made."""
    if kind not in ("sqlite", "memory", "redis"):
        raise ValueError(f"unknown huey kind {kind!r}, expected 'sqlite', 'memory' or 'redis'")
    if kind == "redis" and not redis_url:
        raise ValueError("the redis queue needs a URL (jobs.redis_url or REDIS_URL)")
    if kind == "redis" and redis_url:
        problem = redis_url_problem(redis_url)
        if problem is not None:
            raise ValueError(f"the redis URL (jobs.redis_url or REDIS_URL) {problem}")


# The URLs redis-py opens (`Redis.from_url`:
# https://redis.readthedocs.io/en/stable/connections.html#redis.Redis.from_url):
# redis://[[user]:[password]@]host[:port][/db], rediss:// (TLS), and
# unix://[[user]:[password]@]/path/to/socket[?db=N].
_REDIS_SCHEMES = ("redis", "rediss", "unix")


def redis_url_problem(url: str) -> str | None:
    """What is wrong with a Redis URL, in words that never repeat it (it may
    carry a password); None when redis-py can open it."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (reading it checks it: a port that is no number raises)
    except ValueError:
        return "cannot be parsed; expected e.g. redis://HOST:6379/0"
    if parts.scheme not in _REDIS_SCHEMES:
        return (
            "does not start with redis://, rediss:// (TLS) or unix://; "
            "expected e.g. redis://HOST:6379/0"
        )
    if parts.scheme != "unix":
        # redis-py would quietly use database 0 for `/abc` (a typo would
        # share another queue's database): refused here instead.
        db = parts.path.lstrip("/")
        if db and not db.isdigit():
            return "names a database that is no number; expected e.g. redis://HOST:6379/0"
    return None


class JobQueue:
    """Registers the `run_job` task on `huey` and enqueues job ids.

    Every process that enqueues or consumes must build one on its own Huey
    instance, so the task name resolves on both sides. A process that only
    enqueues (a bot replica with remote workers) passes `runner=None`.
    """

    def __init__(self, huey: Huey, runner: JobRunner | None) -> None:
        self.huey = huey
        self.runner = runner
        self._task = huey.task(retries=0, name=TASK_NAME)(self._run_job)
        self._wakers: list[Callable[[], None]] = []

    def __repr__(self) -> str:
        return f"JobQueue(huey={self.huey.name!r}, runner={self.runner!r})"

    def enqueue(self, job_id: int, delay: float = 0, *, wake: bool = True) -> None:
        """Put `job_id` on the queue (after `delay` seconds). `wake=False`:
        the caller wakes this process's consumer itself (`wake()`), once
        the transaction the enqueue is part of has committed."""
        if not isinstance(job_id, int) or isinstance(job_id, bool):
            raise TypeError(f"job_id must be an int, got {type(job_id).__name__}")
        if delay > 0:
            # Huey's scheduler moves it to the queue when due; the workers'
            # poll takes it from there.
            self._task.schedule(args=(job_id,), delay=delay)
            return
        self._task(job_id)
        if wake:
            self.wake()

    def wake_with(self, wake: Callable[[], None]) -> None:
        """Call `wake` after every immediate enqueue from this process (an
        `InProcessConsumer.wake` on the same Huey). Only a non-blocking
        storage needs it (SQLite, memory: workers poll it); a blocking one
        (Redis) hands the task to a waiting worker at once."""
        if not self.huey.storage.blocking:
            self._wakers.append(wake)

    def wake(self) -> None:
        """Tell this process's idle workers a task is waiting: they take it
        now instead of on their next poll."""
        for wake in self._wakers:
            wake()

    def _run_job(self, job_id: int) -> None:
        if self.runner is None:
            raise RuntimeError(
                f"cannot run job {job_id} in an enqueue-only JobQueue, expected a runner"
            )
        outcome = self.runner.run(job_id)
        log.debug("job %s: %s", job_id, outcome)
        if outcome.retry_after is not None:
            self.enqueue(job_id, delay=outcome.retry_after)


class _QueueOutages(logging.Filter):
    """On Huey's worker and scheduler loggers: a read of the queue that
    failed because the queue does not answer is counted by `outages` (its
    one line, then one a minute) instead of Huey's traceback on every
    retry; anything else, a bug included, passes with its traceback. Only
    the records of `threads` (this consumer's), so that two consumers in
    one process (tests) each tell their own."""

    def __init__(self, outages: OutageLog, threads: Callable[[], set[int]]) -> None:
        super().__init__()
        self.outages = outages
        self.threads = threads

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None or record.thread not in self.threads():
            return True
        what = unreachable(exc)
        if what is None:
            return True
        self.outages.failed(what, exc, then="the workers try again")
        return False


class _Answering:
    """A worker's view of its Huey whose `dequeue` says when the queue
    answers again (`outages.answered`): Huey logs only the failures."""

    def __init__(self, huey: Huey, outages: OutageLog) -> None:
        self._huey = huey
        self._outages = outages

    def __getattr__(self, name: str) -> Any:
        return getattr(self._huey, name)

    def dequeue(self) -> Any:
        task = self._huey.dequeue()
        if self._outages.down:
            self._outages.answered()
        return task


def _no_signal_handlers() -> None:
    """Stands in for `Consumer._set_signal_handlers`: `signal.signal` fails
    outside the main thread, and in the main thread it would steal SIGINT /
    SIGTERM from the application that embeds us."""


class InProcessConsumer:
    """Huey's consumer as threads inside this process (the default deployment).

    `poll_interval` caps how long an idle worker sleeps between polls of a
    non-blocking storage (SQLite, memory): the worst-case pickup delay of a
    task enqueued by another process. One enqueued by this process wakes an
    idle worker at once (`wake()`, wired by `JobQueue.wake_with`).
    `first_poll`: an idle worker's first wait, growing to `poll_interval`
    (default: 0.1 s, or `poll_interval` if shorter).
    """

    def __init__(
        self,
        huey: Huey,
        workers: int = 4,
        *,
        poll_interval: float = 0.5,
        first_poll: float | None = None,
        periodic: bool = True,
        quiet: bool = True,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if quiet:
            # Only when nobody configured it: Huey logs every task at INFO.
            huey_log = logging.getLogger("huey")
            if huey_log.level == logging.NOTSET:
                huey_log.setLevel(logging.WARNING)
        self.huey = huey
        self.workers = workers
        self._wake = threading.Event()
        from bot.jobs.wakeable import WakeableConsumer  # imports Huey's consumer

        retry: dict[str, float] = {"max_delay": poll_interval}
        if huey.storage.blocking:
            retry = {
                "backoff": BLOCKING_RETRY_BACKOFF,
                "max_delay": max(poll_interval, BLOCKING_RETRY_MAX),
            }
        self._consumer = WakeableConsumer(
            huey,
            self._wake,
            workers=workers,
            worker_type="thread",
            periodic=periodic,
            initial_delay=min(0.1, poll_interval) if first_poll is None else first_poll,
            check_worker_health=False,
            **retry,
        )
        self._consumer._set_signal_handlers = _no_signal_handlers
        self.outages = OutageLog(log, "job queue workers")
        for worker, _ in self._consumer.worker_threads:
            worker.huey = _Answering(huey, self.outages)
        self._filter = _QueueOutages(self.outages, self._thread_ids)
        self._started = False

    def __repr__(self) -> str:
        state = "started" if self._started else "stopped"
        return f"InProcessConsumer(huey={self.huey.name!r}, workers={self.workers}, {state})"

    @property
    def running(self) -> bool:
        """Started, and every worker thread alive (what /readyz reports)."""
        threads = [t for _, t in self._consumer.worker_threads]
        return self._started and bool(threads) and all(t.is_alive() for t in threads)

    def _thread_ids(self) -> set[int]:
        threads = [t for _, t in self._consumer.worker_threads] + [self._consumer.scheduler]
        return {t.ident for t in threads if t.ident is not None}

    def wake(self) -> None:
        """A task was just enqueued here: an idle worker polls now."""
        self._wake.set()

    def start(self) -> None:
        if self._started:
            raise RuntimeError("cannot start consumer in state started, expected stopped")
        for name in _HUEY_LOOPS:
            logging.getLogger(name).addFilter(self._filter)
        self._consumer.start()
        self._started = True

    def stop(self, timeout: float = 10.0, *, wait: bool = True) -> bool:
        """Stop taking tasks and wait up to `timeout` for running ones (not at
        all without `wait`); True if every worker stopped. A job still
        running when this returns keeps its claim until its heartbeat goes
        stale."""
        if not self._started:
            return True
        self._consumer.shutdown_timeout = timeout
        self._consumer.stop(graceful=wait)
        self._started = False
        # A thread's id may be reused by a later consumer's thread.
        for name in _HUEY_LOOPS:
            logging.getLogger(name).removeFilter(self._filter)
        if not wait:
            return not any(t.is_alive() for _, t in self._consumer.worker_threads)
        threads = [t for _, t in self._consumer.worker_threads] + [self._consumer.scheduler]
        stopped = not any(t.is_alive() for t in threads)
        if not stopped:
            log.warning("huey workers still busy after %ss", timeout)
        return stopped

    def join_until(self, deadline: float) -> bool:
        """After `stop(wait=False)`: wait until the worker threads end (their
        task's last steps too) or `deadline` (`time.monotonic()`) passes;
        True if they all ended. A Ctrl-C is the caller's (Huey's own wait
        would take it as "shut down now" and go on)."""
        threads = [t for _, t in self._consumer.worker_threads] + [self._consumer.scheduler]
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in threads)

    def __enter__(self) -> InProcessConsumer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
