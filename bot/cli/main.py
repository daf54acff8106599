"""Entry point: parse, run one command, turn every error into one line."""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from bot.cli.collector import DeferredCollection
from bot.cli.colour import wants_colour
from bot.cli.lazy import LazyCommand, LazyGroup
from bot.cli.runtime import Interrupted, Runtime, quiet_libraries, writes_so_far

if TYPE_CHECKING:
    import logging

EXIT_FAILED, EXIT_USAGE, EXIT_UNAVAILABLE = 1, 2, 3
# 4, an outcome unknown, is said by the command that waited for a change
# interrupted (bot.cli.finishing.EXIT_OUTCOME_UNKNOWN), and here only for a
# database that stopped answering after something was recorded.
# 128 + SIGINT, as shells report a command Ctrl-C stopped.
EXIT_INTERRUPTED = 130

EPILOG = """\
Without --config (or CHECKPOINT_BOT_CONFIG) every command runs in demo mode on
the simulated estate of deploy/examples/demo-inventory.yaml.

Exit codes: 0 done, 1 refused or failed, 2 bad input, 3 a host or the database
could not be reached (nothing was decided or recorded: try again), 4 interrupted:
the outcome is unknown and the bot's reconciler settles it (do not run it again;
`change show` shows how it ended), 130 interrupted (Ctrl-C).

Who you are here: cli:NAME, NAME from CHECKPOINT_BOT_USER, else $USER. Nothing
checks it, so on the CLI the two-person rule (nobody approves their own
change) holds only among people trusted with this shell and config. A policy
with `permissions: {approve: {..., cli: false}}` refuses CLI approvals (see
docs/security.md).
"""


# Every command is loaded only when it runs (bot.cli.lazy): `--help` and
# `--version` import none of them, and each command imports only what it
# uses (bench/cli_start.py). `tests/test_cli_start.py` checks each line of
# help below against the command's own docstring.
COMMANDS = {
    "audit": LazyCommand("bot.cli.admin_cmds:audit", "The change record, exported."),
    "batch": LazyCommand(
        "bot.cli.batch_cmds:batch",
        "Patch waves: batches of checkpoints taken, rolled back and merged together (BAT-n).",
    ),
    "change": LazyCommand("bot.cli.groups:change", "Look at the record of a change."),
    "checkpoint": LazyCommand(
        "bot.cli.groups:checkpoint", "Take, list, roll back and merge checkpoints."
    ),
    "db": LazyCommand("bot.cli.admin_cmds:db", "The database schema."),
    "inventory": LazyCommand("bot.cli.inventory_cmd:inventory", "The hosts and VMs the bot knows."),
    "outbox": LazyCommand(
        "bot.cli.outbox_cmd:outbox",
        "Show the job outbox (jobs recorded but not yet handed to the queue) and the "
        "Slack outbox (changes whose thread is behind their record).",
    ),
    "policy": LazyCommand("bot.cli.admin_cmds:policy", "The guardrails."),
    "reconcile": LazyCommand(
        "bot.cli.followup_cmds:reconcile_cmd",
        "Run the reconciler once now (every bot and worker also runs it on each tick): "
        "interrupted work is checked against the hosts, and a job recorded but never handed "
        "to the job queue (its command stopped first) is handed over.",
    ),
    "serve": LazyCommand(
        "bot.cli.serve_cmd:serve",
        "Run the Slack bot and (unless --no-worker) the job consumer until stopped.",
    ),
    "sweep": LazyCommand(
        "bot.cli.sweep_cmd:sweep",
        "Every checkpoint on every host: what is stale, what no change owns.",
    ),
    "windows": LazyCommand(
        "bot.cli.followup_cmds:windows_cmd",
        "The change windows: each one's next (or current) opening, its scope, the "
        "checkpoints still scheduled for it and those waiting for approval that it would "
        "run, and the notice due now, if any; then the changes and waves asked for at a "
        "time (--at) that wait for it.",
    ),
    "worker": LazyCommand(
        "bot.cli.admin_cmds:worker", "Run queued jobs in this process until Ctrl-C."
    ),
    # The dev tools: a production install without the demo extra never imports them.
    "demo": LazyCommand(
        "bot.devtools.playground.cli:demo",
        "Run the playground: a local Slack, the bot, emulated Hyper-V hosts.",
        devtools=True,
    ),
    "emulator": LazyCommand(
        "bot.devtools.emulator.cli:emulator",
        "Run emulated Hyper-V WinRM endpoints until Ctrl-C or SIGTERM.",
        devtools=True,
    ),
}


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    epilog=EPILOG,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(path_type=Path),
    help="The YAML config file (default: $CHECKPOINT_BOT_CONFIG, else demo mode).",
)
@click.option("--verbose", "-v", is_flag=True, help="Log what happens, to stderr.")
@click.version_option(package_name="checkpoint-bot")
@click.pass_context
def cli(click_ctx: click.Context, config_path: Path | None, verbose: bool) -> None:
    """checkpoint-bot: safe Hyper-V checkpoints, with guardrails and a record."""
    runtime = Runtime(config_path=config_path, verbose=verbose)
    # As a resource, not a callback: its __exit__ sees a Ctrl-C, and then
    # leaves a running job to the reconciler instead of waiting for it.
    click_ctx.obj = click_ctx.with_resource(runtime)


def _log() -> logging.Logger:
    import logging

    return logging.getLogger("checkpoint_bot.cli")


def _fail(message: str, code: int) -> int:
    from bot.domain import plain_mentions

    # A service's words name people as Slack does (`<@U0CAROL>`): @names here.
    first, *rest = plain_mentions(message).strip().splitlines() or ["error"]
    coloured = wants_colour(os.environ, sys.stderr.isatty())
    error = click.style("error:", fg="red", bold=True) if coloured else "error:"
    click.echo(f"checkpoint-bot: {error} {first}", err=True, color=coloured)
    for line in rest[:9]:
        click.echo(f"  {line}", err=True)
    return code


def known_failure(exc: Exception) -> int | None:
    """The exit code of an error the CLI reports in one line, else None.

    The error classes are looked up in `sys.modules`, not imported: an
    exception of a class whose module was never loaded cannot have been
    raised, and importing the service here would undo the lazy loading."""
    modules = sys.modules
    config, service, hyperv = (
        modules.get("bot.config"),
        modules.get("bot.service.errors"),
        modules.get("bot.hyperv.errors"),
    )
    handed = modules.get("bot.cli.local_socket")
    if handed is not None and isinstance(exc, handed.HandedOffError):
        return int(exc.code)
    if config is not None and isinstance(exc, config.ConfigError):
        return EXIT_USAGE
    secrets = modules.get("bot.secrets")
    if secrets is not None and isinstance(exc, secrets.SecretError):
        # A secret the config names cannot be read (a missing file, an
        # unset variable): the configuration's to fix, as `serve` says.
        return EXIT_USAGE
    if service is not None:
        if isinstance(exc, service.BadRequest):
            return EXIT_USAGE
        if isinstance(exc, service.Unavailable):
            return EXIT_UNAVAILABLE
        if isinstance(exc, service.ServiceError):
            return EXIT_FAILED
    if hyperv is not None and isinstance(exc, hyperv.HyperVError):
        # A host error the service did not translate: still one line.
        unreachable = isinstance(
            exc, hyperv.HostUnreachable | hyperv.HostTimeout | hyperv.HostAuthError
        )
        return EXIT_UNAVAILABLE if unreachable else EXIT_FAILED
    return None


def main(argv: list[str] | None = None) -> int:
    writes_before = writes_so_far()
    try:
        cli.main(args=argv, prog_name="checkpoint-bot", standalone_mode=False)
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        # Click 8.2 lists a missing choice's values one per line ("Choose
        # from:\n\tactive,\n\tfailed…"): a usage error is one line.
        usage = " ".join(line.strip() for line in exc.format_message().splitlines())
        return _fail(f"{usage}{hint}", EXIT_USAGE)
    except click.Abort as exc:
        # Click turns Ctrl-C, and the end of input at a prompt, into Abort:
        # `raise Abort() from e` after a newline when the command was
        # running, `from None` (so the cause is only the context) with the
        # cursor still after the question when it was asking one.
        cause = exc.__cause__ or exc.__context__
        if exc.__cause__ is None and cause is not None:
            click.echo(err=True)
        if isinstance(cause, EOFError):
            return _fail("no answer (the input ended): nothing was done", EXIT_FAILED)
        if not isinstance(cause, KeyboardInterrupt):
            # A "no" to a question that aborts when refused (`db downgrade`).
            return _fail("not confirmed: nothing was done", EXIT_FAILED)
        quiet_libraries()
        kept = writes_so_far() > writes_before
        return _fail(
            "interrupted; what this command recorded is kept"
            if kept
            else "interrupted before anything was recorded",
            EXIT_INTERRUPTED,
        )
    except click.ClickException as exc:
        return _fail(exc.format_message(), EXIT_USAGE)
    except SystemExit as exc:
        return int(exc.code or 0)
    except Interrupted as exc:
        # Said by the runtime, which knows what it left running (bot/cli/runtime.py).
        return _fail(str(exc), EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        quiet_libraries()
        return EXIT_INTERRUPTED
    except Exception as exc:
        code = known_failure(exc)
        if code is not None:
            return _fail(str(exc), code)
        from bot.cli.finishing import CLI_LOOK, outage_exit
        from bot.service import outage_message

        # An unreachable database is no bug: say what was kept.
        said = outage_message(exc, writes_before, look=CLI_LOOK)
        if said is not None:
            _log().info("the database is unavailable", exc_info=True)
            return _fail(said, outage_exit(said))
        # A bug: the details go to the log (-v), the terminal gets one line.
        _log().info("unexpected error", exc_info=True)
        return _fail(
            f"internal error ({type(exc).__name__}: {exc}); run with -v for details",
            EXIT_FAILED,
        )
    return 0


def run() -> None:
    """Console-script entry point."""
    # What the command builds lives until the exit (bot/cli/collector.py).
    DeferredCollection().start()
    code = main()
    # The command has closed what it opened (Runtime.close); what is left is
    # the interpreter's exit, whose last garbage collection walks every
    # object the imports made (SQLAlchemy, pydantic, pypsrp): 0.15-0.2 s of
    # a `checkpoint create` (bench/op_latency.py). Frozen objects are left
    # out of every later collection
    # (https://docs.python.org/3/library/gc.html#gc.freeze).
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    run()
