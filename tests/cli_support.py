"""Running the operator CLI from a test: in this process, or as a user runs it.

`invoke` (behaviour tests) runs `bot.cli.main.main`, which is what the
console script runs (`run()` is `sys.exit(main())`): the root group parses,
one command runs, and every error becomes one line and an exit code there.
Click's `CliRunner` supplies the isolation: stdin, stdout and stderr are its
buffers (neither is a terminal, as for a redirected process). The CLI reads
the environment only through its `Runtime` (bot/cli/runtime.py), so the
test hands the Runtime an explicit env and working directory: nothing of
this process's os.environ reaches the command.

`run` starts the installed `checkpoint-bot` console script (the smoke test
of each command group, and what needs a process of its own: a real
terminal, signals, start-up time).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import mock

from click.testing import CliRunner

from bot.cli.runtime import Runtime

if TYPE_CHECKING:
    from bot.devtools.emulator import EmulatedFleet
    from bot.devtools.hostmodel import HostModel

# The module (`bot.cli.main`, the name `bot.cli` also gives its function).
cli_main = importlib.import_module("bot.cli.main")

BOT = Path(sys.executable).with_name("checkpoint-bot")
REPO = Path(__file__).resolve().parents[1]
# Who the CLI's operator is in every test unless the test says otherwise.
OPERATOR = {"CHECKPOINT_BOT_USER": "tester"}


@dataclass(frozen=True)
class CliResult:
    """What a run of the CLI left: the names of `subprocess.CompletedProcess`."""

    returncode: int
    stdout: str
    stderr: str


def invoke(
    cwd: Path, *args: str, env: Mapping[str, str] | None = None, input: str | None = None
) -> CliResult:
    """`checkpoint-bot ARGS` in this process, in `cwd`, with only
    `OPERATOR | env` as its environment and `input` on stdin."""
    runtime = functools.partial(Runtime, env={**OPERATOR, **(env or {})}, cwd=cwd)
    runner = CliRunner()
    # The working directory too is the process's: relative paths in
    # arguments resolve against it, as they do for a user in `cwd`.
    with (
        contextlib.chdir(cwd),
        mock.patch.object(cli_main, "Runtime", runtime),
        runner.isolation(input=input) as (out, err, _both),
    ):
        try:
            code = cli_main.main(list(args))
        except SystemExit as exc:  # what a command's own sys.exit would do
            code = int(exc.code or 0)
        sys.stdout.flush()
        sys.stderr.flush()
        return CliResult(code, out.getvalue().decode(), err.getvalue().decode())


def run(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The installed console script in a process of its own, in `cwd`: this
    environment without the bot's own variables, plus `OPERATOR | env`."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKPOINT_BOT")}
    full_env.pop("DATABASE_URL", None)
    full_env |= OPERATOR | (env or {})
    return subprocess.run(
        [str(BOT), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def one_line_error(result: CliResult | subprocess.CompletedProcess[str]) -> str:
    """The one `checkpoint-bot: error …` line of a failed run (and no traceback)."""
    assert "Traceback" not in result.stderr
    errors = [
        line for line in result.stderr.splitlines() if line.startswith("checkpoint-bot: error")
    ]
    assert len(errors) == 1, result.stderr
    return errors[0]


def run_script(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run `script` (Python that drives the CLI) with `args` in a fresh
    interpreter of this checkout, in demo mode."""
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO), "CHECKPOINT_BOT_CONFIG": ""},
        timeout=60,
        check=False,
    )


def probe(script: str, *args: str, cwd: Path) -> dict[str, Any]:
    """`run_script`, and the JSON object the script wrote on the last line
    of its stderr (its report on the CLI)."""
    done = run_script(script, *args, cwd=cwd)
    report: dict[str, Any] = json.loads(done.stderr.strip().splitlines()[-1])
    return report


@contextlib.contextmanager
def emulated_estate(
    workdir: Path,
    hyperv: str = "{backend: winrm, call_timeout: 60s}",
    *,
    extra: str = "",
    model: HostModel | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[EmulatedFleet]:
    """The demo inventory aimed at emulated hosts over real WinRM (the demo
    host model, or `model`), `workdir/bot.yaml` naming it with `hyperv:` and
    `extra` (tests.helpers.emulated_deployment), and the schema in place;
    the hosts stopped afterwards."""
    from bot.devtools.emulator import EmulatedFleet
    from bot.devtools.hostmodel import InMemoryHostStateStore, demo_hosts_path, load_host_model
    from tests.helpers import emulated_deployment

    fleet = EmulatedFleet.start(
        InMemoryHostStateStore(), model=model or load_host_model(demo_hosts_path())
    )
    try:
        emulated_deployment(workdir, fleet, hyperv, extra)
        upgraded = invoke(workdir, "-c", "bot.yaml", "db", "upgrade", env=env)
        assert upgraded.returncode == 0, upgraded.stderr
        yield fleet
    finally:
        fleet.stop()


# What the CLI process must not import when a running bot answers for it.
HEAVY = ("sqlalchemy", "sqlmodel", "pydantic", "pypsrp", "huey", "jinja2", "yaml")
# A CLI run that writes the heavy modules it imported, as JSON, to the
# file descriptor $HEAVY_FD (stdout and stderr stay the command's own).
_REPORTS_HEAVY = (
    "import json, os, sys\n"
    "from bot.cli.main import main\n"
    "code = main(sys.argv[1:])\n"
    "heavy = sorted({m.split('.')[0] for m in sys.modules} & set(os.environ['HEAVY'].split()))\n"
    "os.write(int(os.environ['HEAVY_FD']), json.dumps(heavy).encode())\n"
    "sys.exit(code)\n"
)


@dataclass(frozen=True)
class Ran:
    code: int
    stdout: str
    stderr: str
    # The heavy libraries the CLI imported: none when a bot did the work.
    heavy: list[str]

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.stdout)
        return data


def run_reporting_heavy(cwd: Path, env: Mapping[str, str], *args: str) -> Ran:
    """The CLI with `args` in a process of its own, in `cwd`, with only
    `env`: how it ended, and which of `HEAVY` it imported."""
    read, write = os.pipe()
    try:
        done = subprocess.run(
            [sys.executable, "-c", _REPORTS_HEAVY, *args],
            cwd=cwd,
            env={**env, "HEAVY": " ".join(HEAVY), "HEAVY_FD": str(write)},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            pass_fds=(write,),
        )
    finally:
        os.close(write)
    with os.fdopen(read) as pipe:
        heavy = json.loads(pipe.read() or "[]")
    return Ran(done.returncode, done.stdout, done.stderr, heavy)


# Set in the environment of a process a test may have to kill: Python's
# faulthandler then writes every thread's stack to stderr on SIGABRT, so a
# hang reports where it hung (https://docs.python.org/3/library/faulthandler.html).
DUMP_ON_ABORT = {"PYTHONFAULTHANDLER": "1"}


def ended_or_dumped(proc: subprocess.Popen[str], timeout: float) -> tuple[str, bool]:
    """Wait `timeout` seconds for `proc` to end: (its stderr, False). If it
    did not end, it is sent SIGABRT (run with DUMP_ON_ABORT, it writes its
    threads' stacks) and killed if that did not end it: (its stderr, with
    the stacks at the end, True)."""
    try:
        _, err = proc.communicate(timeout=timeout)
        return err, False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate(timeout=5)
        return err, True
