"""While the database or the job queue does not answer, the log says so in
one line (the driver's first line), then at most once a minute that it
still does not, and once when it answers again; a traceback only at DEBUG
(`-v`), or for an error that is no outage (a bug keeps its traceback).

Real failures, never constructed ones: a SQLite file that cannot be opened
(SQLAlchemy's OperationalError, as a PostgreSQL that does not answer), and
a real redis-server stopped under Huey's workers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from huey import Huey
from sqlalchemy import text
from sqlalchemy.engine import Engine

from bot.jobs import InProcessConsumer, make_huey
from bot.jobs.periodic import DATABASE, JOB_QUEUE, OutageLog, PeriodicScheduler, unreachable
from bot.observe.logs import configure
from bot.store.db import make_engine
from tests.redis_support import RedisServer

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def dead_engine(tmp_path: Path) -> Iterator[Engine]:
    """An engine whose every connect fails as a database that does not
    answer fails: SQLAlchemy's OperationalError ("unable to open database
    file"), with SQLAlchemy's multi-line text around the driver's."""
    (tmp_path / "file").write_text("not a directory", encoding="utf-8")
    engine = make_engine(f"sqlite:///{tmp_path / 'file' / 'record.db'}")
    yield engine
    engine.dispose()


class Task:
    def __init__(self, name: str, work: Callable[[], None]) -> None:
        self.name = name
        self.work = work
        self.ticks = 0

    def tick(self, now: datetime) -> None:
        self.ticks += 1
        self.work()


def _query(engine: Engine) -> Callable[[], None]:
    def work() -> None:
        with engine.connect() as conn:
            conn.execute(text("select 1"))

    return work


def _lines(caplog: pytest.LogCaptureFixture, logger: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == logger]


def test_a_database_outage_is_one_line_then_once_a_minute_then_back(
    dead_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    answering = {"db": False}

    def work() -> None:
        if not answering["db"]:
            _query(dead_engine)()

    tasks = [Task("job-outbox", work), Task("reconcile", work), Task("ttl_chase", work)]
    scheduler = PeriodicScheduler(tasks, lambda: NOW, interval=5)
    clock = FakeMonotonic()
    scheduler.outages = OutageLog(
        logging.getLogger("bot.jobs.periodic"), "periodic tasks", clock=clock
    )

    for _ in range(13):  # a minute of 5-second ticks, three tasks failing in each
        scheduler.run_once()
        clock.now += 5
    answering["db"] = True
    scheduler.run_once()

    lines = _lines(caplog, "bot.jobs.periodic")
    said = [r.getMessage() for r in lines]
    assert len(said) == 3, said
    first, still, back = said
    assert first.startswith("periodic tasks: the database does not answer (")
    assert "unable to open database file" in first and "job-outbox failed first" in first
    assert still.startswith("periodic tasks: the database still does not answer after 1m, 37 ")
    assert "unable to open database file" in still
    assert back == "periodic tasks: the database answers again (it did not for 1m 5s, 39 failures)"
    for record in lines:
        assert record.exc_info is None and "\n" not in record.getMessage()
        assert "sqlalche.me" not in record.getMessage()
        assert "[SQL" not in record.getMessage()
    assert [r.levelname for r in lines] == ["WARNING", "WARNING", "INFO"]
    assert all(t.ticks == 14 for t in tasks)  # one task's outage never stops another


def test_a_bug_in_a_periodic_task_keeps_its_traceback_every_tick(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)

    def broken() -> None:
        raise KeyError("no such slot")

    scheduler = PeriodicScheduler([Task("window-notices", broken)], lambda: NOW)
    scheduler.run_once()
    scheduler.run_once()
    lines = _lines(caplog, "bot.jobs.periodic")
    assert len(lines) == 2
    for record in lines:
        assert record.levelname == "ERROR" and record.exc_info is not None
        assert record.getMessage() == (
            "periodic task window-notices failed; it runs again next tick"
        )


def test_the_outage_traceback_shows_at_debug(
    dead_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    configure("text", logging.INFO, debug=True)  # what `-v serve` / `-v worker` set up
    try:
        root.addHandler(caplog.handler)  # configure replaced every handler
        scheduler = PeriodicScheduler([Task("reconcile", _query(dead_engine))], lambda: NOW)
        scheduler.run_once()
    finally:
        configure("text", logging.INFO)
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
    (line,) = _lines(caplog, "bot.jobs.periodic")
    assert line.levelname == "WARNING" and line.exc_info is not None
    assert logging.getLogger("bot").level == logging.NOTSET  # reset for later tests


def test_what_counts_as_an_outage(dead_engine: Engine) -> None:
    import redis

    with pytest.raises(Exception) as caught:
        _query(dead_engine)()
    assert unreachable(caught.value) == DATABASE
    refused = redis.Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=1)
    with pytest.raises(redis.ConnectionError) as down:
        refused.ping()
    assert unreachable(down.value) == JOB_QUEUE
    assert unreachable(KeyError("bug")) is None
    assert unreachable(redis.ResponseError("WRONGTYPE")) is None


@contextmanager
def _consuming(huey: Huey, workers: int = 2) -> Iterator[InProcessConsumer]:
    consumer = InProcessConsumer(huey, workers=workers, poll_interval=0.05)
    consumer.start()
    try:
        yield consumer
    finally:
        consumer.stop(timeout=5)


def _wait_for(found: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not found():
        assert time.monotonic() < deadline, "not logged in time"
        time.sleep(0.05)


def test_huey_workers_say_a_redis_outage_once_and_when_it_is_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    server = RedisServer(tmp_path).start()
    try:
        huey = make_huey("redis", redis_url=server.url, name="outage-logs")
        with _consuming(huey):
            time.sleep(0.3)
            server.stop()

            def ours() -> list[str]:
                return [r.getMessage() for r in _lines(caplog, "bot.jobs.queue")]

            _wait_for(lambda: any("does not answer" in m for m in ours()), 10)
            time.sleep(3)  # before: ~10 tracebacks a second from two workers and the scheduler
            huey_lines = [r for r in caplog.records if r.name.startswith("huey")]
            assert huey_lines == [], [r.getMessage() for r in huey_lines]
            (down,) = ours()
            assert down.startswith("job queue workers: the job queue does not answer (")
            assert "\n" not in down and "Traceback" not in down
            server.start()
            _wait_for(lambda: any("answers again" in m for m in ours()), 10)
    finally:
        server.stop()
    assert [r.levelname for r in _lines(caplog, "bot.jobs.queue")] == ["WARNING", "INFO"]
    assert all(r.exc_info is None for r in caplog.records)


def test_a_queue_read_that_fails_for_another_reason_keeps_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    huey = make_huey("memory", name="read-bug")

    def broken() -> None:
        raise ValueError("a bug in the storage")

    huey.storage.dequeue = broken
    with _consuming(huey, workers=1):
        _wait_for(lambda: any(r.name == "huey.consumer.Worker" for r in caplog.records), 5)
    record = next(r for r in caplog.records if r.name == "huey.consumer.Worker")
    assert record.getMessage() == "Error reading from queue" and record.exc_info is not None


def test_the_slack_notifier_tells_a_database_outage_once_not_every_tick(
    dead_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """Seen on two workers and `serve` while PostgreSQL was down for 12 s:
    about 680 log lines each, "could not drain the Slack outbox; tried again
    later" with a 55-line traceback every tick. The notifier now tells it as
    the periodic tasks do: one line, then at most one a minute, no
    traceback (it is at DEBUG, -v), and one line once it answers again."""
    from slack_sdk import WebClient

    from bot.notify import ThreadNotifier
    from bot.notify.pacing import ChannelPacer
    from templates import Renderer
    from templates.blocks import SlackRenderer

    caplog.set_level(logging.INFO)
    notifier = ThreadNotifier(
        dead_engine,
        WebClient(token="xoxb-test", base_url="http://127.0.0.1:9/api/"),
        SlackRenderer(Renderer()),
        default_channel="C0OPS",
        demo=False,
        start_after_restore=False,
        pacer=ChannelPacer(rate=1000.0, burst=1000),
    )
    clock = FakeMonotonic()
    notifier.outages = OutageLog(
        logging.getLogger("bot.notify.thread"), "Slack notifier", clock=clock
    )
    try:
        for _ in range(12):  # a minute of 5-second drains
            notifier._background_drain()
            notifier._background_progress(7, "50%")
            clock.now += 5
    finally:
        notifier.close()
    lines = [r for r in caplog.records if r.name.startswith("bot.notify")]
    said = [r.getMessage() for r in lines]
    assert len(said) == 1, said
    assert said[0].startswith("Slack notifier: the database does not answer (")
    assert "the Slack outbox keeps what is not posted yet" in said[0]
    assert lines[0].exc_info is None and "\n" not in said[0]


def test_a_periodic_task_the_configuration_stops_says_so_once_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Seen (an SRE rolling back a release): the new release's worker, still
    running after `db downgrade`, logged a 50-line traceback every tick
    ("no such column: job.host_call"). The message says what to do: once,
    and again only when it changes or after the task ran."""
    from datetime import UTC, datetime

    from bot.context import SchemaOutOfDate
    from bot.jobs.periodic import PeriodicScheduler

    class Reconcile:
        name = "reconcile"
        broken = True

        def tick(self, now: datetime) -> None:
            if self.broken:
                raise SchemaOutOfDate(
                    "the database's schema does not match this release (no such column: "
                    "job.host_call): run 'checkpoint-bot db status'"
                )

    task = Reconcile()
    scheduler = PeriodicScheduler([task], lambda: datetime(2026, 12, 6, tzinfo=UTC))
    with caplog.at_level(logging.INFO, logger="bot.jobs.periodic"):
        for _ in range(3):
            scheduler.run_once()
        task.broken = False
        scheduler.run_once()
        task.broken = True
        scheduler.run_once()
    said = [r for r in caplog.records if r.name == "bot.jobs.periodic"]
    assert [r.exc_info for r in said] == [None, None]
    assert [r.getMessage() for r in said] == [
        "periodic task reconcile cannot run: the database's schema does not match this "
        "release (no such column: job.host_call): run 'checkpoint-bot db status'"
    ] * 2
