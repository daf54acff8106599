"""What every CLI command shares: settings, the lazily built context, output."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn

import click

from bot.cli.colour import paint, wants_colour

if TYPE_CHECKING:
    # Imported when first used, not here: `--help` and `--version` load this
    # module and must not load the config, the service or the templates
    # (bench/cli_start.py).
    from bot.config import Settings
    from bot.context import AppContext, RunningHere
    from bot.inventory import Inventory
    from bot.service import Principal
    from templates import Renderer


def writes_so_far() -> int:
    """This thread's committed writes (`bot.store.outage.committed_writes`),
    read without importing the store: if it is not loaded, nothing was
    written."""
    outage = sys.modules.get("bot.store.outage")
    return int(outage.committed_writes()) if outage is not None else 0


class Interrupted(Exception):
    """Ctrl-C ended the command (exit 130); the message says what it kept."""


# The jobs a command interrupted before they started takes back (bot.service.
# withdrawal.withdraw_unstarted), by their kind's word; a start or an
# extension is small and stays queued.
WITHDRAWN_ON_CTRL_C = frozenset({"create", "rollback", "merge"})


# `worker` and `serve` stopped with a job still running past the stop's
# grace: its outcome is unknown and a reconciler settles it, what exit 4
# means for every command (bot.cli.finishing.EXIT_OUTCOME_UNKNOWN; that
# module imports the record, this one must stay light).
EXIT_LEFT_RUNNING = 4


# Once Ctrl-C has ended the command, what a library logs is the teardown of
# the calls it abandoned (pypsrp logs an ERROR when the pool closed under a
# hung host call cannot be closed cleanly): noise after the one line that
# says what was kept. The bot's own records, and everything with -v, still
# show.
_libraries_quiet = False


def quiet_libraries() -> None:
    """From now on, without -v, libraries' log records are not shown."""
    global _libraries_quiet
    _libraries_quiet = True


def simulated_hosts(config: str) -> str:
    """The line every command of a config that chose the simulator says
    first (and a running bot, for what the CLI hands it)."""
    return (
        f"checkpoint-bot: SIMULATED HOSTS — {config} sets hyperv.backend: simulator; "
        "nothing here touches a real Hyper-V host."
    )


def unchecked_certificates(inventory: str, hosts: tuple[str, ...]) -> str:
    """The line every command that reads an inventory with hosts whose
    certificate is not checked says (and `serve` and `worker` at each
    start): as easy to forget as the simulator, and worse to forget."""
    where = "their addresses" if len(hosts) > 1 else "its address"
    return (
        f"checkpoint-bot: TLS CERTIFICATES NOT CHECKED — {inventory} sets cert_validation: "
        f"false for {', '.join(hosts)}; whoever answers at {where} is trusted with the bot's "
        "login and commands. Remove it, with ca_bundle: for a private CA (docs/connect-hosts.md)."
    )


def _say_left(
    ctx: AppContext, recorded: list[str], asked: list[str], who: Principal | None
) -> None:
    """Each job of a change this command named (`recorded`) that no process
    has started yet: taken back when the command asked for it (`asked`;
    Ctrl-C means "do not do it": seen, three checkpoints taken 16 minutes
    after their commands were stopped); each job this process runs and
    leaves, and who settles it."""
    from bot.durations import format_duration

    try:
        queued = ctx.queued_of(recorded)
    except Exception:  # the database may be what hung: then say nothing of it
        queued = []
    for job in queued:
        said = _taken_back(ctx, job, who, job.change in asked)
        if said is not None:
            click.echo(said, err=True)
    try:
        left = ctx.running_here()
    except Exception:
        left = []
    stale = format_duration(ctx.settings.jobs.lock_stale_after)
    for job in left:
        said = f"{job.change or f'job {job.job_id}'}: its {job.kind} on {job.host} is left "
        said += "running: the host finishes or fails it"
        if job.change is not None:
            said += (
                f", and once its claim lapses ({stale}, jobs.lock_stale_after) any bot, "
                "worker or 'checkpoint-bot reconcile' records how it ended "
                f"('checkpoint-bot change show {job.change}')"
            )
        click.echo(said, err=True)


def _taken_back(
    ctx: AppContext, job: RunningHere, who: Principal | None, asked: bool
) -> str | None:
    """Withdraw a queued job this interrupted command asked for (`asked`;
    one it only waited for, as `change approve` does, is another person's
    request and stays); the line that says what became of it (None when
    this process took it meanwhile: the line for the jobs it leaves says
    what becomes of it)."""
    from bot.domain import ChangeRef
    from bot.service import withdraw_unstarted

    show = f"('checkpoint-bot change show {job.change}')"
    change = ChangeRef.parse(job.change or "")
    if not asked or job.kind not in WITHDRAWN_ON_CTRL_C or change is None or who is None:
        return (
            f"{job.change}: its {job.kind} is recorded and waits in the queue, not started: a "
            "worker or bot of this config, or the next command here that runs jobs, runs it "
            f"{show}"
        )
    try:
        withdrawn = withdraw_unstarted(ctx, change.id, job.kind, who)
    except Exception:  # the database may be what hung: say what is known
        withdrawn = False
    if not withdrawn:
        try:
            here = any(r.job_id == job.job_id for r in ctx.running_here())
        except Exception:
            here = False
        if here:
            return None
        return (
            f"{job.change}: its {job.kind} could not be withdrawn (a worker may have just taken "
            f"it): it runs, and the change says how it ended {show}"
        )
    if job.kind == "create":
        return (
            f"{job.change}: withdrawn, its create had not started: nothing was done on "
            f"{job.host} {show}"
        )
    return (
        f"{job.change}: its {job.kind} withdrawn, it had not started: nothing was done on "
        f"{job.host}, the checkpoint is kept {show}"
    )


def _build_context(settings: Settings, **kwargs: Any) -> AppContext:
    from bot.context import build_context

    return build_context(settings, **kwargs)


@dataclass
class Runtime:
    """Built at the entry point; the only place the CLI reads the environment."""

    config_path: Path | None
    # -v: log at INFO, else WARNING (set up with the settings, see below).
    verbose: bool = False
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    cwd: Path = field(default_factory=Path.cwd)
    builder: Callable[..., AppContext] = _build_context
    # `serve` and `worker`: their first Ctrl-C stops them gracefully.
    serving: bool = False
    _renderer: Renderer | None = None
    _settings: Settings | None = None
    _ctx: AppContext | None = None
    _writes_at_start: int = 0
    # The changes this command has shown so far (their refs): what an
    # interrupt leaves queued among them is named; among them, those whose
    # request this command made (`asked_changes`) are withdrawn.
    said_changes: list[str] = field(default_factory=list)
    asked_changes: list[str] = field(default_factory=list)

    @property
    def renderer(self) -> Renderer:
        if self._renderer is None:
            from templates import Renderer

            self._renderer = Renderer()
        return self._renderer

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            # Logging is set up when a command starts its work, which always
            # reads the settings first: `--help` never needs it, and a
            # short command saves importing it (bench/cli_start.py).
            _configure_logging(self.verbose)
            from bot.config import load_settings

            self._settings = load_settings(self.config_path, self.env, self.cwd)
            if self._settings.demo:
                from bot.devtools.hostmodel import demo_hosts_path

                click.echo(
                    "checkpoint-bot: DEMO MODE — simulated Hyper-V hosts of "
                    f"{_short(demo_hosts_path(), self.cwd)}, inventory "
                    f"{_short(self._settings.inventory_path, self.cwd)}, state in "
                    f"{self._settings.database_label}. Pass --config FILE (or set "
                    "CHECKPOINT_BOT_CONFIG) for a real deployment.",
                    err=True,
                )
            elif self._settings.hyperv.backend == "simulator":
                # Chosen in the file, yet as easy to forget as demo mode:
                # what the commands say "taken" was taken on no real host.
                config = self._settings.config_path
                assert config is not None  # a configured deployment has its file
                click.echo(simulated_hosts(_short(config, self.cwd)), err=True)
        return self._settings

    @property
    def ctx(self) -> AppContext:
        if self._ctx is None:
            self._ctx = self.builder(self.settings, env=self.env, on_inventory=self.read_inventory)
            self._writes_at_start = writes_so_far()
        return self._ctx

    def read_inventory(self, inventory: Inventory) -> None:
        """Says, once the inventory is read, which hosts' certificates are
        not checked. The simulator reaches no host: nothing to say then."""
        hosts = inventory.unchecked_certificates
        if hosts and self.settings.hyperv.backend == "winrm":
            path = _short(self.settings.inventory_path, self.cwd)
            click.echo(unchecked_certificates(path, hosts), err=True)

    @property
    def user(self) -> str:
        """NAME of the operator at this terminal (CHECKPOINT_BOT_USER, else
        $USER); a ClickException (exit 2) for a name the record cannot keep."""
        variable = "CHECKPOINT_BOT_USER" if self.env.get("CHECKPOINT_BOT_USER") else "USER"
        user = self.env.get(variable)
        if not user:
            import getpass

            variable, user = "the login name", getpass.getuser()
        from bot.domain import operator_name_problem

        problem = operator_name_problem(user, variable)
        if problem is not None:
            raise click.ClickException(problem)
        return user

    @property
    def principal(self) -> Principal:
        """The operator at this terminal: `cli:NAME`."""
        from bot.service import Principal

        return Principal(f"cli:{self.user}")

    def close(self, why: str = "was stopped") -> bool:
        """Close what the command opened; whether a job of this process was
        left running (`why`, how the process ends, is written on it:
        AppContext.close)."""
        left = False
        if self._ctx is not None:
            left = self._ctx.close(why=why)
            self._ctx = None
        return left

    def __enter__(self) -> Runtime:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Closed as the command ends. Interrupted (Ctrl-C), it does not wait
        for the jobs this process runs (a host call can take
        `hyperv.call_timeout`): it says which it leaves, and ends the command
        with `Interrupted`."""
        if isinstance(exc, KeyboardInterrupt):
            self._interrupted()
        self.close()

    def shut_down(self, steps: Callable[[], None]) -> None:
        """The end of `serve` or `worker` (after their first Ctrl-C or
        SIGTERM): `steps`, then the close, which gives the jobs under way
        10 s to end. A Ctrl-C meanwhile leaves them to the reconciler."""
        self.serving = True
        try:
            steps()
            left = self.close("was stopped (SIGTERM or Ctrl-C)")
        except KeyboardInterrupt:
            self._interrupted()
        if left:
            # Each job left was named in the log; the exit says it too, as a
            # command that waited for its job does (4: outcome unknown, the
            # reconciler settles it), so a supervisor's record shows it.
            raise SystemExit(EXIT_LEFT_RUNNING)

    def _interrupted(self) -> NoReturn:
        # Before the close below, whose abandoned host calls fail in libraries.
        quiet_libraries()
        click.echo(err=True)  # past the ^C the terminal echoed
        ctx, self._ctx = self._ctx, None
        if ctx is not None:
            try:
                who: Principal | None = self.principal
            except click.ClickException:  # no usable operator name: nothing is withdrawn
                who = None
            _say_left(ctx, self.said_changes, self.asked_changes, who)
            ctx.close(
                leave_running=True,
                why="was stopped at once (a second Ctrl-C)"
                if self.serving
                else "was interrupted (Ctrl-C)",
            )
        if self.serving:
            raise Interrupted("stopped at once (a second Ctrl-C)")
        # Every record a command writes is written by its main thread.
        if writes_so_far() > self._writes_at_start:
            raise Interrupted("interrupted; what this command recorded is kept")
        raise Interrupted("interrupted before anything was recorded")

    def out(self, template: str, **values: Any) -> None:
        from bot.domain import plain_mentions

        # Slack's mention tokens (`<@U0CAROL>`, `<!subteam^S0APPROVERS>`) in
        # the record's and the policy's words read as @names on a terminal.
        text = plain_mentions(self.renderer.render(template, **values))
        coloured = wants_colour(self.env, sys.stdout.isatty())
        # color=False: Click strips any escape code when asked not to colour.
        click.echo(paint(text) if coloured else text, nl=False, color=coloured)


def _ours(name: str) -> bool:
    return name.split(".")[0] in ("bot", "handlers", "policies", "templates")


def _configure_logging(verbose: bool) -> None:
    import logging

    global _libraries_quiet
    # A new command (in-process tests run many): nothing interrupted it yet.
    _libraries_quiet = False
    if verbose:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        return

    class OneLine(logging.Formatter):
        """A logged warning as the CLI says things, `checkpoint-bot: warning:
        …`: one line, never a traceback (`-v` shows the whole record). A
        logged error is "logged error", so that the one `checkpoint-bot:
        error:` line stays the command's own outcome. A library's record
        names the library."""

        def format(self, record: logging.LogRecord) -> str:
            lines = record.getMessage().splitlines()
            level = "warning" if record.levelno < logging.ERROR else "logged error"
            source = "" if _ours(record.name) else f" ({record.name})"
            return f"checkpoint-bot: {level}{source}: {lines[0] if lines else ''}"

    def shown(record: logging.LogRecord) -> bool:
        return not (_libraries_quiet and not _ours(record.name))

    from bot.library_logs import LibraryNoise

    handler = logging.StreamHandler()
    handler.setFormatter(OneLine())
    handler.addFilter(shown)
    handler.addFilter(LibraryNoise())
    logging.basicConfig(level=logging.WARNING, handlers=[handler])


def _short(path: Path, cwd: Path) -> str:
    try:
        return str(path.relative_to(cwd))
    except ValueError:
        return str(path)


def echo_json(data: Any) -> None:
    import json

    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def progress(message: str) -> None:
    """Progress goes to stderr so stdout stays clean for --json and pipes."""
    from bot.domain import plain_mentions

    click.echo(plain_mentions(message), err=True)


pass_runtime = click.make_pass_decorator(Runtime)
