"""pypsrp's ERROR for a timed-out WinRM request, which the bot says in its
own words right after (it never retries there), is not shown; every other
library record is (bot/library_logs.py)."""

from __future__ import annotations

import io
import logging

import pytest
import requests

from bot.cli.runtime import _configure_logging
from bot.observe.logs import configure


def _pypsrp_says() -> None:
    """What pypsrp/wsman.py logs on a timeout before it raises it, and a
    warning of its that is not about a retry."""
    wsman = logging.getLogger("pypsrp.wsman")
    try:
        raise requests.ReadTimeout("read timed out")
    except requests.ReadTimeout as exc:
        wsman.exception(
            "%s during initial authentication request - attempt %d", type(exc).__name__, 0
        )
        wsman.exception("%s during WSMan request - attempt %d", type(exc).__name__, 0)
    wsman.warning("Failed to close WinRM shell: %s", "the pool was already closed")


@pytest.fixture(autouse=True)
def _restore_root() -> object:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield None
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_running_bot_logs_no_retry_line_of_pypsrp() -> None:
    out = io.StringIO()
    configure("text", logging.INFO, stream=out)
    _pypsrp_says()
    logged = out.getvalue()
    assert "attempt 0" not in logged and "ReadTimeout" not in logged
    assert "Failed to close WinRM shell: the pool was already closed" in logged


def test_the_cli_shows_no_retry_line_of_pypsrp(capsys: pytest.CaptureFixture[str]) -> None:
    logging.getLogger().handlers.clear()  # a fresh process's root (pytest adds its own)
    _configure_logging(verbose=False)
    _pypsrp_says()
    err = capsys.readouterr().err
    assert "attempt 0" not in err
    assert err.splitlines() == [
        "checkpoint-bot: warning (pypsrp.wsman): Failed to close WinRM shell: "
        "the pool was already closed"
    ]
