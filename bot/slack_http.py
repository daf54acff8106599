"""HTTP mode: the Bolt app behind waitress (a production WSGI server), with
health endpoints for the load balancer or orchestrator in front of it.

    /slack/events   slash commands, interactivity and events (signed by Slack;
                    size, signature and syntax checked first: bot.slack_intake)
    /healthz        200 while the process serves at all
    /readyz         200 when the database answers and the job consumer runs,
                    else 503 with what is wrong (`serve` passes the full
                    readiness of bot/observe/health.py: schema, queue too)
    /metrics        Prometheus' text format, when given the metrics

This port is the one exposed to Slack, so to whoever else reaches it: with
`only_liveness` (the process has a health port of its own, which serves
them) /readyz and /metrics are a plain 404 here, as any unknown path is.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from sqlalchemy import text
from sqlalchemy.engine import Engine

from bot import slack_intake
from bot.observe.health import Readiness, answer, flag_check
from bot.observe.metrics import Metrics
from bot.slack_intake import Refusal

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

    from bot.jobs import InProcessConsumer

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
# What the Slack port answers besides EVENTS_PATH when a health port serves the rest.
LIVENESS_PATH = "/healthz"


def consumer_running(consumer: InProcessConsumer | None) -> bool:
    """True while the in-process consumer's worker threads are alive."""
    return consumer is not None and consumer.running


def database_answers(engine: Engine) -> bool:
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except Exception:
        log.warning("readiness: the database does not answer", exc_info=True)
        return False
    return True


class SlackWsgi:
    """Routes Slack's requests to Bolt and answers the health checks."""

    def __init__(
        self,
        app: App,
        *,
        database_ok: Callable[[], bool],
        consumer_ok: Callable[[], bool],
        signing_secret: str,
        readiness: Readiness | None = None,
        metrics: Metrics | None = None,
        only_liveness: bool = False,
    ) -> None:
        self.bolt = SlackRequestHandler(app, path=EVENTS_PATH)
        self.database_ok, self.consumer_ok = database_ok, consumer_ok
        self.signing_secret = signing_secret
        self.readiness = readiness or Readiness(
            [
                ("database", flag_check(database_ok, "")),
                ("job consumer", flag_check(consumer_ok, "")),
            ]
        )
        # Still given when only_liveness: refusals are counted here and
        # scraped from the health port.
        self.metrics = metrics
        self.only_liveness = only_liveness

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == EVENTS_PATH:
            return self._events(environ, start_response)
        if self.only_liveness and path != LIVENESS_PATH:
            # The same answer as a path that never existed: nothing tells a
            # scanner that readiness or metrics are served anywhere.
            return _plain(start_response, "404 Not Found", "not found\n")
        found = answer(path, self.readiness, self.metrics)
        if found is None:
            return _plain(start_response, "404 Not Found", "not found\n")
        reason = "OK" if found.status == 200 else "Service Unavailable"
        start_response(
            f"{found.status} {reason}",
            [("Content-Type", found.content_type), ("Content-Length", str(len(found.body)))],
        )
        return [found.body]

    def _events(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Bolt gets a request only once it is small, signed and parses;
        it then reads the body from memory, never from the socket."""
        if environ.get("REQUEST_METHOD") != "POST":
            return _plain(start_response, "405 Method Not Allowed", "POST only\n")
        declared = slack_intake.content_length(environ)
        if isinstance(declared, Refusal):
            return self._refuse(start_response, declared, environ)
        body = slack_intake.read_body(environ["wsgi.input"], declared)
        if isinstance(body, Refusal):
            return self._refuse(start_response, body, environ)

        def header(name: str) -> str | None:
            value = environ.get("HTTP_" + name.upper().replace("-", "_"))
            return None if value is None else str(value)

        refusal = slack_intake.check_signature(header, body, self.signing_secret)
        if refusal is not None:
            return self._refuse(start_response, refusal, environ)
        refusal = slack_intake.check_payload(str(environ.get("CONTENT_TYPE", "")), body)
        if refusal is not None:
            # Signed, so Slack's (or the secret's holder's): worth a warning.
            return self._refuse(start_response, refusal, environ, level=logging.WARNING)
        checked = dict(environ)
        checked["wsgi.input"] = io.BytesIO(body)
        checked["CONTENT_LENGTH"] = str(len(body))
        return self.bolt(checked, start_response)

    def _refuse(
        self,
        start_response: StartResponse,
        refusal: Refusal,
        environ: WSGIEnvironment,
        *,
        level: int = logging.INFO,
    ) -> list[bytes]:
        """Counted (a signing secret rotated on one side only refuses every
        request, and Bolt, which counts commands, never sees them), then
        answered."""
        if self.metrics is not None:
            self.metrics.slack_refused.labels(_why(refusal)).inc()
        return _refuse(start_response, refusal, environ, level=level)


def _why(refusal: Refusal) -> str:
    if refusal.status.startswith("401"):
        return "signature"
    if refusal.status.startswith("413"):
        return "too_large"
    return "malformed"


def _refuse(
    start_response: StartResponse,
    refusal: Refusal,
    environ: WSGIEnvironment,
    *,
    level: int = logging.INFO,
) -> list[bytes]:
    # The reason and the peer only: a body is never logged (it may be huge,
    # and an unsigned one is anybody's text).
    peer = environ.get("REMOTE_ADDR", "?")
    log.log(level, "refused a request from %s: %s", peer, refusal.reason)
    return _plain(start_response, refusal.status, refusal.reason + "\n")


def _plain(start_response: StartResponse, status: str, body: str) -> list[bytes]:
    data = body.encode()
    start_response(
        status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data)))]
    )
    return [data]


class HttpServer:
    """waitress on one address; `run()` blocks, `stop()` ends it from any thread."""

    def __init__(self, wsgi: Callable[..., Any], host: str, port: int, threads: int = 16) -> None:
        from waitress.server import create_server  # type: ignore[import-untyped]

        # Slack's requests are small and must be answered in 3 s; many
        # threads keep a burst of commands from queueing behind each other.
        self._server: Any = create_server(
            wsgi,
            host=host,
            port=port,
            threads=threads,
            ident="checkpoint-bot",
            # waitress itself refuses (413) a larger body before buffering it.
            max_request_body_size=slack_intake.MAX_BODY,
            clear_untrusted_proxy_headers=True,
        )
        self.host, self.port = host, int(self._server.effective_port)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def run(self) -> None:
        self._server.run()

    def start(self) -> HttpServer:
        """Serve in a daemon thread (`serve --http`, tests, the bench)."""
        self._thread = threading.Thread(target=self.run, name="waitress", daemon=True)
        self._thread.start()
        return self

    def wait(self) -> None:
        """Block until the loop ends; short joins, so a signal handler in
        the main thread (Ctrl-C, SIGTERM) runs at once."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(0.5)

    def drain(self, timeout: float) -> bool:
        """Take no new connection and wait (up to `timeout`) until no request
        is being handled; True when none is. For a caller that first ends
        its long-running requests (the playground's long polls), so `stop()`
        closes no connection in the middle of an answer."""
        self._server.accepting = False  # the loop stops polling the listener
        dispatcher = self._server.task_dispatcher
        deadline = time.monotonic() + timeout
        while True:
            with dispatcher.lock:
                idle = not dispatcher.queue and dispatcher.active_count == 0
            # An answer is written by the loop after its task ends: wait
            # until every channel has sent what it holds.
            idle = idle and not any(
                getattr(channel, "total_outbufs_len", 0) or getattr(channel, "requests", None)
                for channel in list(self._server._map.values())
            )
            if idle or time.monotonic() >= deadline:
                return idle
            time.sleep(0.01)

    def stop(self, timeout: float = 5.0) -> None:
        """End the loop and let running requests finish (up to `timeout`)."""
        from waitress import wasyncore  # type: ignore[import-untyped]

        server = self._server
        loop_running = self._thread is not None and self._thread.is_alive()
        if loop_running:
            # Sockets may only be closed by the loop's own thread (else select()
            # sees a closed fd): hand it the close; an empty map ends the loop.
            # An OSError: the loop closed its trigger on its way out (it ended
            # between the is_alive() check and the pull), nothing to wake.
            with contextlib.suppress(OSError):
                server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
            assert self._thread is not None
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the HTTP loop did not end within %.0f s", timeout)
        else:
            wasyncore.close_all(server._map)
        server.task_dispatcher.shutdown(timeout=timeout)
