"""A clean stop or reload writes no ERROR or WARNING line (on-call saw three
kinds on every deploy); a real failure still does.

- Socket Mode: the close this client starts and the peer answers with 1000
  is the end of a stop, a reload or a refresh, not an error
  (bot/slack_socket.py); a peer that closes with another code is.
- WinRM: a pool closed after the host dropped its kept-alive connection
  (HTTP.sys closes one idle for two minutes) deletes its shell over a new
  connection, with no pypsrp ERROR (bot/hyperv/winrm/pool.py, fresh_seal);
  a transport fault while working is still logged.
- Bolt: `As you gave client as well, token will be unused` on every start
  (Bolt reads $SLACK_BOT_TOKEN itself when given only a client).
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from slack_bolt import App
from slack_sdk import WebClient

from bot.devtools.emulator import EmulatedFleet
from bot.hyperv.errors import HyperVError
from bot.hyperv.winrm.pool import Cmd, PoolSession, WinRMTimeouts
from bot.slack_socket import SocketModeHandler
from tests.emulator_support import start_fleet, wsman
from tests.serve_support import APP_TOKEN, PROXY_VARS, Served, serving_socket_mode
from tests.slack_support import BOT_TOKEN, FakeSlackApi
from tests.socket_mode_support import FakeSocketModeServer

GET_VM = (Cmd("Get-VM"),)
TIMEOUTS = WinRMTimeouts(call=10, connect=2, read=10, operation=2, stop_grace=2)


def listen(caplog: pytest.LogCaptureFixture) -> None:
    """INFO and up from everything, Bolt's and websocket-client's included."""
    caplog.set_level(logging.INFO)
    for name in ("slack_bolt.App", "websocket", "pypsrp"):
        caplog.set_level(logging.INFO, logger=name)


def loud(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        f"{r.levelname} {r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.levelno >= logging.WARNING
    ]


def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{check} still false after {timeout}s"
        time.sleep(0.01)


# --- Socket Mode -------------------------------------------------------------------


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[App, FakeSocketModeServer]]:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    with FakeSlackApi() as api, FakeSocketModeServer() as server:
        api.socket_url = server.url
        app = App(
            client=WebClient(token=BOT_TOKEN, base_url=api.api_url),
            signing_secret="",
            token_verification_enabled=False,
        )
        yield app, server


def connected(app: App, server: FakeSocketModeServer) -> SocketModeHandler:
    n = len(server.connections) + 1
    handler = SocketModeHandler(app, app_token=APP_TOKEN)
    handler.connect()  # type: ignore[no-untyped-call]
    server.wait_connections(n, timeout=5.0)
    wait_until(handler.client.is_connected)
    return handler


def test_closing_the_socket_mode_handler_logs_no_error(
    slack: tuple[App, FakeSocketModeServer], caplog: pytest.LogCaptureFixture
) -> None:
    app, server = slack
    handler = connected(app, server)
    conn = server.connections[-1]
    listen(caplog)
    handler.close()  # type: ignore[no-untyped-call]
    wait_until(lambda: conn.close_code is not None)
    # The handshake happened as before: our close frame, the server's answer.
    assert conn.close_code == 1000 and conn.protocol.close_rcvd is not None
    # Before: "ERROR slack_bolt.App: on_error invoked (... code 1000)" and
    # "ERROR websocket: Connection closed normally (code 1000) - goodbye".
    assert loud(caplog) == []
    assert "Stopped receiving messages from a connection" in caplog.text


def test_a_refresh_logs_no_error(
    slack: tuple[App, FakeSocketModeServer], caplog: pytest.LogCaptureFixture
) -> None:
    app, server = slack
    handler = connected(app, server)
    try:
        old = server.connections[-1]
        listen(caplog)
        server.ask_to_reconnect()
        server.wait_connections(2, timeout=5.0)
        wait_until(lambda: old.close_code is not None)
        wait_until(lambda: "Stopped receiving messages" in caplog.text)
        assert loud(caplog) == []
    finally:
        handler.close()  # type: ignore[no-untyped-call]


def test_a_peer_that_closes_abnormally_is_still_an_error(
    slack: tuple[App, FakeSocketModeServer], caplog: pytest.LogCaptureFixture
) -> None:
    app, server = slack
    handler = connected(app, server)
    try:
        listen(caplog)
        server.connections[-1].close(code=1011, reason="internal error")
        server.wait_connections(2, timeout=5.0)  # and it reconnects
        wait_until(lambda: any("goodbye" in line for line in loud(caplog)))
        said = loud(caplog)
        assert any(
            line.startswith("ERROR slack_bolt.App: on_error invoked") and "1011" in line
            for line in said
        ), said
        assert any(line.startswith("ERROR websocket:") and "1011" in line for line in said)
    finally:
        handler.close()  # type: ignore[no-untyped-call]


def _asked_once(served: Served) -> None:
    api, server = served.api, served.server
    acked = server.wait_ack(server.slash_command("help", f"{api.url}/response/cli"))
    assert acked.seconds < 3.0


def test_serve_stopped_by_sigterm_logs_no_error(tmp_path: Path) -> None:
    with serving_socket_mode(tmp_path) as served:
        _asked_once(served)
    assert served.code == 0, served.err
    assert "stopping the job consumer" in served.err
    assert [line for line in served.err.splitlines() if " ERROR " in line] == [], served.err


def test_serve_reloaded_by_sighup_then_stopped_logs_no_warning(tmp_path: Path) -> None:
    """A reload someone asked for (SIGHUP: `systemctl reload`) is said at
    INFO: it was logged at WARNING, twice per reload."""
    with serving_socket_mode(tmp_path) as served:
        served.process.send_signal(signal.SIGHUP)
        # Started again on the same files: a second connection to Slack.
        served.server.wait_connections(2, timeout=30.0)
        _asked_once(served)
    assert served.code == 0, served.err
    assert "the files check out: stopping, then starting again on them" in served.err
    loud = [line for line in served.err.splitlines() if " WARNING " in line or " ERROR " in line]
    assert loud == [], served.err


# --- WinRM pools ------------------------------------------------------------------


@pytest.fixture
def host() -> Iterator[EmulatedFleet]:
    fleet = start_fleet(["HV01"])
    try:
        yield fleet
    finally:
        fleet.stop()


def ntlm_session(fleet: EmulatedFleet) -> PoolSession:
    port = fleet.servers["HV01"].port
    # NTLM over HTTP: every message sealed, as against a Windows host.
    return PoolSession("HV01", lambda: wsman(port, auth="ntlm"), timeouts=TIMEOUTS)


def test_closing_a_pool_whose_connection_the_host_dropped_logs_no_error(
    host: EmulatedFleet, caplog: pytest.LogCaptureFixture
) -> None:
    server = host.servers["HV01"]
    session = ntlm_session(host)
    assert session.run(GET_VM).output
    assert server.wsman.shell_count == 1
    # What HTTP.sys does to a connection idle for IdleConnectionTimeout.
    assert server._httpd is not None
    server._httpd.close_connections()
    time.sleep(0.2)
    listen(caplog)
    session.close()
    # Before: "ERROR pypsrp.wsman: Failed to parse WSManFault message on
    # WinRM error response ..." and the shell left on the host.
    assert loud(caplog) == []
    assert "closing the pool on HV01 failed" not in caplog.text
    assert server.wsman.shell_count == 0


def test_closing_a_pool_on_its_open_connection_deletes_the_shell_quietly(
    host: EmulatedFleet, caplog: pytest.LogCaptureFixture
) -> None:
    server = host.servers["HV01"]
    session = ntlm_session(host)
    assert session.run(GET_VM).output
    listen(caplog)
    session.close()
    assert loud(caplog) == []
    assert server.wsman.shell_count == 0


def test_a_winrm_fault_while_working_is_still_logged(
    host: EmulatedFleet, caplog: pytest.LogCaptureFixture
) -> None:
    server = host.servers["HV01"]
    port = server.port
    # Basic in the clear, then the listener's AllowUnencrypted turned off:
    # the next Command is answered HTTP 500 with no body.
    session = PoolSession("HV01", lambda: wsman(port), timeouts=TIMEOUTS)
    try:
        assert session.run(GET_VM).output
        server.allow_unencrypted = False
        listen(caplog)
        with pytest.raises(HyperVError):
            session.run(GET_VM)
        assert any(
            line.startswith("ERROR pypsrp.wsman: Failed to parse WSManFault")
            for line in loud(caplog)
        ), loud(caplog)
    finally:
        session.close()


# --- Bolt -------------------------------------------------------------------------


def test_building_the_bolt_app_warns_of_no_unused_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from bot.context import build_context
    from handlers.app import build_bolt_app
    from templates import Renderer
    from templates.blocks import SlackRenderer
    from tests.helpers import settings_for

    # As `serve` runs: the token in the environment (docs/slack-setup.md).
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    with FakeSlackApi() as api:
        ctx = build_context(
            settings_for(tmp_path), env={"SLACK_BOT_TOKEN": BOT_TOKEN}, huey_kind="memory"
        )
        try:
            listen(caplog)
            app = build_bolt_app(
                ctx,
                bot_token=BOT_TOKEN,
                signing_secret="",
                api_url=api.api_url,
                renderer=SlackRenderer(Renderer()),
            )
        finally:
            ctx.close()
    assert app.client.token == BOT_TOKEN
    assert loud(caplog) == []


def test_a_worker_whose_schema_was_rolled_back_says_so_once_and_stops_cleanly(
    tmp_path: Path,
) -> None:
    """Seen (an SRE following docs/upgrading.md "Roll back"): the new
    release's worker, still running after `db downgrade 0019`, logged a
    50-line traceback every tick ("no such column: job.host_call"), and its
    SIGTERM then exited 4, "jobs of this process may still run", with no
    job running (it asked the database it could no longer read)."""
    from tests.cli_support import REPO
    from tests.multiproc_support import Cluster, process_env, wait_until

    inventory = REPO / "deploy" / "examples" / "demo-inventory.yaml"
    config = tmp_path / "bot.yaml"
    config.write_text(
        f"inventory: {inventory}\ndatabase_url: sqlite:///{tmp_path / 'bot.db'}\n"
        "hyperv: {backend: simulator}\njobs: {tick_seconds: 1}\n",
        encoding="utf-8",
    )
    env = process_env()
    with Cluster(tmp_path / "procs") as cluster:
        assert cluster.cli(config, env, "db", "upgrade").returncode == 0
        worker = cluster.worker(config, env)
        down = cluster.cli(config, env, "db", "downgrade", "0019", "--yes")
        assert down.returncode == 0, down.stderr
        refused = "periodic task reconcile cannot run: the database's schema does not match"
        wait_until(lambda: refused in worker.output(), 30, "the worker to say it")
        time.sleep(3)  # three more ticks
        worker.signal_group(signal.SIGTERM)
        assert worker.popen.wait(timeout=30) == 0, worker.tail()
        said = worker.output()
    assert said.count(refused) == 1, said
    assert "Traceback" not in said
    assert "may still run" not in said
