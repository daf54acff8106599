"""What `serve` and `worker` share to be observed: the --health-port,
--health-host and --log-format options, the readiness checks, and the
health server (docs/operations.md)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import click

from bot.cli.runtime import Runtime

if TYPE_CHECKING:
    from bot.context import AppContext
    from bot.observe import HealthServer, Readiness
    from bot.observe.logs import LogFormat

# The observability parts are imported where used: `serve --help` and
# `worker --help` load this module for its options (bench/cli_start.py).


class Consumer(Protocol):
    """What readiness asks of the job consumer (bot.jobs.InProcessConsumer)."""

    @property
    def running(self) -> bool: ...


F = TypeVar("F", bound=Callable[..., Any])


def observe_options(fn: F) -> F:
    options = [
        click.option(
            "--health-port",
            type=click.IntRange(0, 65535),
            default=None,
            help="Serve /healthz, /readyz and /metrics on this port (0: any free one; "
            "default: observability.health_port, else none).",
        ),
        click.option(
            "--health-host",
            default=None,
            help="Address of the health port (default: observability.health_host, 127.0.0.1).",
        ),
        click.option(
            "--log-format",
            type=click.Choice(["text", "json"]),
            default=None,
            help="Log lines as text or JSON (default: observability.log_format, text).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def setup_logging(rt: Runtime, log_format: str | None) -> None:
    """INFO to stderr in the chosen format: what a service's log shows;
    with `-v`, the bot's own DEBUG lines too (an outage's traceback)."""
    from bot.observe.logs import configure

    chosen = log_format or rt.settings.observability.log_format
    fmt: LogFormat = "json" if chosen == "json" else "text"
    configure(fmt, logging.INFO, debug=rt.verbose)


def readiness(
    ctx: AppContext,
    consumer: Consumer | None,
    *,
    slack_connected: Callable[[], bool] | None = None,
) -> Readiness:
    from bot.observe.health import process_readiness

    return process_readiness(
        ctx.engine,
        ctx.queue.huey,
        consumer_running=(lambda: consumer.running) if consumer is not None else None,
        slack_connected=slack_connected,
    )


def start_health(
    rt: Runtime, checks: Readiness, port: int | None, host: str | None
) -> HealthServer | None:
    from bot.observe import HealthServer
    from bot.service import BadRequest

    settings = rt.settings.observability
    port = settings.health_port if port is None else port
    if port is None:
        return None
    try:
        server = HealthServer(checks, rt.ctx.metrics, host or settings.health_host, port).start()
    except OSError as exc:
        # This machine's own port (taken, or not ours to bind): the command
        # line's or the config's to change, exit 2; 3 is for a host or the
        # database not answering.
        raise BadRequest(
            f"cannot serve health on port {port}: {exc.strerror}; choose another "
            "--health-port (or observability.health_port)"
        ) from None
    click.echo(f"checkpoint-bot: health on {server.url} (/healthz, /readyz, /metrics)", err=True)
    return server
