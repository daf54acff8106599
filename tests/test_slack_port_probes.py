"""What `serve --http`'s Slack port answers besides /slack/events.

The Slack port is the one the Ingress or reverse proxy exposes to Slack, so
to whoever else reaches it. /metrics (host and cluster names, which cmdlets
run and fail) and /readyz (what is wrong) are not theirs to read: with a
health port (`--health-port` or `observability.health_port`) they are
served there only, and the Slack port answers /slack/events and a liveness
/healthz, anything else a plain 404. Without one they stay on the Slack
port, as scrape configs written for earlier releases expect, and a Slack
port bound beyond loopback says so once at start.

Real HTTP throughout: the WSGI app behind waitress in this process, and
`checkpoint-bot serve --http` as a process of its own.
"""

from __future__ import annotations

import http.client
import re
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from slack_bolt import App

from bot.cli.serve_cmd import on_loopback
from bot.observe.metrics import Metrics
from bot.slack_http import HttpServer, SlackWsgi
from tests.multiproc_support import (
    CHECKPOINT_BOT,
    DEMO_INVENTORY,
    Cluster,
    Proc,
    process_env,
    wait_until,
)
from tests.slack_support import BOT_TOKEN, SIGNING_SECRET, FakeSlackApi, SlackSender

NOT_FOUND = (404, "text/plain; charset=utf-8", "not found\n")
# The paths a health port keeps to itself, spelled as a client might:
# percent-encoded (waitress decodes PATH_INFO) or with a query string.
PRIVATE = ("/metrics", "/readyz", "/%6Detrics", "/readyz?verbose=1", "/metrics?name[]=x")
WARNING = re.compile(r"^checkpoint-bot: warning: .*$", re.MULTILINE)


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: str


def fetch(url: str, path: str, method: str = "GET") -> Answer:
    split = urlsplit(url)
    conn = http.client.HTTPConnection(split.hostname or "127.0.0.1", split.port, timeout=10)
    try:
        conn.request(method, path)
        found = conn.getresponse()
        return Answer(found.status, found.getheader("Content-Type", ""), found.read().decode())
    finally:
        conn.close()


def not_found(answer: Answer) -> tuple[int, str, str]:
    return answer.status, answer.content_type, answer.body


# --- the WSGI app, in this process ----------------------------------------------------------


@pytest.fixture
def slack_port() -> Iterator[tuple[str, str, Metrics]]:
    """Two Slack ports of one Bolt app and one registry: the default one,
    and one whose process has a health port (`only_liveness`)."""
    app = App(token=BOT_TOKEN, signing_secret=SIGNING_SECRET, token_verification_enabled=False)
    metrics = Metrics()
    servers = []
    for only_liveness in (False, True):
        wsgi = SlackWsgi(
            app,
            database_ok=lambda: True,
            consumer_ok=lambda: True,
            signing_secret=SIGNING_SECRET,
            metrics=metrics,
            only_liveness=only_liveness,
        )
        servers.append(HttpServer(wsgi, "127.0.0.1", 0, threads=2).start())
    try:
        yield servers[0].url, servers[1].url, metrics
    finally:
        for server in servers:
            server.stop()


def test_a_slack_port_beside_a_health_port_answers_liveness_and_nothing_private(
    slack_port: tuple[str, str, Metrics],
) -> None:
    default, beside_health, metrics = slack_port
    assert fetch(beside_health, "/healthz") == Answer(200, "text/plain; charset=utf-8", "ok\n")
    # Indistinguishable from a path that never existed: nothing tells a
    # scanner there is anything to find.
    assert not_found(fetch(beside_health, "/no-such-path")) == NOT_FOUND
    for path in PRIVATE:
        for method in ("GET", "HEAD", "POST"):
            answer = fetch(beside_health, path, method)
            assert answer.status == 404, (path, method, answer)
            if method != "HEAD":
                assert not_found(answer) == NOT_FOUND, (path, method)
    # The events path is still this port's, refusals still counted in the
    # registry the health port serves.
    refused = fetch(beside_health, "/slack/events", "POST")
    assert refused.status == 401, refused
    assert metrics.slack_refused.labels("signature")._value.get() == 1
    # The default port (no health port in the process) serves them, as before.
    metrics_page = fetch(default, "/metrics")
    assert metrics_page.status == 200
    assert 'checkpoint_bot_slack_requests_refused_total{why="signature"} 1.0' in metrics_page.body
    assert fetch(default, "/readyz") == Answer(200, "text/plain; charset=utf-8", "ready\n")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.53", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),  # noqa: S104 (the address under test)
        ("::", False),
        ("10.1.2.3", False),
        ("bot.corp.example", False),
        ("", False),  # waitress binds every address for an empty host
    ],
)
def test_only_loopback_addresses_count_as_private(host: str, loopback: bool) -> None:
    assert on_loopback(host) is loopback


# --- checkpoint-bot serve --http, a process of its own ----------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    proc: Proc
    url: str  # the Slack port, as 127.0.0.1 reaches it
    health: str | None
    api: FakeSlackApi

    def stderr(self) -> str:
        return self.proc.stderr.read_text(encoding="utf-8", errors="replace")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """Starts `serve --http` on the simulated demo estate with the given
    options (and config keys); each returns once it listens."""
    with Cluster(tmp_path / "run") as cluster, FakeSlackApi() as api:
        env = process_env(
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_URL=api.api_url,
        )
        migrated: list[Path] = []

        def start(*options: str, **config_keys: object) -> Served:
            config = cluster.workdir / f"checkpoint-bot-{len(migrated)}.yaml"
            data = {
                "inventory": str(DEMO_INVENTORY),
                "database_url": f"sqlite:///{cluster.workdir / 'bot.db'}",
                "workdir": str(cluster.workdir),
                "hyperv": {"backend": "simulator"},
                "jobs": {"queue": "sqlite", "workers": 1},
                "slack": {"api_url": api.api_url, "team_ids": ["T0TEST"]},
                "sweep": {"enabled": False},
                **config_keys,
            }
            config.write_text(yaml.safe_dump(data), encoding="utf-8")
            if not migrated:
                upgraded = cluster.cli(config, env, "db", "upgrade")
                assert upgraded.returncode == 0, upgraded.stderr
            migrated.append(config)
            argv = [CHECKPOINT_BOT, "--config", str(config), "serve", "--http", *options]
            proc = cluster.start("serve", argv, env)
            found = proc.wait_for_output(r"over HTTP on http://[\d.]+:(\d+)/slack/events", 60)
            health = re.search(r"health on (http://[\d.]+:\d+) ", proc.output())
            url = f"http://127.0.0.1:{found.group(1)}"
            return Served(proc, url, health.group(1) if health else None, api)

        yield start


@pytest.mark.slow
def test_serve_with_a_health_port_keeps_metrics_and_readiness_off_the_slack_port(
    serve: Callable[..., Served],
) -> None:
    bot = serve("--host", "0.0.0.0", "--port", "0", "--health-port", "0")  # noqa: S104
    health = bot.health
    assert health is not None
    # The Slack port: Slack's requests and a liveness answer, nothing else.
    reply, _ = SlackSender(bot.url, bot.api).command("help")
    assert reply.status == 200, reply
    assert fetch(bot.url, "/healthz") == Answer(200, "text/plain; charset=utf-8", "ok\n")
    for path in PRIVATE:
        assert not_found(fetch(bot.url, path)) == NOT_FOUND, path
    # The health port: all three, the Slack port's traffic counted.
    assert fetch(health, "/healthz").body == "ok\n"
    assert fetch(health, "/readyz") == Answer(200, "text/plain; charset=utf-8", "ready\n")
    counted = 'checkpoint_bot_slack_commands_total{command="help",outcome="ok"} 1.0'
    # Counted once the handler returns, which may be just after the ack.
    wait_until(lambda: counted in fetch(health, "/metrics").body, 10, "help to be counted")
    # Nothing to warn about, and the start-up line says where they went.
    stderr = bot.stderr()
    assert WARNING.findall(stderr) == [], stderr
    assert "readiness and metrics on the health port" in stderr


@pytest.mark.slow
def test_the_config_keys_health_port_keeps_them_off_the_slack_port_too(
    serve: Callable[..., Served],
) -> None:
    port = free_port()
    bot = serve("--port", "0", observability={"health_port": port})
    assert bot.health == f"http://127.0.0.1:{port}"
    for path in PRIVATE:
        assert not_found(fetch(bot.url, path)) == NOT_FOUND, path
    assert fetch(bot.url, "/healthz").body == "ok\n"
    assert fetch(bot.health, "/readyz").body == "ready\n"
    assert fetch(bot.health, "/metrics").body.count("# TYPE checkpoint_bot_") > 10


@pytest.mark.slow
def test_a_public_slack_port_without_a_health_port_serves_them_and_says_so_once(
    serve: Callable[..., Served],
) -> None:
    bot = serve("--host", "0.0.0.0", "--port", "0")  # noqa: S104
    assert bot.health is None
    # As before: scrape configs that name the Slack port keep working.
    assert fetch(bot.url, "/readyz") == Answer(200, "text/plain; charset=utf-8", "ready\n")
    assert "# TYPE checkpoint_bot_slack_commands_total counter" in fetch(bot.url, "/metrics").body
    (warning,) = WARNING.findall(bot.stderr())
    assert "/metrics and /readyz" in warning
    assert "0.0.0.0:" in warning and "--health-port" in warning


@pytest.mark.slow
def test_a_loopback_slack_port_without_a_health_port_says_nothing_more(
    serve: Callable[..., Served],
) -> None:
    bot = serve("--host", "127.0.0.1", "--port", "0")
    assert fetch(bot.url, "/metrics").status == 200
    assert fetch(bot.url, "/readyz").body == "ready\n"
    stderr = bot.stderr()
    assert WARNING.findall(stderr) == [], stderr
    assert "(health: /healthz, readiness: /readyz, metrics: /metrics)" in stderr
