"""`checkpoint-bot serve` in Socket Mode, as systemd runs it, for tests.

The installed console script in a process of its own, in demo mode (no
config: the embedded defaults, the emulated estate), against the local
Slack: `FakeSlackApi` for the Web API, `FakeSocketModeServer` for the
Socket Mode end. Leaving the block stops it with SIGTERM, as `systemctl
stop` does; one that does not end within 15 s has its threads' stacks
dumped into the failure (tests/cli_support.py)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.cli_support import BOT, DUMP_ON_ABORT, ended_or_dumped
from tests.slack_support import BOT_TOKEN, FakeSlackApi
from tests.socket_mode_support import FakeSocketModeServer

APP_TOKEN = "xapp-test"
# The local Slack is on 127.0.0.1: nothing may send it through a proxy.
PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
STOP_LIMIT_S = 15.0


@dataclass
class Served:
    """The running `serve` and the Slack it talks to; once stopped, its exit
    code and everything it wrote to stderr."""

    api: FakeSlackApi
    server: FakeSocketModeServer
    process: subprocess.Popen[str]
    code: int | None = None
    err: str = ""


@contextmanager
def serving_socket_mode(workdir: Path) -> Iterator[Served]:
    """Yields once `serve` (working in `workdir`) has connected to Slack."""
    with FakeSlackApi() as api, FakeSocketModeServer() as server:
        api.socket_url = server.url
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("CHECKPOINT_BOT") and k not in PROXY_VARS
        }
        env.pop("DATABASE_URL", None)
        env |= {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_APP_TOKEN": APP_TOKEN,
            "SLACK_API_URL": api.api_url,
        } | DUMP_ON_ABORT
        process = subprocess.Popen(
            [str(BOT), "serve"],
            cwd=workdir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        served = Served(api, server, process)
        try:
            server.wait_connections(1, timeout=STOP_LIMIT_S)
            yield served
        finally:
            process.send_signal(signal.SIGTERM)
            served.err, hung = ended_or_dumped(process, timeout=STOP_LIMIT_S)
            served.code = process.returncode
            assert not hung, (
                f"SIGTERM did not stop it within {STOP_LIMIT_S:.0f} s; its stacks:\n{served.err}"
            )
