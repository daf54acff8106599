"""What a one-shot command shows of its log without `-v`: one line per
warning, in the CLI's own words, never a traceback; a logged error never
looks like the command's own `checkpoint-bot: error:` line
(bot/cli/runtime.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from bot.inventory import demo_inventory_path
from tests.cli_support import invoke
from tests.helpers import refused_port

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


def _queue_down(tmp_path: Path, policy: str | None = None) -> tuple[Path, dict[str, str]]:
    """A deployment on simulated hosts whose Redis queue refuses every
    connection (its schema made): its config and environment, for alice."""
    config = tmp_path / "bot.yaml"
    text = (
        f"inventory: {demo_inventory_path()}\njobs:\n  queue: redis\n"
        "hyperv: {backend: simulator}\n"
    )
    if policy is not None:
        (tmp_path / "policy.yaml").write_text(policy, encoding="utf-8")
        text += "policy: policy.yaml\n"
    config.write_text(text, encoding="utf-8")
    env = {"REDIS_URL": f"redis://127.0.0.1:{refused_port()}/0", "CHECKPOINT_BOT_USER": "alice"}
    assert invoke(tmp_path, "--config", str(config), "db", "upgrade", env=env).returncode == 0
    return config, env


def test_a_create_whose_queue_does_not_answer_says_it_is_recorded_not_queued(
    tmp_path: Path,
) -> None:
    """The answer when Redis is down: a progress line, the change, and a
    last line that does not claim the job is queued (in this process the
    log goes to pytest; its one-line form is tested above)."""
    config, env = _queue_down(tmp_path)
    made = invoke(
        tmp_path, "--config", str(config), "checkpoint", "create", "WEB01", "-r", "x", env=env
    )
    assert made.returncode == 0, made.stderr
    assert "Traceback" not in made.stderr
    assert "CHG-0001: the job queue did not answer; the checkpoint is recorded" in made.stderr
    assert made.stdout.rstrip().endswith(
        "Recorded as job 1: it waits for the job queue, not in it (`checkpoint-bot outbox` "
        "shows it), and runs on the next worker once the queue answers."
    )
    assert "Queued as job" not in made.stdout
    waiting = invoke(tmp_path, "--config", str(config), "outbox", "--json", env=env)
    assert [job["job"] for job in json.loads(waiting.stdout)["undelivered_jobs"]] == [1]


def test_an_approval_whose_queue_does_not_answer_says_so_and_does_not_wait(
    tmp_path: Path,
) -> None:
    """Seen: `change approve` of a change whose job the queue could not take
    waited for that job (it runs the queue in its own process) as if it
    were queued; `checkpoint create` said it was recorded and returned."""
    config, env = _queue_down(
        tmp_path, policy="rules:\n  approvals:\n    params: {count: 1, actions: [create]}\n"
    )
    asked = invoke(
        tmp_path, "--config", str(config), "checkpoint", "create", "WEB01", "-r", "x", env=env
    )
    assert "WAITING FOR APPROVAL" in asked.stdout, asked.stdout + asked.stderr
    started = time.monotonic()
    approved = invoke(
        tmp_path, "--config", str(config), "change", "approve", "CHG-1",
        env={**env, "CHECKPOINT_BOT_USER": "bob"},
    )  # fmt: skip
    assert time.monotonic() - started < 20
    assert approved.returncode == 0, approved.stderr
    assert "CHG-0001: the job queue did not answer; the create is recorded" in approved.stderr
    assert "Traceback" not in approved.stderr
    as_json = invoke(
        tmp_path, "--config", str(config), "change", "show", "CHG-1", "--json", env=env
    )
    assert json.loads(as_json.stdout)["state"] == "approved"
