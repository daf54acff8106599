"""A running bot answering the CLI while its database is down: the CLI gets
one line (exit 3), and the bot's log one line per request, without the
driver's traceback unless it runs with -v (docs/operations.md, "While the
database or the job queue is down"). Seen: 125-150 lines of psycopg and
SQLAlchemy tracebacks at INFO in `serve`'s log for each CLI command during
an outage.

A real context on the machine's PostgreSQL through a proxy the test cuts
(tests/db_proxy.py); the request reaches the bot's own answerer over a
socket pair, as the CLI's connection does."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import pytest

from bot.cli.local_server import Answer, Wire, answerer
from bot.cli.local_socket import Request
from bot.context import build_context
from bot.observe.stale_files import FileWatch
from templates import Renderer
from tests.db_proxy import CuttableProxy
from tests.helpers import settings_for

pytestmark = pytest.mark.postgres


def _ask(answer_with: Answer, request: Request) -> dict[str, object]:
    here, there = socket.socketpair()
    with here, there:
        answer_with(request, Wire(there, Renderer(), colour=False))
        there.shutdown(socket.SHUT_WR)
        lines = here.makefile("rb").read().splitlines()
    answered: dict[str, object] = json.loads(lines[-1])
    return answered


@pytest.mark.parametrize("debug", [False, True])
def test_an_outage_is_one_line_in_the_bots_log(
    tmp_path: Path,
    through_proxy: tuple[CuttableProxy, str],
    caplog: pytest.LogCaptureFixture,
    debug: bool,
) -> None:
    proxy, url = through_proxy
    ctx = build_context(settings_for(tmp_path, url), huey_kind="memory")
    try:
        answer = answerer(ctx, FileWatch([]))
        proxy.cut()
        caplog.set_level(logging.DEBUG if debug else logging.INFO)
        answered = _ask(answer, Request(op="show", target="CHG-1", user="cli:alice"))
    finally:
        proxy.restore()
        ctx.close()
    assert answered["code"] == 3, answered
    assert "the database" in str(answered["error"])
    said = [r for r in caplog.records if r.name.startswith("checkpoint_bot.local_socket")]
    assert len(said) == 1, [r.getMessage() for r in said]
    # The traceback is -v's (DEBUG) only.
    assert (said[0].exc_info is not None) is debug
    assert "Traceback" not in caplog.text or debug
