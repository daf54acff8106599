"""Liveness, readiness and metrics over HTTP, for whatever supervises the
process (Kubernetes probes, a compose healthcheck, Prometheus).

    /healthz   200 while the process answers at all
    /readyz    200 "ready" when every check passes, else 503 naming each
               failing check ("not ready: job queue (ConnectionError)")
    /metrics   Prometheus' text format

`Readiness` is a list of named checks; each returns None when fine or a
short reason (never a URL, which may carry a password). `HealthServer` is
the standard library's threading HTTP server on its own daemon thread, for
`serve` in Socket Mode and for `worker`, which have no HTTP server of their
own; in HTTP mode the same answers come from the main port as well.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Engine

from bot.observe.metrics import Metrics
from bot.store.db import driver_reason

if TYPE_CHECKING:
    from huey import Huey

log = logging.getLogger(__name__)

Check = Callable[[], str | None]


@dataclass
class Readiness:
    checks: list[tuple[str, Check]] = field(default_factory=list)

    def add(self, name: str, check: Check) -> Readiness:
        self.checks.append((name, check))
        return self

    def problems(self) -> list[str]:
        """`name (reason)` of each failing check, in order."""
        found = []
        for name, check in self.checks:
            try:
                why = check()
            except Exception as exc:
                # A check that breaks is a failing check, not a crash.
                why = type(exc).__name__
            if why is not None:
                found.append(f"{name} ({why})" if why else name)
        return found


def database_check(engine: Engine, head: Callable[[], str | None]) -> Check:
    """The database answers, and is at the schema this code expects."""

    def check() -> str | None:
        from bot.store import migrate

        try:
            with engine.connect() as conn:
                conn.execute(text("select 1"))
            current = migrate.current_revision(engine)
        except Exception as exc:
            # The log gets the driver's reason for whoever is on call; the
            # probe's answer, which anyone who reaches the port reads, only
            # the kind of failure.
            log.warning("readiness: the database does not answer: %s", driver_reason(exc))
            return f"unreachable: {type(exc).__name__}"
        expected = head()
        if current != expected:
            found = current or "none"
            return f"schema {found}, expected {expected}: run 'checkpoint-bot db upgrade'"
        return None

    return check


def queue_check(huey: Huey) -> Check:
    """The queue's storage answers (Redis up, the SQLite file readable)."""

    def check() -> str | None:
        try:
            huey.storage.queue_size()
        except Exception as exc:
            # As for the database: the reason in the log, its kind in the probe.
            log.warning("readiness: the job queue does not answer: %s", driver_reason(exc))
            return f"unreachable: {type(exc).__name__}"
        return None

    return check


def flag_check(ok: Callable[[], bool], reason: str) -> Check:
    def check() -> str | None:
        return None if ok() else reason

    return check


def process_readiness(
    engine: Engine,
    huey: Huey,
    *,
    consumer_running: Callable[[], bool] | None = None,
    slack_connected: Callable[[], bool] | None = None,
) -> Readiness:
    """What `serve` and `worker` report: the database at the head schema,
    the queue reachable, the consumer running (when the process runs one),
    Slack connected (Socket Mode)."""
    from bot.store import migrate

    # The head is this installation's: read the migration scripts once.
    head = migrate.head_revision()
    checks = Readiness()
    checks.add("database", database_check(engine, lambda: head))
    checks.add("job queue", queue_check(huey))
    if consumer_running is not None:
        checks.add("job consumer", flag_check(consumer_running, "not running"))
    if slack_connected is not None:
        checks.add("slack", flag_check(slack_connected, "Socket Mode not connected"))
    return checks


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes


def answer(path: str, readiness: Readiness, metrics: Metrics | None) -> Answer | None:
    """What /healthz, /readyz or /metrics answers; None for other paths."""
    plain = "text/plain; charset=utf-8"
    if path == "/healthz":
        return Answer(200, plain, b"ok\n")
    if path == "/readyz":
        problems = readiness.problems()
        if problems:
            return Answer(503, plain, f"not ready: {', '.join(problems)}\n".encode())
        return Answer(200, plain, b"ready\n")
    if path == "/metrics" and metrics is not None:
        body, content_type = metrics.exposition()
        return Answer(200, content_type, body)
    return None


class HealthServer:
    """/healthz, /readyz and /metrics on `host:port`, in a daemon thread."""

    def __init__(self, readiness: Readiness, metrics: Metrics | None, host: str, port: int) -> None:
        class Handler(BaseHTTPRequestHandler):
            server_version = "checkpoint-bot"
            sys_version = ""  # no Python version in the Server header

            def log_message(self, format: str, *args: object) -> None:
                # Probes every few seconds would drown the log.
                pass

            def do_GET(self) -> None:
                found = answer(self.path.split("?", 1)[0], readiness, metrics)
                if found is None:
                    found = Answer(404, "text/plain; charset=utf-8", b"not found\n")
                self.send_response(found.status)
                self.send_header("Content-Type", found.content_type)
                self.send_header("Content-Length", str(len(found.body)))
                self.end_headers()
                self.wfile.write(found.body)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.host, self.port = host, int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="health", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()
