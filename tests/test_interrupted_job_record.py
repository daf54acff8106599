"""The host dropped in the middle of a create, after it had taken the
checkpoint (on-call, reproduced twice: `--faults late=Checkpoint-VM:20000`,
the emulator killed with SIGKILL 6 s into `checkpoint create STG-WEB01`,
started again without faults).

Seen: the CLI printed "interrupted … cannot connect to 127.0.0.1:…: the
connection was reset" and exited 1 ("refused or failed": a script that
retries on it takes a second checkpoint); the reconciler rightly found the
checkpoint taken, but `change show` still listed the job as
"create: failed … OperationFailed: CHG-0008: checkpoint failed: …", the
metric counted `outcome="failed"` and the worker logged "job 9 (create)
failed".

What holds now: the job ends `interrupted` (as for a database outage or a
dead worker), counted and logged so, its error in words with no exception
class name; the connection is said to have been reset during the call, not
that it could not be made; the CLI exits 4 ("interrupted: the outcome is
unknown, the reconciler settles it; do not retry").

The hosts are `checkpoint-bot emulator` in a child process of its own (so
that it can be killed as the explorer killed it), its state in a SQLite
file that outlives the kill; the CLI runs in this process
(tests/cli_support.py)."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from bot.devtools.emulator.pointing import EMULATOR_PASSWORD_ENV, emulated_inventory
from bot.devtools.hostmodel import demo_hosts_path
from bot.inventory import demo_inventory_path, load_inventory
from bot.jobs import JobContext, JobLedger, JobState, RunStatus
from bot.observe.metrics import Metrics
from bot.observe.work import MeteredRunner
from bot.service.execution import OutcomeUnknown
from tests.cli_support import CliResult, invoke
from tests.test_jobs_ledger import FakeClock, submit

ENV = {EMULATOR_PASSWORD_ENV: "Passw0rd!", "CHECKPOINT_BOT_SOCKET": "off"}
HOSTS = ("HV01", "HV02", "HV03")
# What a user must never read, and what a script must never be told.
CLASS_NAMES = ("OperationFailed", "HostUnreachable", "Error:", "Traceback")


class _Emulator:
    """`checkpoint-bot emulator` in a child process, its hosts' state in
    `database` (so a checkpoint taken survives the process), every command
    it receives appended to `log_file`."""

    def __init__(self, workdir: Path) -> None:
        self.database = f"sqlite:///{workdir / 'hosts.db'}"
        self.log_file = workdir / "emulator.jsonl"
        self.proc: subprocess.Popen[str] | None = None
        # The same hosts served again after this one was killed.
        self.again: list[_Emulator] = []

    def start(self, *options: str, hosts: tuple[str, ...] = HOSTS) -> dict[str, int]:
        code = "from bot.devtools.emulator.cli import emulator; emulator()"
        args = [sys.executable, "-c", code, "--hosts", str(demo_hosts_path())]
        args += ["--database", self.database, "--log-file", str(self.log_file)]
        args += [arg for name in hosts for arg in ("--host", name)]
        self.proc = subprocess.Popen(
            [*args, *options],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=dict(os.environ),
        )
        assert self.proc.stdout is not None
        lines = [self.proc.stdout.readline().strip() for _ in hosts]
        assert [line.split("\t")[0] for line in lines] == list(hosts), lines
        return {line.split("\t")[0]: int(line.rsplit(":", 1)[1].split("/")[0]) for line in lines}

    def kill_once_asked(self, cmdlet: str, *, after: float) -> threading.Thread:
        """SIGKILL the process `after` seconds once it received `cmdlet`,
        as the explorer's `kill -9` did: no answer, no goodbye."""

        def kill() -> None:
            give_up = time.monotonic() + 60
            while time.monotonic() < give_up:
                if self.log_file.exists() and cmdlet in self.log_file.read_text("utf-8"):
                    break
                time.sleep(0.05)
            time.sleep(after)
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

        killer = threading.Thread(target=kill, name="kill-emulator", daemon=True)
        killer.start()
        return killer

    def stop(self) -> None:
        for other in self.again:
            other.stop()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[_Emulator]:
    running = _Emulator(tmp_path)
    try:
        yield running
    finally:
        running.stop()


def _deploy(workdir: Path, ports: dict[str, int]) -> None:
    """bot.yaml: the demo inventory aimed at the emulator's ports; a call may
    take a minute, so the late answer is cut by the kill, not by a timeout."""
    inventory = load_inventory(demo_inventory_path())
    (workdir / "inventory.yaml").write_text(
        emulated_inventory(inventory, ports, "hvadmin", EMULATOR_PASSWORD_ENV), encoding="utf-8"
    )
    (workdir / "bot.yaml").write_text(
        "inventory: inventory.yaml\nhyperv: {backend: winrm, call_timeout: 60s}\n",
        encoding="utf-8",
    )
    upgraded = invoke(workdir, "-c", "bot.yaml", "db", "upgrade", env=ENV)
    assert upgraded.returncode == 0, upgraded.stderr


def _cli(cwd: Path, *args: str) -> CliResult:
    return invoke(cwd, "-c", "bot.yaml", *args, env=ENV)


@contextmanager
def _dropped_mid_create(cwd: Path, emulator: _Emulator) -> Iterator[dict[str, int]]:
    """The hosts served, HV03 taking a checkpoint at once and answering
    20 s later, killed while its answer is awaited; served again without
    faults when the block ends, each on its own port as before."""
    ports = emulator.start("--port", "0", "--faults", "late=Checkpoint-VM:20000")
    _deploy(cwd, ports)
    killer = emulator.kill_once_asked("Checkpoint-VM", after=1.0)
    yield ports
    killer.join(60)
    assert emulator.proc is not None and emulator.proc.returncode == -signal.SIGKILL
    for name in HOSTS:
        # `--port` is the first of consecutive ones: one process per host.
        emulator.again.append(_Emulator(cwd))
        emulator.again[-1].start("--port", str(ports[name]), hosts=(name,))


def test_a_create_the_host_dropped_is_interrupted_not_failed(
    tmp_path: Path, emulator: _Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with _dropped_mid_create(tmp_path, emulator) as ports:
        created = _cli(tmp_path, "checkpoint", "create", "STG-WEB01", "--reason", "x")

    # Neither 1 (refused or failed) nor 3 (nothing decided or recorded): a
    # script that retries on either would take a second checkpoint.
    assert created.returncode == 4, created.stdout + created.stderr
    said = created.stdout + created.stderr
    assert "CHG-0001: interrupted" in created.stdout, said
    assert not any(name in said for name in CLASS_NAMES), said
    # The connection was open and answered before it was cut.
    assert "cannot connect" not in said, said
    # A killed process's kernel closes (or, with data unread, resets) it.
    lost = rf"the connection to 127\.0\.0\.1:{ports['HV03']} was (reset|closed) during the call"
    assert re.search(lost, said), said
    # Who finds out how it ended, said once (the summary's `next:` line).
    assert "next:       how it ended is asked of the host" in created.stdout, said

    shown = json.loads(_cli(tmp_path, "change", "show", "CHG-0001", "--json").stdout)
    assert shown["state"] == "interrupted", shown["state"]
    [job] = shown["jobs"]
    assert (job["kind"], job["state"], job["attempt"]) == ("create", "interrupted", 1), job
    assert job["error"].startswith(
        "CHG-0001: the host stopped answering during the checkpoint: outcome unknown ("
    ), job["error"]
    assert job["error"].endswith("; the reconciler settles it"), job["error"]
    assert not any(name in job["error"] for name in CLASS_NAMES), job["error"]
    # The worker's one line says so, as the metric's label does (the same word).
    ended = [r.getMessage() for r in caplog.records if r.name == "checkpoint_bot.jobs"]
    assert any(m.startswith("job 1 (create) interrupted after") for m in ended), ended
    assert not any(" failed" in m for m in ended), ended

    # The host answers again: the reconciler finds the checkpoint taken.
    settled = _cli(tmp_path, "reconcile")
    assert settled.returncode == 0, settled.stdout + settled.stderr
    after = json.loads(_cli(tmp_path, "change", "show", "CHG-0001", "--json").stdout)
    assert after["state"] == "active" and after["checkpoint_id"], after["state"]
    assert [j["state"] for j in after["jobs"]] == ["interrupted"]
    listed = json.loads(_cli(tmp_path, "checkpoint", "list", "--vm", "STG-WEB01", "--json").stdout)
    assert len(listed["checkpoints"]) == 1, listed


# -- the runner's side, on its own ---------------------------------------------


@pytest.mark.parametrize(("kind", "destructive"), [("create", False), ("rollback", True)])
def test_an_outcome_its_handler_recorded_unknown_ends_the_job_interrupted(
    engine: Engine, kind: str, destructive: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """The handler already marked the change interrupted (the host dropped
    mid-call): the job is neither failed nor, with attempts to spare,
    retried (a second checkpoint, a second restore)."""
    ledger = JobLedger(engine, FakeClock(), lock_stale_after=timedelta(seconds=30))
    ran: list[int] = []
    said = (
        "CHG-0001: the host stopped answering during the checkpoint: outcome unknown "
        "(HV03: the connection was reset during the call); the reconciler settles it"
    )

    def handler(ctx: JobContext) -> dict[str, Any]:
        ran.append(ctx.attempt)
        raise OutcomeUnknown(said)

    job = submit(ledger, "k1", kind=kind, destructive=destructive, max_attempts=3)
    assert job.id is not None
    metrics = Metrics()
    runner = MeteredRunner(ledger, {kind: handler}, "w1", clock=ledger.now, metrics=metrics)
    caplog.set_level(logging.INFO)

    outcome = runner.run(job.id)

    assert outcome.status is RunStatus.INTERRUPTED and outcome.retry_after is None
    after = ledger.get(job.id)
    assert after.state == JobState.INTERRUPTED and after.error == said
    assert ledger.running_for_vm("vm-1") is None  # its VM lock went with it
    assert runner.run(job.id).status is RunStatus.LOST and ran == [1]

    def count(outcome: str) -> float | None:
        return metrics.registry.get_sample_value(
            "checkpoint_bot_jobs_total", {"kind": kind, "outcome": outcome}
        )

    assert count("failed") is None and count("interrupted") == 1.0
    lines = [r.getMessage() for r in caplog.records]
    assert f"job {job.id} ({kind}) interrupted after" in " ".join(lines), lines
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


# -- the words for a connection lost mid-call ----------------------------------


@pytest.mark.parametrize(
    ("linger", "said"),
    [
        # SO_LINGER 0: the close sends RST, as a killed process with unread data does.
        (True, "was reset during the call, by the host or a device on the way"),
        (False, "was closed during the call, before the host answered"),
    ],
)
def test_a_connection_lost_mid_call_is_not_said_to_have_failed_to_connect(
    linger: bool, said: str
) -> None:
    """A real request to a listener that takes it and drops it unanswered:
    the connection was made, so "cannot connect" (which sends people to
    look for a WinRM listener) is wrong; the call's outcome is unknown."""
    import socket
    import struct

    import requests

    from bot.hyperv import HostUnreachable
    from bot.hyperv.winrm.errors import transport_error

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def drop_one() -> None:
        conn, _ = listener.accept()
        got = b""
        while not got.endswith(b"\r\n\r\nx"):  # all of it: unread data makes a close a reset
            got += conn.recv(65536)
        if linger:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    dropper = threading.Thread(target=drop_one, daemon=True)
    dropper.start()
    try:
        with pytest.raises(requests.exceptions.ConnectionError) as lost:
            requests.post(f"http://127.0.0.1:{port}/wsman", data=b"x", timeout=10)
    finally:
        dropper.join(10)
        listener.close()
    error = transport_error(lost.value, host="HV03", what="Get-VM | Checkpoint-VM on HV03")
    assert isinstance(error, HostUnreachable)
    where = f"Get-VM | Checkpoint-VM on HV03: the connection to 127.0.0.1:{port}"
    assert error.message == f"{where} {said}"


# -- a rollback and a merge whose host went quiet mid-call ----------------------


@pytest.mark.parametrize(
    ("verb", "cmdlet"), [("rollback", "Restore-VMSnapshot"), ("merge", "Remove-VMSnapshot")]
)
def test_a_rollback_or_merge_left_interrupted_exits_4(
    tmp_path: Path, verb: str, cmdlet: str
) -> None:
    """The host does the work and answers after `hyperv.call_timeout`: the
    job and the change are interrupted, and the command exits 4, not 1
    (a second restore or merge on a script's retry)."""
    from bot.devtools.emulator import Faults
    from tests.cli_support import emulated_estate

    with emulated_estate(tmp_path, "{backend: winrm, call_timeout: 2s}", env=ENV) as fleet:
        made = _cli(tmp_path, "checkpoint", "create", "STG-WEB01", "-r", "x")
        assert made.returncode == 0, made.stdout + made.stderr
        fleet.server("HV03").faults = Faults(late={cmdlet: 4000})
        asked = _cli(tmp_path, "checkpoint", verb, "CHG-0001")
        fleet.server("HV03").faults = Faults()
        shown = json.loads(_cli(tmp_path, "change", "show", "CHG-0001", "--json").stdout)
    assert asked.returncode == 4, asked.stdout + asked.stderr
    assert asked.stdout.startswith("CHG-0001: interrupted"), asked.stdout
    assert shown["state"] == "interrupted"
    [_, job] = shown["jobs"]
    assert (job["kind"], job["state"]) == (verb, "interrupted"), job
    assert job["error"].startswith(f"CHG-0001: the host stopped answering during the {verb}: ")
    assert not any(name in job["error"] for name in CLASS_NAMES), job["error"]
