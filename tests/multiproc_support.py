"""Real OS processes for the multi-process tests: the emulator, bot replicas
(`serve --http`), workers and small drivers, each in its own process group
so teardown can kill everything it started, children included.

    with Cluster(tmp_path) as cluster:
        emu = cluster.emulator(log_file, "--host", "HV01")
        bot = cluster.serve(config, env)         # bot.url once it listens
        cluster.worker(config, env)
        ...                                      # teardown: SIGTERM, then SIGKILL

The emulator is the product's own `checkpoint-bot emulator --log-file F`:
every command its hosts receive is appended to F as a JSON line, so the
test (another process) sees which cmdlets reached the host; a slow host is
its `--faults slow=CMDLET:MS`.

`python -m tests.multiproc_support ticks --database URL --worker W --kind K
--slots N --at EPOCH` claims slots 0..N-1 with `TickClaims` starting at
wall-clock EPOCH (so two drivers race) and prints the slots it won as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import yaml

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
CHECKPOINT_BOT = str(VENV_BIN / "checkpoint-bot")
DEMO_INVENTORY = REPO / "deploy" / "examples" / "demo-inventory.yaml"
DEMO_HOSTS = REPO / "deploy" / "examples" / "demo-hosts.yaml"
EMULATOR_PASSWORD = "Passw0rd!"  # the emulator's default login (bot.devtools.emulator.server)

T = TypeVar("T")


def wait_until(
    probe: Callable[[], T | None],
    timeout: float,
    what: str,
    *,
    every: float = 0.1,
    explain: Callable[[], str] | None = None,
) -> T:
    """Poll `probe` until it returns something truthy; fail after `timeout`
    seconds saying what was awaited (and `explain()`, for the logs)."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() >= deadline:
            detail = f"\n{explain()}" if explain else ""
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}{detail}")
        time.sleep(every)


# --- processes ---------------------------------------------------------------------------


@dataclass
class Proc:
    """One child process in its own session (so its group can be killed),
    stdout and stderr in files."""

    name: str
    argv: list[str]
    popen: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        parts = []
        for path in (self.stdout, self.stderr):
            with contextlib.suppress(OSError):
                parts.append(path.read_text(encoding="utf-8", errors="replace"))
        return "".join(parts)

    def tail(self, lines: int = 40) -> str:
        text = self.output().splitlines()[-lines:]
        state = "running" if self.alive() else f"exited {self.popen.returncode}"
        return f"--- {self.name} (pid {self.pid}, {state}) ---\n" + "\n".join(text)

    def wait_for_output(self, pattern: str, timeout: float) -> re.Match[str]:
        """The first match of `pattern` in the process's output; fails early
        (with the output) if the process exits before printing it."""
        regex = re.compile(pattern)

        def probe() -> re.Match[str] | None:
            found = regex.search(self.output())
            if found is None and not self.alive():
                raise AssertionError(
                    f"{self.name} exited before printing {pattern!r}\n{self.tail()}"
                )
            return found

        return wait_until(probe, timeout, f"{self.name} to print {pattern!r}", explain=self.tail)

    def dump_stacks(self) -> str:
        """End the process with SIGABRT so faulthandler prints every
        thread's stack to its stderr (for a hang's post-mortem)."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGABRT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(10)
        return self.tail(400)

    def signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    def kill(self) -> None:
        """SIGKILL the whole group at once: no cleanup runs, as in a crash."""
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(10)

    def stop(self, grace: float = 8.0) -> None:
        """SIGTERM, then SIGKILL whatever is left of the group after `grace`."""
        if self.alive():
            self.signal_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(grace)
        # Children the leader left behind die with the group.
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)


@dataclass
class Cluster:
    """Starts processes and stops all of them (newest first) on exit."""

    workdir: Path
    procs: list[Proc] = field(default_factory=list)
    _n: int = 0

    def __enter__(self) -> Cluster:
        self.workdir.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, *_: object) -> None:
        self.stop_all()

    def stop_all(self) -> None:
        procs, self.procs = self.procs, []
        for proc in reversed(procs):
            proc.signal_group(signal.SIGTERM)
        for proc in reversed(procs):
            proc.stop(grace=5.0)

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> Proc:
        self._n += 1
        stem = self.workdir / f"{self._n:02d}-{name}"
        out, err = stem.with_suffix(".out"), stem.with_suffix(".err")
        with out.open("wb") as stdout, err.open("wb") as stderr:
            popen = subprocess.Popen(
                list(argv),
                cwd=self.workdir,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
        proc = Proc(name, list(argv), popen, out, err)
        self.procs.append(proc)
        return proc

    def diagnostics(self) -> str:
        return "\n".join(p.tail() for p in self.procs)

    # --- the pieces -------------------------------------------------------------------

    def emulator(
        self,
        log_file: Path,
        inventory_out: Path,
        *options: str,
        env: Mapping[str, str],
        slow: Mapping[str, float] | None = None,
    ) -> Proc:
        """The emulator CLI serving `options`' hosts of the demo host model,
        its command log in `log_file`, its listeners as Windows ships them
        (only sealed messages over HTTP); waits until it wrote the demo
        inventory aimed at it.
        `slow`: cmdlet -> seconds the host takes before running it."""
        slow_faults = [f"slow={name}:{int(s * 1000)}" for name, s in (slow or {}).items()]
        if slow_faults:
            options = (*_with_faults(options, slow_faults),)
        argv = [
            CHECKPOINT_BOT,
            "emulator",
            "--log-file",
            str(log_file),
            "--hosts",
            str(DEMO_HOSTS),
            "--inventory",
            str(DEMO_INVENTORY),
            "--port",
            "0",
            "--write-inventory",
            str(inventory_out),
            "--no-allow-unencrypted",
            *options,
        ]
        proc = self.start("emulator", argv, env)
        proc.wait_for_output(r"emulator: serving", timeout=60)
        return proc

    def serve(
        self, config: Path, env: Mapping[str, str], name: str = "serve", *, worker: bool = True
    ) -> BotProc:
        """A bot replica; `worker=False` answers Slack and enqueues only."""
        argv = [CHECKPOINT_BOT, "--config", str(config), "serve", "--http", "--port", "0"]
        if not worker:
            argv.append("--no-worker")
        proc = self.start(name, argv, env)
        found = proc.wait_for_output(r"over HTTP on (http://[\d.]+:\d+)/slack/events", timeout=60)
        return BotProc(proc, found.group(1))

    def worker(self, config: Path, env: Mapping[str, str], name: str = "worker") -> Proc:
        proc = self.start(name, [CHECKPOINT_BOT, "--config", str(config), "worker"], env)
        proc.wait_for_output(r"worker \S+: running jobs", timeout=60)
        return proc

    def ticker(self, database: str, worker: str, kind: str, slots: int, at: float) -> Proc:
        """A driver claiming slots 0..slots-1 of `kind` from wall-clock `at`
        on; prints {"worker", "won"} as JSON when done."""
        argv = [sys.executable, "-m", "tests.multiproc_support", "ticks", "--database", database]
        argv += ["--worker", worker, "--kind", kind, "--slots", str(slots), "--at", str(at)]
        return self.start(f"ticker-{worker}", argv, {**process_env(), "PYTHONPATH": str(REPO)})

    def cli(
        self, config: Path, env: Mapping[str, str], *args: str, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """A one-shot `checkpoint-bot --config F ARGS` (in its own group too)."""
        return subprocess.run(
            [CHECKPOINT_BOT, "--config", str(config), *args],
            cwd=self.workdir,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            start_new_session=True,
        )


@dataclass(frozen=True)
class BotProc:
    proc: Proc
    url: str


# --- configuration --------------------------------------------------------------------------


def write_config(
    path: Path,
    *,
    inventory: Path,
    database_url: str,
    redis_url: str,
    queue_name: str,
    slack_api_url: str,
    channel: str,
    policy: Path | None = None,
    jobs: Mapping[str, Any] | None = None,
    backend: str = "winrm",
    team_id: str = "T0TEST",
) -> Path:
    """A deployment's config file (FileConfig): WinRM (to the emulator) or
    the simulator, Huey on Redis, PostgreSQL, a Slack channel for threads."""
    data: dict[str, Any] = {
        "inventory": str(inventory),
        "database_url": database_url,
        "workdir": str(path.parent),
        "hyperv": {"backend": backend, "call_timeout": "60s"},
        "jobs": {
            "queue": "redis",
            "redis_url": redis_url,
            "queue_name": queue_name,
            "workers": 4,
            **(jobs or {}),
        },
        # The workspace the fake Slack's requests come from (SlackSender's).
        "slack": {"api_url": slack_api_url, "changes_channel": channel, "team_ids": [team_id]},
        "sweep": {"enabled": False},
    }
    if policy is not None:
        data["policy"] = str(policy)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def process_env(**extra: str) -> dict[str, str]:
    """The environment for a bot or worker process: only what it needs."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", "XDG_RUNTIME_DIR")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(
        PYTHONUNBUFFERED="1",
        # SIGABRT (see Proc.dump_stacks) prints every thread's stack.
        PYTHONFAULTHANDLER="1",
        CHECKPOINT_BOT_EMULATOR_PASSWORD=EMULATOR_PASSWORD,
    )
    env.update(extra)
    return env


# --- the emulator's command log, across processes ----------------------------------------


def _with_faults(options: tuple[str, ...], extra: list[str]) -> list[str]:
    """`options` with `extra` joined into its --faults SPEC (added if absent)."""
    out = list(options)
    if "--faults" in out:
        at = out.index("--faults") + 1
        out[at] = ",".join([out[at], *extra])
    else:
        out += ["--faults", ",".join(extra)]
    return out


@dataclass(frozen=True)
class LoggedCommand:
    host: str
    cmdlet: str
    parameters: dict[str, Any]
    at: str


def read_command_log(path: Path) -> list[LoggedCommand]:
    """What the emulated hosts received, oldest first (a torn last line,
    being written right now, is left for the next read)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    found = []
    for line in lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        found.append(LoggedCommand(row["host"], row["cmdlet"], row["parameters"], row["at"]))
    return found


def commands_named(path: Path, cmdlet: str) -> list[LoggedCommand]:
    return [c for c in read_command_log(path) if c.cmdlet.casefold() == cmdlet.casefold()]


# --- racing tick claims --------------------------------------------------------------------


def _run_ticks(database: str, worker: str, kind: str, slots: int, at: float) -> int:
    from bot.jobs.ticks import TickClaims
    from bot.store.db import make_engine

    engine = make_engine(database)
    claims = TickClaims(engine, lambda: datetime.now(UTC), worker)
    claims.claim(f"{kind}-warmup-{worker}", "0")  # connect before the race starts
    time.sleep(max(0.0, at - time.time()))
    won = [n for n in range(slots) if claims.claim(kind, f"slot-{n:04d}")]
    engine.dispose()
    print(json.dumps({"worker": worker, "won": won}), flush=True)
    return 0


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.multiproc_support")
    sub = parser.add_subparsers(dest="what", required=True)
    ticks = sub.add_parser("ticks", help="claim slots with TickClaims, racing another process")
    ticks.add_argument("--database", required=True)
    ticks.add_argument("--worker", required=True)
    ticks.add_argument("--kind", required=True)
    ticks.add_argument("--slots", type=int, required=True)
    ticks.add_argument("--at", type=float, required=True)
    args = parser.parse_args(argv)
    return _run_ticks(args.database, args.worker, args.kind, args.slots, args.at)


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
