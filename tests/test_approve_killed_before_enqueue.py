"""An approver's `change approve CHG-n` killed after it recorded the
approval and before it handed the job to the queue (2026-12-06).

What happened: the change moved on (a rollback's to `rolling back`), its
job stayed `queued` with `delivered_at` empty, and where no bot or worker
ticks the job outbox (the CLI alone) nothing handed it over: the next
command that runs jobs runs only what the queue holds, `checkpoint-bot
reconcile` said "nothing to reconcile" (a change with a queued job is not
stuck), and `change show` said only "rollback: queued". The change sat in
flight until the job's deadline.

Now `change show` says the job was never handed over and what does it, and
`checkpoint-bot reconcile` hands it over; the next command that runs jobs
then runs it once (the ledger's claim), and the host restores once.

The hosts are the WinRM emulator over real HTTP on loopback; the approve
that dies is the real CLI in a process of its own, killed (os._exit) in the
place a SIGKILL would leave it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.devtools.emulator import EmulatedFleet
from bot.jobs.delivery import DELIVERY_GRACE
from tests.cli_support import REPO, CliResult, emulated_estate, invoke
from tests.test_approve_exit_codes import ALICE, BOB, ENV

CAROL = {**ENV, "CHECKPOINT_BOT_USER": "carol"}

# `change approve` with the job delivery replaced by the process's death:
# the approval and its job are committed, nothing is enqueued.
KILLED_BEFORE_ENQUEUE = """
import os, sys
from bot.jobs import delivery

def deliver(self, job_id, *args, **kwargs):
    os._exit(9)

delivery.JobDelivery.deliver = deliver
from bot.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture
def estate(tmp_path: Path) -> Iterator[tuple[Path, EmulatedFleet]]:
    with emulated_estate(tmp_path, env=ENV) as fleet:
        yield tmp_path, fleet


def _cli(cwd: Path, env: dict[str, str], *args: str) -> CliResult:
    return invoke(cwd, "-c", "bot.yaml", *args, env=env)


def _killed_approve(cwd: Path, ref: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKPOINT_BOT")}
    env |= BOB | {"PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", KILLED_BEFORE_ENQUEUE, "-c", "bot.yaml", "change", "approve", ref],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _shown(cwd: Path) -> dict[str, object]:
    done = _cli(cwd, ALICE, "change", "show", "CHG-1", "--json")
    assert done.returncode == 0, done.stderr
    shown: dict[str, object] = json.loads(done.stdout)
    return shown


def test_an_approval_whose_job_was_never_enqueued_is_shown_and_handed_over_by_reconcile(
    estate: tuple[Path, EmulatedFleet],
) -> None:
    cwd, fleet = estate
    made = _cli(cwd, ALICE, "checkpoint", "create", "WEB01", "-r", "patch")
    assert made.returncode == 0, made.stdout + made.stderr
    asked = _cli(cwd, ALICE, "checkpoint", "rollback", "CHG-1")
    assert "WAITING FOR APPROVAL" in asked.stdout, asked.stdout + asked.stderr

    killed = _killed_approve(cwd, "CHG-1")
    assert killed.returncode == 9, killed.stdout + killed.stderr
    seen = _shown(cwd)
    assert seen["state"] == "rolling_back"
    [job] = [j for j in seen["jobs"] if j["kind"] == "rollback"]  # type: ignore[attr-defined]
    assert (job["state"], job["delivered"]) == ("queued", False)

    # What the record says to a person: not only "queued".
    text = _cli(cwd, ALICE, "change", "show", "CHG-1").stdout
    assert "not handed to the job queue yet" in text, text
    assert "'checkpoint-bot reconcile' does now" in text, text

    # A command that runs jobs runs only what the queue holds: not this one.
    other = _cli(cwd, CAROL, "checkpoint", "create", "STG-WEB01", "-r", "other")
    assert other.returncode == 0, other.stdout + other.stderr
    assert _shown(cwd)["state"] == "rolling_back"

    # A job recorded this recently may still be being delivered by its
    # own process: the outbox leaves it alone until then.
    time.sleep(DELIVERY_GRACE.total_seconds() + 0.5)
    handed = _cli(cwd, ALICE, "reconcile")
    assert handed.returncode == 0, handed.stdout + handed.stderr
    assert (
        "CHG-0001  its rollback (job 2) was recorded but never handed to the job queue: "
        "handed over now"
    ) in handed.stdout, handed.stdout
    assert (
        "waits in the job queue, not started" in _cli(cwd, ALICE, "change", "show", "CHG-1").stdout
    )

    # The next command that runs jobs runs it, once; a second reconcile
    # hands nothing over again.
    after = _cli(cwd, CAROL, "checkpoint", "create", "APP01", "-r", "other")
    assert after.returncode == 0, after.stdout + after.stderr
    seen = _shown(cwd)
    assert seen["state"] == "rolled_back", seen["state"]
    rollbacks = [j for j in seen["jobs"] if j["kind"] == "rollback"]  # type: ignore[attr-defined]
    assert [(j["state"], j["attempt"]) for j in rollbacks] == [("succeeded", 1)]
    assert [e.host for e in fleet.log.entries if e.cmdlet == "Restore-VMSnapshot"] == ["HV01"]
    again = json.loads(_cli(cwd, ALICE, "reconcile", "--json").stdout)
    assert again["handed_over"] == []
