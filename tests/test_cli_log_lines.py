"""What a one-shot command shows of its log without `-v`: one line per
warning, in the CLI's own words, never a traceback; a logged error never
looks like the command's own `checkpoint-bot: error:` line
(bot/cli/runtime.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_SCRIPT = """
import logging, sys
from bot.cli.runtime import _configure_logging
_configure_logging(verbose=sys.argv[1] == "verbose")
try:
    raise OSError("the queue is gone")
except OSError:
    logging.getLogger("bot.jobs.delivery").warning(
        "job 5 waits for the job queue\\nsecond line", exc_info=True
    )
logging.getLogger("slack_sdk.web.base_client").error("Failed to send a request")
logging.getLogger("bot.jobs.delivery").info("not shown without -v")
"""


def _stderr(mode: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, mode],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=ROOT,
    )
    return done.stderr


def test_without_v_a_warning_is_one_line_and_no_traceback() -> None:
    assert _stderr("quiet").splitlines() == [
        "checkpoint-bot: warning: job 5 waits for the job queue",
        "checkpoint-bot: logged error (slack_sdk.web.base_client): Failed to send a request",
    ]


def test_with_v_the_whole_record_is_shown() -> None:
    shown = _stderr("verbose")
    assert "Traceback" in shown and "OSError: the queue is gone" in shown
    assert "INFO bot.jobs.delivery: not shown without -v" in shown
