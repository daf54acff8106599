"""Entry point: parse, run one command, turn every error into one line."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from bot.cli.admin_cmds import audit, db, inventory, policy, worker
from bot.cli.batch_cmds import batch
from bot.cli.checkpoint_cmds import change, checkpoint
from bot.cli.db_cmds import db_backup, db_downgrade
from bot.cli.followup_cmds import reconcile_cmd, resolve_cmd, windows_cmd
from bot.cli.lazy import LazyCommand, LazyGroup
from bot.cli.outbox_cmd import outbox
from bot.cli.runtime import Runtime
from bot.cli.serve_cmd import serve
from bot.cli.sweep_cmd import sweep
from bot.config import ConfigError
from bot.hyperv.errors import HostAuthError, HostTimeout, HostUnreachable, HyperVError
from bot.service import BadRequest, ServiceError, Unavailable

EXIT_FAILED, EXIT_USAGE, EXIT_UNAVAILABLE = 1, 2, 3
log = logging.getLogger("checkpoint_bot.cli")

EPILOG = """\
Without --config (or CHECKPOINT_BOT_CONFIG) every command runs in demo mode on
the simulated estate of deploy/examples/demo-inventory.yaml.

Exit codes: 0 done, 1 refused or failed, 2 bad input, 3 a host or the database
could not be reached.

Who you are here: cli:NAME, NAME from CHECKPOINT_BOT_USER, else $USER. Nothing
checks it, so on the CLI the two-person rule (nobody approves their own
change) holds only among people trusted with this shell and config. A policy
with `permissions: {approve: {..., cli: false}}` refuses CLI approvals (see
docs/security.md).
"""


# The dev tools are loaded only when asked for (bot.cli.lazy): a production
# install without the demo extra never imports them.
DEVTOOLS = {
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
    lazy=DEVTOOLS,
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
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    runtime = Runtime(config_path=config_path)
    click_ctx.obj = runtime
    click_ctx.call_on_close(runtime.close)


for command in (
    checkpoint,
    change,
    batch,
    inventory,
    audit,
    db,
    policy,
    worker,
    serve,
    sweep,
    windows_cmd,
    reconcile_cmd,
    outbox,
):
    cli.add_command(command)
change.add_command(resolve_cmd)
db.add_command(db_backup)
db.add_command(db_downgrade)


def _fail(message: str, code: int) -> int:
    first, *rest = message.strip().splitlines() or ["error"]
    click.echo(f"checkpoint-bot: error: {first}", err=True)
    for line in rest[:9]:
        click.echo(f"  {line}", err=True)
    return code


def main(argv: list[str] | None = None) -> int:
    from bot.service import committed_writes

    writes_before = committed_writes()
    try:
        cli.main(args=argv, prog_name="checkpoint-bot", standalone_mode=False)
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        return _fail(f"{exc.format_message()}{hint}", EXIT_USAGE)
    except click.Abort:
        return _fail("aborted", EXIT_FAILED)
    except click.ClickException as exc:
        return _fail(exc.format_message(), EXIT_USAGE)
    except (ConfigError, BadRequest) as exc:
        return _fail(str(exc), EXIT_USAGE)
    except Unavailable as exc:
        return _fail(str(exc), EXIT_UNAVAILABLE)
    except ServiceError as exc:
        return _fail(str(exc), EXIT_FAILED)
    except HyperVError as exc:
        # A host error the service did not translate: still one line.
        unreachable = isinstance(exc, HostUnreachable | HostTimeout | HostAuthError)
        return _fail(str(exc), EXIT_UNAVAILABLE if unreachable else EXIT_FAILED)
    except SystemExit as exc:
        return int(exc.code or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from bot.service import outage_message

        # An unreachable database is no bug: say what was kept, exit 3.
        said = outage_message(exc, writes_before)
        if said is not None:
            log.info("the database is unavailable", exc_info=True)
            return _fail(said, EXIT_UNAVAILABLE)
        # A bug: the details go to the log (-v), the terminal gets one line.
        log.info("unexpected error", exc_info=True)
        return _fail(
            f"internal error ({type(exc).__name__}: {exc}); run with -v for details",
            EXIT_FAILED,
        )
    return 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
