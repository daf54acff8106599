"""Ctrl-C on the CLI while its own job runs against a host that does not
answer (the emulator's `hang` fault: Checkpoint-VM never returns).

Seen before: the command ran the job in its own process, and on Ctrl-C it
closed its context as on a normal end, waiting for the job's host call to
end (up to `hyperv.call_timeout`, ten minutes by default) with nothing on
the terminal but Huey's "Shutdown timeout of 10.0s elapsed". What must
hold: it stops at once (exit 130), says what it leaves running and who
settles it, and the record is settled by the next reconciler once the
job's claim lapses, as after a crash (docs/operations-failures.md). An
interrupt before anything was recorded says so.

The CLI is the installed console script in a process of its own (a signal
reaches it as it reaches a person's terminal), the hosts the WinRM
emulator over real HTTP, the record SQLite."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.devtools.emulator import EmulatedFleet, Faults
from bot.devtools.emulator.pointing import EMULATOR_PASSWORD_ENV
from bot.devtools.hostmodel import InMemoryHostStateStore, demo_hosts_path, load_host_model
from tests.cli_support import BOT, DUMP_ON_ABORT, OPERATOR, ended_or_dumped, run
from tests.helpers import emulated_deployment

PASSWORD = "Passw0rd!"
# A hung call would hold the command this long before; it must not now.
CALL_TIMEOUT_S = 120
ENV = {EMULATOR_PASSWORD_ENV: PASSWORD, "CHECKPOINT_BOT_SOCKET": "off"}
CREATE = ("checkpoint", "create", "STG-WEB01", "-r", "patch")


@pytest.fixture
def estate(tmp_path: Path) -> Iterator[tuple[Path, EmulatedFleet]]:
    fleet = EmulatedFleet.start(InMemoryHostStateStore(), model=load_host_model(demo_hosts_path()))
    try:
        emulated_deployment(
            tmp_path,
            fleet,
            f"{{backend: winrm, call_timeout: {CALL_TIMEOUT_S}s}}",
            # The shortest the heartbeat allows (3 x 2 s), so the test sees
            # the claim lapse.
            "jobs: {lock_stale_after: 6s}\n",
        )
        assert run(tmp_path, "-c", "bot.yaml", "db", "upgrade", env=ENV).returncode == 0
        yield tmp_path, fleet
    finally:
        fleet.stop()


def _started(cwd: Path, *args: str) -> subprocess.Popen[str]:
    """The console script with the config, in a process of its own; its
    stderr piped."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKPOINT_BOT")}
    env |= OPERATOR | ENV | DUMP_ON_ABORT
    return subprocess.Popen(
        [str(BOT), "-c", "bot.yaml", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _interrupted(
    cwd: Path, *args: str, when: Callable[[list[str]], bool]
) -> tuple[int, str, float]:
    """Run the CLI and send it SIGINT once `when(lines it wrote to stderr
    so far, or [] while it writes none)` holds; (exit code, stderr, seconds
    from the signal to the exit)."""
    proc = _started(cwd, *args)
    assert proc.stderr is not None
    os.set_blocking(proc.stderr.fileno(), False)
    said: list[str] = []
    give_up = time.monotonic() + 60
    while not when(said):
        assert proc.poll() is None, f"it ended before it was interrupted: {''.join(said)}"
        assert time.monotonic() < give_up, f"never got there: {''.join(said)}"
        said += proc.stderr.readlines()
        time.sleep(0.05)
    signalled = time.monotonic()
    proc.send_signal(signal.SIGINT)
    os.set_blocking(proc.stderr.fileno(), True)
    rest, hung = ended_or_dumped(proc, timeout=30)
    if hung:
        pytest.fail(f"Ctrl-C did not stop the command within 30 s; its stacks:\n{rest}")
    return proc.returncode, "".join(said) + rest, time.monotonic() - signalled


def test_ctrl_c_while_the_job_hangs_leaves_it_to_the_reconciler_at_once(
    estate: tuple[Path, EmulatedFleet],
) -> None:
    cwd, fleet = estate
    fleet.server("HV03").faults = Faults(hang=frozenset({"Checkpoint-VM"}))
    code, err, took = _interrupted(
        cwd,
        *CREATE,
        when=lambda lines: (
            any("is running…" in line for line in lines)
            and any(e.cmdlet == "Checkpoint-VM" for e in fleet.log.entries)
        ),
    )
    assert code == 130, err
    # Before, it waited for the hung call: CALL_TIMEOUT_S, not a few seconds.
    assert took < 10, f"it took {took:.1f} s to stop"
    assert "Traceback" not in err and "Shutdown timeout" not in err
    lines = err.splitlines()
    assert (
        "CHG-0001: its create on HV03 is left running: the host finishes or fails it, and "
        "once its claim lapses (6s, jobs.lock_stale_after) any bot, worker or "
        "'checkpoint-bot reconcile' records how it ended "
        "('checkpoint-bot change show CHG-0001')"
    ) in lines
    assert lines[-1] == "checkpoint-bot: error: interrupted; what this command recorded is kept"

    shown = run(cwd, "-c", "bot.yaml", "change", "show", "CHG-1", env=ENV)
    assert shown.stdout.startswith("CHG-0001: creating — STG-WEB01 on HV03")
    # Once the claim has lapsed, a reconcile asks the host. The call the CLI
    # left goes on there (the VM reports its checkpoint being created), so
    # nothing is concluded, never "none was taken", and the change says why.
    time.sleep(7)
    settled = run(cwd, "-c", "bot.yaml", "reconcile", env=ENV)
    assert settled.returncode == 0, settled.stderr
    assert "CHG-0001  STG-WEB01    now interrupted" in settled.stdout
    assert "nothing to reconcile" not in settled.stdout
    shown = run(cwd, "-c", "bot.yaml", "change", "show", "CHG-1", env=ENV)
    assert "HV03 is still creating a checkpoint on STG-WEB01" in shown.stdout, shown.stdout
    assert "failed" not in shown.stdout.splitlines()[0]
    # The record says what left the job: the command's Ctrl-C, not a worker
    # that vanished without a word.
    assert "was interrupted (Ctrl-C) with this job still running" in shown.stdout, shown.stdout
    assert "stopped heartbeating" not in shown.stdout


def test_ctrl_c_before_anything_is_recorded_says_so(
    estate: tuple[Path, EmulatedFleet],
) -> None:
    cwd, fleet = estate
    # The facts the policy needs never come: nothing is decided or recorded.
    fleet.server("HV03").faults = Faults(hang=frozenset({"Get-VM"}))
    code, err, took = _interrupted(
        cwd,
        *CREATE,
        when=lambda _lines: any(e.cmdlet == "Get-VM" for e in fleet.log.entries),
    )
    assert code == 130 and took < 10, err
    assert "Traceback" not in err
    assert err.splitlines()[-1] == (
        "checkpoint-bot: error: interrupted before anything was recorded"
    )
    fleet.server("HV03").faults = Faults()
    listed = run(cwd, "-c", "bot.yaml", "audit", "export", env=ENV)
    assert listed.returncode == 0 and listed.stdout == ""


def test_ctrl_c_while_one_host_of_a_listing_hangs_stops_at_once(
    estate: tuple[Path, EmulatedFleet],
) -> None:
    """A listing asks every host at once; one that never answers held the
    interrupted command until that call's deadline (Python joins a thread
    pool's threads at exit): here `hyperv.call_timeout`, 120 s."""
    cwd, fleet = estate
    fleet.server("HV02").faults = Faults(hang=frozenset({"Get-VMSnapshot"}))
    code, err, took = _interrupted(
        cwd,
        "checkpoint",
        "list",
        when=lambda _lines: any(
            e.host == "HV02" and e.cmdlet == "Get-VMSnapshot" for e in fleet.log.entries
        ),
    )
    assert code == 130 and took < 10, err
    assert err.splitlines()[-1] == (
        "checkpoint-bot: error: interrupted before anything was recorded"
    )


def _worker(cwd: Path) -> subprocess.Popen[str]:
    proc = _started(cwd, "worker")
    assert proc.stderr is not None
    for line in proc.stderr:
        if "running jobs from the queue" in line:
            return proc
    pytest.fail("the worker did not start")


def _job_on_the_hung_host(cwd: Path, fleet: EmulatedFleet) -> None:
    """A create the CLI queues (no bot answers its socket) for the worker,
    whose Checkpoint-VM the host never answers."""
    fleet.server("HV03").faults = Faults(hang=frozenset({"Checkpoint-VM"}))
    queued = run(cwd, "-c", "bot.yaml", "checkpoint", "create", "STG-WEB01", "-r", "x",
                 "--no-wait", env=ENV)  # fmt: skip
    assert queued.returncode == 0, queued.stderr
    give_up = time.monotonic() + 30
    while not any(e.cmdlet == "Checkpoint-VM" for e in fleet.log.entries):
        assert time.monotonic() < give_up, "the worker never ran the job"
        time.sleep(0.1)


@pytest.mark.parametrize("interrupts", [1, 2])
def test_a_worker_gives_a_hung_job_ten_seconds_and_a_second_ctrl_c_none(
    estate: tuple[Path, EmulatedFleet], interrupts: int
) -> None:
    """A worker's Ctrl-C (or SIGTERM) stops it gracefully: the jobs under
    way get 10 s, then are left to the reconciler, said in its log; before,
    it waited for the hung host call, up to `hyperv.call_timeout` (120 s
    here). A second Ctrl-C leaves them at once, and says so, exit 130.
    Seen: the graceful stop that left the job exited 0, and the reconciler
    recorded "worker … stopped heartbeating" about a worker that had said
    why it left it; it exits 4 (outcome unknown, as `checkpoint create`
    when its change is interrupted), and the record names the stop."""
    cwd, fleet = estate
    worker = _worker(cwd)
    try:
        _job_on_the_hung_host(cwd, fleet)
        signalled = time.monotonic()
        worker.send_signal(signal.SIGINT)
        if interrupts == 2:
            time.sleep(1)
            worker.send_signal(signal.SIGINT)
        _, err = worker.communicate(timeout=40)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    took = time.monotonic() - signalled
    assert "Traceback" not in err
    if interrupts == 1:
        assert worker.returncode == 4, err
        assert 9 < took < 20, f"{took:.1f} s"
        assert (
            "CHG-0001: its create on HV03 is still running after 10 s; it is left to the host, "
            "and a reconciler records how it ended once its claim lapses"
        ) in err
        why = "was stopped (SIGTERM or Ctrl-C) after waiting 10 s for it"
    else:
        assert worker.returncode == 130, err
        assert took < 8, f"{took:.1f} s"
        assert "CHG-0001: its create on HV03 is left running: the host finishes or fails it" in err
        assert err.splitlines()[-1] == ("checkpoint-bot: error: stopped at once (a second Ctrl-C)")
        why = "was stopped at once (a second Ctrl-C)"
    time.sleep(7)  # the claim lapses (jobs.lock_stale_after: 6s)
    assert run(cwd, "-c", "bot.yaml", "reconcile", env=ENV).returncode == 0
    shown = run(cwd, "-c", "bot.yaml", "change", "show", "CHG-1", env=ENV).stdout
    assert f"{why} with this job still running; the outcome on the host" in shown, shown


def test_a_reload_that_leaves_a_hung_job_is_what_the_record_says(
    estate: tuple[Path, EmulatedFleet],
) -> None:
    """SIGHUP restarts the worker in place (bot/cli/reload.py) after the
    jobs' 10 s grace. Seen: the job it left was recorded "worker …
    stopped heartbeating; the outcome on the host is unknown", a worker
    that vanished, when it had been reloaded on purpose."""
    cwd, fleet = estate
    worker = _worker(cwd)
    try:
        _job_on_the_hung_host(cwd, fleet)
        worker.send_signal(signal.SIGHUP)
        assert worker.stderr is not None
        give_up = time.monotonic() + 40
        for line in worker.stderr:  # the same process, started again
            if "running jobs from the queue" in line:
                break
            assert time.monotonic() < give_up, "the worker did not start again"
        else:
            pytest.fail("the worker ended instead of reloading")
        time.sleep(7)  # the claim lapses (jobs.lock_stale_after: 6s)
        assert run(cwd, "-c", "bot.yaml", "reconcile", env=ENV).returncode == 0
        shown = run(cwd, "-c", "bot.yaml", "change", "show", "CHG-1", env=ENV).stdout
    finally:
        worker.kill()
        worker.communicate()
    assert (
        "was reloaded (SIGHUP) after waiting 10 s for it with this job still running; "
        "the outcome on the host is unknown"
    ) in shown, shown


def test_a_worker_stops_in_its_grace_while_its_periodic_work_waits_on_a_hung_host(
    estate: tuple[Path, EmulatedFleet],
) -> None:
    """Seen: a worker (and `serve`) whose startup sweep waited on a host
    that never answers did not exit for 120 s after SIGTERM here (ten
    minutes by default: `hyperv.call_timeout`), and a second Ctrl-C did
    nothing: the stop closed that host's pool, which waited for the
    sweep's call. The periodic work gets the jobs' grace (10 s), as a job
    does, and is then left, said in the log."""
    cwd, fleet = estate
    fleet.server("HV01").faults = Faults(hang=frozenset({"Get-VMSnapshot"}))
    worker = _started(cwd, "worker")
    try:
        give_up = time.monotonic() + 30
        while not any(e.host == "HV01" and e.cmdlet == "Get-VMSnapshot" for e in fleet.log.entries):
            assert worker.poll() is None and time.monotonic() < give_up, "no sweep asked HV01"
            time.sleep(0.1)
        signalled = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        err, hung = ended_or_dumped(worker, timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    took = time.monotonic() - signalled
    assert not hung, f"SIGTERM did not stop the worker within 30 s; its stacks:\n{err}"
    assert worker.returncode == 0, err
    assert took < 15, f"{took:.1f} s"
    assert "the periodic work (reconciling, sweeps) is still waiting after 10 s" in err, err
    assert "Traceback" not in err


def test_ctrl_c_before_the_job_is_taken_withdraws_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Seen: Ctrl-C in the instant between `checkpoint create` recording its
    change and the job being taken said only "interrupted; what this
    command recorded is kept", and the create ran minutes later, taken by
    the next worker (three checkpoints 16 minutes after their commands were
    stopped). Then it was named as waiting in the queue; now it is taken
    back: the change is withdrawn, its job cancelled, and no worker can
    start it any more."""
    from bot.cli.runtime import Interrupted, Runtime
    from bot.context import build_context
    from bot.service import request_checkpoint, show_change
    from tests.helpers import settings_for

    ctx = build_context(settings_for(tmp_path), huey_kind="memory")  # no consumer runs
    try:
        asked = request_checkpoint(ctx, "WEB01", reason="patch", requester="cli:alice")
        [job] = ctx.ledger.jobs_of_change(asked.change.id)
        assert job.state == "queued" and job.id is not None
        rt = Runtime(config_path=None, cwd=tmp_path, env={"CHECKPOINT_BOT_USER": "alice"})
        rt._ctx = ctx
        rt.said_changes.append(asked.change.ref)
        rt.asked_changes.append(asked.change.ref)
        with pytest.raises(Interrupted, match="what this command recorded is kept"):
            rt.__exit__(KeyboardInterrupt, KeyboardInterrupt(), None)
        ctx = build_context(settings_for(tmp_path), huey_kind="memory")
        assert not ctx.ledger.claim(job.id, "w1").won  # a late worker finds nothing to run
        shown = show_change(ctx, asked.change.ref)
        job_now = ctx.ledger.get(job.id)
    finally:
        ctx.close()
    err = capsys.readouterr().err
    ref = asked.change.ref
    assert (
        f"{ref}: withdrawn, its create had not started: nothing was done on HV01 "
        f"('checkpoint-bot change show {ref}')"
    ) in err, err
    assert shown.state == "withdrawn"
    assert shown.events[-1].message == (
        "checkpoint withdrawn: its command was interrupted (Ctrl-C) before it started; "
        "nothing was done on HV01"
    )
    assert shown.events[-1].actor == "cli:alice"
    assert job_now.state == "cancelled"


def test_ctrl_c_while_waiting_for_someone_elses_request_leaves_it_queued(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`change approve` waits for the job its approval started; an approver's
    Ctrl-C there ends their wait, not the requester's change: it is named as
    waiting in the queue, and stays approved."""
    from bot.cli.runtime import Interrupted, Runtime
    from bot.context import build_context
    from bot.service import request_checkpoint, show_change
    from tests.helpers import settings_for

    ctx = build_context(settings_for(tmp_path), huey_kind="memory")  # no consumer runs
    try:
        asked = request_checkpoint(ctx, "WEB01", reason="patch", requester="cli:alice")
        rt = Runtime(config_path=None, cwd=tmp_path, env={"CHECKPOINT_BOT_USER": "bob"})
        rt._ctx = ctx
        rt.said_changes.append(asked.change.ref)  # waited for, not asked for
        with pytest.raises(Interrupted):
            rt.__exit__(KeyboardInterrupt, KeyboardInterrupt(), None)
        ctx = build_context(settings_for(tmp_path), huey_kind="memory")
        state = show_change(ctx, asked.change.ref).state
        jobs = [j.state for j in ctx.ledger.jobs_of_change(asked.change.id)]
    finally:
        ctx.close()
    ref = asked.change.ref
    assert (state, jobs) == ("approved", ["queued"])
    assert (
        f"{ref}: its create is recorded and waits in the queue, not started: a worker or bot "
        "of this config, or the next command here that runs jobs, runs it "
        f"('checkpoint-bot change show {ref}')"
    ) in capsys.readouterr().err


def test_a_job_this_process_took_as_it_was_interrupted_is_said_once(tmp_path: Path) -> None:
    """Seen: Ctrl-C in the instant the CLI's own consumer took its rollback
    said "could not be withdrawn (a worker may have just taken it)" and then
    "is left running": this process took it, and the second line says what
    becomes of it."""
    from bot.cli.runtime import _taken_back
    from bot.context import RunningHere, build_context
    from bot.service import Principal, request_checkpoint
    from tests.helpers import settings_for

    ctx = build_context(settings_for(tmp_path), huey_kind="memory")  # no consumer runs
    try:
        asked = request_checkpoint(ctx, "WEB01", reason="patch", requester="cli:alice")
        assert asked.job_id is not None
        assert ctx.ledger.claim(asked.job_id, ctx.worker_id).won  # this process took it
        job = RunningHere(asked.job_id, asked.change.ref, "create", "HV01")
        assert _taken_back(ctx, job, Principal("cli:alice"), asked=True) is None
        elsewhere = request_checkpoint(ctx, "APP01", reason="patch", requester="cli:alice")
        assert elsewhere.job_id is not None
        assert ctx.ledger.claim(elsewhere.job_id, "another-worker").won
        other = RunningHere(elsewhere.job_id, elsewhere.change.ref, "create", "HV01")
        said = _taken_back(ctx, other, Principal("cli:alice"), asked=True)
    finally:
        ctx.close(leave_running=True)
    assert said is not None and "could not be withdrawn (a worker may have just taken it)" in said


def test_ctrl_c_while_its_rollback_rechecks_is_settled_as_not_started(
    estate: tuple[Path, EmulatedFleet],
) -> None:
    """Seen: Ctrl-C while the CLI's own process re-checked its rollback
    (before Restore-VMSnapshot) left a change the reconciler could not
    settle: it asked a human whether the restore ran, and the VM stayed
    held until one answered. The job says it never sent the restore."""
    cwd, fleet = estate
    created = run(cwd, "-c", "bot.yaml", *CREATE, env=ENV)
    assert created.returncode == 0, created.stderr
    # Each decision reads the guest's KVP items (Get-CimInstance): the
    # request's, then the job's re-check, each held 3 s.
    fleet.server("HV03").faults = Faults(slow={"Get-CimInstance": 3000})
    asked_before = len(fleet.log.entries)

    def rechecking(_lines: list[str]) -> bool:
        since = fleet.log.entries[asked_before:]
        return sum(e.cmdlet == "Get-CimInstance" for e in since) >= 2

    code, err, _took = _interrupted(cwd, "checkpoint", "rollback", "CHG-1", when=rechecking)
    assert code == 130, err
    assert "Traceback" not in err
    assert "CHG-0001: its rollback on HV03 is left running" in err, err
    fleet.server("HV03").faults = Faults()
    time.sleep(7)  # past its claim (jobs.lock_stale_after: 6s)
    settled = run(cwd, "-c", "bot.yaml", "reconcile", env=ENV)
    assert settled.returncode == 0, settled.stderr
    shown = run(cwd, "-c", "bot.yaml", "change", "show", "CHG-1", env=ENV)
    assert shown.stdout.startswith("CHG-0001: active — STG-WEB01 on HV03"), shown.stdout
    assert (
        "rollback not run: its job stopped before Restore-VMSnapshot was sent (worker "
    ) in shown.stdout
    assert (
        "was interrupted (Ctrl-C) with this job still running); nothing was done on the host, "
        "try again"
    ) in " ".join(shown.stdout.split())
    assert "needs a human" not in shown.stdout
    assert not any(e.cmdlet == "Restore-VMSnapshot" for e in fleet.log.entries)
    again = run(cwd, "-c", "bot.yaml", "checkpoint", "rollback", "CHG-1", env=ENV)
    assert again.returncode == 0, again.stderr  # the VM is free at once


def test_ctrl_c_while_a_wave_waits_on_a_retry_withdraws_its_members(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen (a patching admin): a wave whose host stopped answering sat at
    "BAT-0001: 3 of 5 done" with no word of why; Ctrl-C then neither named
    nor withdrew the member waiting to retry its re-check, and a worker took
    its checkpoint eleven minutes later. Now the retry is said as it is put
    back, and Ctrl-C takes back every member no process has started."""
    from datetime import timedelta

    from bot.cli import batch_cmds
    from bot.cli.runtime import Interrupted, Runtime
    from bot.context import build_context
    from bot.jobs import RetryLater, describe_error
    from bot.service import Selection, create_batch, show_batch, show_change
    from tests.helpers import settings_for

    ctx = build_context(settings_for(tmp_path), huey_kind="memory")  # no consumer runs
    try:
        out = create_batch(
            ctx,
            Selection.of(["STG-WEB01", "WEB01"]),
            reason="patch",
            requester="cli:alice",
            source="cli",
        )
        jobs = {o.job_id: "create" for o in out.outcomes if o.job_id is not None}
        assert len(jobs) == 2
        # STG-WEB01's re-check could not reach its host: put back for a retry.
        [retried] = [o for o in out.outcomes if o.change.vm_name == "STG-WEB01"]
        assert retried.job_id is not None and ctx.ledger.claim(retried.job_id, "w1").won
        ctx.ledger.requeue(
            retried.job_id,
            "w1",
            not_before=ctx.clock() + timedelta(minutes=5),
            # As the runner writes a RetryLater on the row (describe_error).
            error=describe_error(
                RetryLater("could not check STG-WEB01: HV03 could not be reached (refused)")
            ),
            beyond_attempts=True,
        )
        monkeypatch.setattr(ctx, "start_workers", lambda: None)  # nothing runs: Ctrl-C comes first
        said: list[str] = []

        def terminal(message: str) -> None:
            said.append(message)
            if "trying again until" in message:
                raise KeyboardInterrupt  # the admin's Ctrl-C, once the retry is said

        monkeypatch.setattr(batch_cmds, "progress", terminal)
        rt = Runtime(config_path=None, cwd=tmp_path, env={"CHECKPOINT_BOT_USER": "alice"})
        rt._ctx = ctx
        with pytest.raises(KeyboardInterrupt):
            batch_cmds._wait_jobs(rt, out.batch, jobs, "")
        with pytest.raises(Interrupted, match="what this command recorded is kept"):
            rt.__exit__(KeyboardInterrupt, KeyboardInterrupt(), None)
        ctx = build_context(settings_for(tmp_path), huey_kind="memory")
        states = {m.vm_name: m.state for m in show_batch(ctx, out.batch.ref).members}
        retried_change = show_change(ctx, retried.change.ref)
    finally:
        ctx.close()
    assert said[-1].startswith(
        "BAT-0001: STG-WEB01: its re-check could not reach HV03; trying again until "
    )
    assert said[-1].endswith(" UTC (Ctrl-C stops waiting and withdraws it)")
    err = capsys.readouterr().err
    for o in out.outcomes:
        assert (
            f"{o.change.ref}: withdrawn, its create had not started: nothing was done on "
            f"{o.change.host} ('checkpoint-bot change show {o.change.ref}')"
        ) in err, err
    assert states == {"STG-WEB01": "withdrawn", "WEB01": "withdrawn"}
    assert [j.state for j in retried_change.jobs] == ["cancelled"]
