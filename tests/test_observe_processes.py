"""Issue #16, items 5-7, with real processes: `serve` (HTTP and Socket
Mode) and `worker` probed over HTTP on their health ports; `/metrics` of a
bot that ran a create and a rollback through signed requests against the
WinRM emulator; the JSON log line of that create.

Redis going down is a real redis-server of the test's own (on a free port)
being stopped: the shared one other tests use is never touched.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from bot.store.models import change_ref
from tests.multiproc_support import (
    CHECKPOINT_BOT,
    DEMO_INVENTORY,
    BotProc,
    Cluster,
    Proc,
    process_env,
    wait_until,
)
from tests.slack_support import BOT_TOKEN, SIGNING_SECRET, FakeSlackApi, SlackSender
from tests.socket_mode_support import FakeSocketModeServer
from tests.test_multiprocess import (  # noqa: F401 (the fixtures)
    NO_ROLLBACK_APPROVAL,
    Deployment,
    change_by_id,
    deployment_factory,
    fresh_pg_url,
    jobs_of,
    latest_change,
)
from tests.test_scale_out import redis_url  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.slow, pytest.mark.multiprocess]

HEALTH = r"health on (http://[\d.]+:\d+) "


def get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    split = urlsplit(url)
    conn = http.client.HTTPConnection(split.hostname or "127.0.0.1", split.port, timeout=timeout)
    try:
        conn.request("GET", split.path or "/")
        answer = conn.getresponse()
        return answer.status, answer.read().decode()
    finally:
        conn.close()


def samples(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a /metrics page: (name, labels) -> value."""
    status, body = get(url + "/metrics")
    assert status == 200, body
    found = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            found[(s.name, frozenset(s.labels.items()))] = s.value
    return found


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    """The sum over samples of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in found.items() if n == name and want <= ls)


def start_bot(
    cluster: Cluster, config: Path, env: dict[str, str], *extra: str
) -> tuple[BotProc, str]:
    argv = [CHECKPOINT_BOT, "--config", str(config), "serve", "--http", "--port", "0", *extra]
    proc = cluster.start("serve", argv, env)
    found = proc.wait_for_output(r"over HTTP on (http://[\d.]+:\d+)/slack/events", timeout=60)
    health = proc.wait_for_output(HEALTH, timeout=10).group(1)
    return BotProc(proc, found.group(1)), health


def json_lines(proc: Proc) -> list[dict[str, Any]]:
    lines = []
    for line in proc.stderr.read_text(encoding="utf-8", errors="replace").splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            parsed = json.loads(line)
            if isinstance(parsed, dict):
                lines.append(parsed)
    return lines


# --- metrics and logs of a create and a rollback --------------------------------------------


@pytest.mark.postgres
def test_metrics_move_and_the_create_logs_its_change_and_job(
    deployment_factory: Callable[..., Deployment],  # noqa: F811 (the fixture)
) -> None:
    dep = deployment_factory(policy_text=NO_ROLLBACK_APPROVAL)
    bot, health = start_bot(
        dep.cluster, dep.config, dep.env, "--health-port", "0", "--log-format", "json"
    )
    sender = SlackSender(bot.url, dep.api)
    # With a health port, the metrics are there only: the Slack port, which
    # whoever reaches Slack's endpoint reaches, does not serve them.
    assert get(bot.url + "/metrics") == (404, "not found\n")
    # The Slack port's traffic is counted in the registry the health port serves.
    before = samples(health)
    assert value(before, "checkpoint_bot_slack_commands_total", command="create") == 0

    reply, _ = sender.command("create WEB01 --reason patching KB5044284", user="U0ALICE")
    assert reply.status == 200, reply
    change = wait_until(
        lambda: (c := latest_change(dep.engine, "WEB01")) is not None and c.state == "active" and c,
        60,
        "WEB01's change to be active",
        explain=dep.explain,
    )
    assert change.id is not None
    ref = change_ref(change.id)
    reply, _ = sender.click("checkpoint:rollback", f"{ref}:v{change.version}", user="U0BOB")
    assert reply.status == 200, reply
    wait_until(
        lambda: change_by_id(dep.engine, change.id).state == "rolled_back",
        60,
        f"{ref} to be rolled back",
        explain=dep.explain,
    )

    # The job's counter moves when the runner returns, after the record.
    def after_restore() -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
        found = samples(health)
        done = value(found, "checkpoint_bot_jobs_total", kind="rollback", outcome="succeeded")
        return found if done >= 1 else None

    after = wait_until(after_restore, 20, "the restore job to be counted")

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    slack = {k: v for k, v in after.items() if k[0].startswith("checkpoint_bot_slack_")}

    assert moved("checkpoint_bot_slack_commands_total", command="create", outcome="ok") == 1, slack
    assert moved("checkpoint_bot_slack_actions_total", action="checkpoint:rollback") == 1
    assert moved("checkpoint_bot_slack_ack_seconds_count", type="command") == 1
    assert moved("checkpoint_bot_slack_ack_seconds_count", type="block_actions") == 1
    assert moved("checkpoint_bot_policy_decisions_total", action="create", verdict="allow") >= 1
    assert moved("checkpoint_bot_policy_decisions_total", action="rollback") >= 1
    assert moved("checkpoint_bot_jobs_total", kind="create", outcome="succeeded") == 1
    assert moved("checkpoint_bot_job_duration_seconds_count", kind="create") == 1
    assert moved("checkpoint_bot_host_calls_total", cmdlet="Checkpoint-VM", host="HV01") == 1
    assert moved("checkpoint_bot_host_calls_total", cmdlet="Restore-VMSnapshot", outcome="ok") == 1
    assert moved("checkpoint_bot_host_call_seconds_count", cmdlet="Checkpoint-VM") == 1
    assert (
        moved("checkpoint_bot_slack_api_calls_total", method="chat.postMessage", outcome="ok") >= 2
    )
    # Scrape-time gauges from the record: the rolled-back change still
    # holds its checkpoint, in HV01's host group.
    assert value(after, "checkpoint_bot_database_up") == 1
    assert value(after, "checkpoint_bot_active_checkpoints") == 1
    assert value(after, "checkpoint_bot_queue_depth") == 0

    create_job = jobs_of(dep.engine, change.id, "create")[0]
    lines = json_lines(bot.proc)
    assert lines, bot.proc.tail()
    assert all({"timestamp", "level", "logger", "message"} <= set(line) for line in lines)
    of_create = [
        line
        for line in lines
        if line.get("change") == ref and line.get("job") == str(create_job.id)
    ]
    assert of_create, lines[-20:]
    assert {line["job_kind"] for line in of_create} == {"create"}
    assert all(line["vm"] == change.vm_id and line["host"] == "HV01" for line in of_create)
    # Each Slack request has its access line, with its own request id and user.
    (command_line,) = [
        line for line in lines if line["message"].startswith("slack command create: ok")
    ]
    (click_line,) = [
        line
        for line in lines
        if line["message"].startswith("slack block_actions checkpoint:rollback: ok")
    ]
    assert command_line["slack_user"] == "U0ALICE" and click_line["slack_user"] == "U0BOB"
    assert command_line["request_id"] != click_line["request_id"]
    # Neither the signing secret nor the token reaches the log, nor the
    # command's text.
    assert not any("KB5044284" in line["message"] for line in lines)
    text = bot.proc.output()
    assert SIGNING_SECRET not in text and BOT_TOKEN not in text


# --- readiness: Redis down -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[Cluster, Proc, str]]:
    """A redis-server of this test's own, which the test may stop."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed (the Makefile's CI setup installs it)")
    with Cluster(tmp_path / "run") as cluster:
        port = free_port()
        proc = cluster.start(
            "redis",
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            process_env(),
        )
        proc.wait_for_output(r"Ready to accept connections", timeout=20)
        yield cluster, proc, f"redis://127.0.0.1:{port}/0"


def simulator_config(
    path: Path, *, database_url: str, queue: dict[str, Any], slack_api_url: str
) -> Path:
    """A deployment on the simulated demo estate (no emulator needed)."""
    data = {
        "inventory": str(DEMO_INVENTORY),
        "database_url": database_url,
        "workdir": str(path.parent),
        "hyperv": {"backend": "simulator"},
        "jobs": {"workers": 2, **queue},
        "slack": {"api_url": slack_api_url, "changes_channel": "C0CHANGES", "team_ids": ["T0TEST"]},
        "sweep": {"enabled": False},
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.mark.postgres
def test_readyz_is_503_naming_the_queue_when_redis_is_down(
    private_redis: tuple[Cluster, Proc, str],
    fresh_pg_url: str,  # noqa: F811 (the fixture)
) -> None:
    cluster, redis_proc, url = private_redis
    with FakeSlackApi() as api:
        config = simulator_config(
            cluster.workdir / "checkpoint-bot.yaml",
            database_url=fresh_pg_url,
            queue={"queue": "redis", "redis_url": url, "queue_name": "cb-obs"},
            slack_api_url=api.api_url,
        )
        env = process_env(
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_URL=api.api_url,
        )
        worker = cluster.start(
            "worker",
            [CHECKPOINT_BOT, "--config", str(config), "worker", "--health-port", "0"],
            env,
        )
        worker_health = worker.wait_for_output(HEALTH, timeout=60).group(1)
        bot, bot_health = start_bot(cluster, config, env, "--no-worker", "--health-port", "0")

        for probe in (worker_health, bot_health):
            assert get(probe + "/healthz") == (200, "ok\n")
            assert get(probe + "/readyz") == (200, "ready\n"), cluster.diagnostics()
        # The bot's Slack port: liveness only, its readiness on the health port.
        assert get(bot.url + "/healthz") == (200, "ok\n")
        assert get(bot.url + "/readyz") == (404, "not found\n")
        status, body = get(worker_health + "/metrics")
        assert status == 200 and "checkpoint_bot_queue_depth" in body

        redis_proc.stop()
        for probe in (worker_health, bot_health):
            status, body = get(probe + "/readyz")
            assert status == 503, body
            assert body.startswith("not ready: job queue (unreachable: ConnectionError")
            assert "database" not in body
            # Alive all the same: a supervisor must not restart it for this.
            assert get(probe + "/healthz") == (200, "ok\n")
        # The Slack port says nothing of it: still alive, and no reason given.
        assert get(bot.url + "/healthz") == (200, "ok\n")
        assert get(bot.url + "/readyz") == (404, "not found\n")
        assert worker.alive() and bot.proc.alive()


def test_a_config_key_sets_the_health_port_and_a_bad_port_is_one_line(tmp_path: Path) -> None:
    with Cluster(tmp_path / "run") as cluster, FakeSlackApi() as api:
        config = simulator_config(
            cluster.workdir / "checkpoint-bot.yaml",
            database_url=f"sqlite:///{cluster.workdir / 'bot.db'}",
            queue={"queue": "sqlite"},
            slack_api_url=api.api_url,
        )
        port = free_port()
        data = yaml.safe_load(config.read_text())
        data["observability"] = {"health_port": port, "log_format": "json"}
        config.write_text(yaml.safe_dump(data), encoding="utf-8")
        env = process_env()
        assert cluster.cli(config, env, "db", "upgrade").returncode == 0
        worker = cluster.start("worker", [CHECKPOINT_BOT, "--config", str(config), "worker"], env)
        found = worker.wait_for_output(HEALTH, timeout=60).group(1)
        assert found == f"http://127.0.0.1:{port}"
        assert get(found + "/readyz") == (200, "ready\n")
        # The port is taken now: a second worker says so in one line, exit 2
        # (this machine's port, the config's to change; 3 is a host or the
        # database not answering).
        second = cluster.cli(config, env, "worker", timeout=60)
        assert second.returncode == 2, second.stderr
        assert (
            f"cannot serve health on port {port}: Address already in use; choose" in second.stderr
        )
        assert "Traceback" not in second.stderr


# --- Socket Mode -----------------------------------------------------------------------------


def test_socket_mode_serve_is_ready_while_connected(tmp_path: Path) -> None:
    with Cluster(tmp_path / "run") as cluster, FakeSlackApi() as api:
        server = FakeSocketModeServer().__enter__()
        try:
            api.socket_url = server.url
            config = simulator_config(
                cluster.workdir / "checkpoint-bot.yaml",
                database_url=f"sqlite:///{cluster.workdir / 'bot.db'}",
                queue={"queue": "sqlite"},
                slack_api_url=api.api_url,
            )
            env = process_env(
                SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_APP_TOKEN="xapp-test", SLACK_API_URL=api.api_url
            )
            assert cluster.cli(config, env, "db", "upgrade").returncode == 0
            argv = [CHECKPOINT_BOT, "--config", str(config), "serve", "--health-port", "0"]
            bot = cluster.start("serve", argv, env)
            health = bot.wait_for_output(HEALTH, timeout=60).group(1)
            assert get(health + "/healthz") == (200, "ok\n")
            wait_until(
                lambda: get(health + "/readyz") == (200, "ready\n"),
                30,
                "Socket Mode serve to be ready",
                explain=bot.tail,
            )
            # The client counts itself connected once the handshake's answer
            # arrives; the fake server records the connection a moment later,
            # in its handler's thread (seen once in CI as an empty list).
            open_now = wait_until(
                server.open_connections, 10, "the fake Slack end to hold the connection"
            )
        finally:
            server.__exit__()
        # Slack's end is gone (no new connections, the open one closed):
        # not ready, naming the Slack connection.
        for conn in open_now:
            conn.close()

        def not_ready() -> str | None:
            status, body = get(health + "/readyz")
            return body if status == 503 else None

        body = wait_until(not_ready, 30, "readiness to see Slack gone", explain=bot.tail)
        assert "slack (Socket Mode not connected)" in body
        assert "job queue" not in body and "database" not in body
        assert get(health + "/healthz") == (200, "ok\n")
