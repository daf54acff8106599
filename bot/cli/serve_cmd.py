"""`checkpoint-bot serve`: the Slack bot, over Socket Mode (default: works
behind a firewall, needs the app-level token) or HTTP (`--http`, behind a
reverse proxy, needs the signing secret). The job consumer runs in this
process; Ctrl-C or SIGTERM stops both cleanly, and SIGHUP starts them again
on the files as they are now (bot/cli/reload.py)."""

from __future__ import annotations

import ipaddress
import os
import signal
from collections.abc import Mapping
from types import FrameType
from typing import TYPE_CHECKING

import click

from bot.cli.observe_opts import observe_options, readiness, setup_logging, start_health
from bot.cli.runtime import Runtime, pass_runtime

if TYPE_CHECKING:
    from bot.config import SecretRefConfig
    from bot.secrets import Secret

# Bolt, the Slack SDK, the config and the service are imported when `serve`
# runs, never here: `serve --help` pays for Click and the command definition
# only (bench/cli_start.py).


def need_secret(ref: SecretRefConfig, what: str, env: Mapping[str, str]) -> Secret:
    """The secret, or one line saying where it was looked for."""
    from bot.config import ConfigError
    from bot.secrets import SecretError, secret_from

    try:
        found = secret_from(env_name=ref.env, file=ref.file, env=env, what=what)
    except SecretError as exc:
        raise ConfigError(str(exc)) from None
    if found is None:
        where = f"set ${ref.env}" if ref.env else "name a file"
        raise ConfigError(f"{what} is missing: {where} (or `{what}.file` in the config file)")
    return found


# Slack's codes for a token it will not take
# (https://docs.slack.dev/reference/methods/apps.connections.open#errors).
_TOKEN_REFUSED = frozenset(
    {"invalid_auth", "not_authed", "not_allowed_token_type", "token_revoked", "account_inactive"}
)


def _app_token_hint(exc: BaseException) -> str:
    """What to check when Slack refuses the Socket Mode token itself."""
    if _why(exc) not in _TOKEN_REFUSED:
        return ""
    return (
        "; slack.app_token must be the app-level token (xapp-…) with the "
        "connections:write scope, not the bot token (docs/slack-setup.md)"
    )


def _why(exc: BaseException) -> str:
    """Slack's error code (never the request, which carries the token)."""
    from slack_bolt.error import BoltError
    from slack_sdk.errors import SlackApiError

    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error", "error"))
    if isinstance(exc, BoltError):
        # Bolt raises its own error inside its handler of auth.test's
        # SlackApiError: Slack's code is on the error it replaced.
        if isinstance(exc.__context__, SlackApiError):
            return _why(exc.__context__)
        return "bad token"
    from bot.net_causes import SocketProblem, socket_problem

    found = socket_problem(exc)
    if found is None:
        cause = exc.__cause__ or exc.__context__
        return type(cause or exc).__name__
    problem, error = found
    if problem is SocketProblem.TLS:
        # A proxy that inspects TLS presents its own certificate: its CA
        # goes in SSL_CERT_FILE (docs/slack-setup.md).
        detail = getattr(error, "verify_message", None) or getattr(error, "reason", None)
        return f"TLS failed ({detail or type(error).__name__}): is a proxy in the way?"
    if problem is SocketProblem.NO_NAME:
        return "the name of Slack's API does not resolve (DNS); does this machine need a proxy?"
    return problem.value


def on_loopback(host: str) -> bool:
    """True when `host` is an address only this machine reaches. Any name
    but localhost counts as reachable: it may resolve to anything."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _say_http_start(url: str, host: str, *, health_port: bool) -> None:
    """The start-up line of HTTP mode, and one warning when the Slack port,
    reachable from elsewhere, also serves /metrics and /readyz."""
    if health_port:
        click.echo(
            f"checkpoint-bot: serving Slack over HTTP on {url}/slack/events "
            "(health: /healthz; readiness and metrics on the health port); Ctrl-C stops",
            err=True,
        )
        return
    click.echo(
        f"checkpoint-bot: serving Slack over HTTP on {url}/slack/events "
        "(health: /healthz, readiness: /readyz, metrics: /metrics); Ctrl-C stops",
        err=True,
    )
    if not on_loopback(host):
        # Kept as it was for the scrape configs that name this port, but
        # whoever reaches Slack's endpoint reads host names and failures.
        click.echo(
            f"checkpoint-bot: warning: /metrics and /readyz are served on the Slack port "
            f"{url.removeprefix('http://')} to anyone who reaches it; --health-port N "
            "(or observability.health_port) moves them to a port of their own",
            err=True,
        )


# Slack's own deadline for an answer is 3 s; a request taken before SIGTERM
# has that long, and a margin, to be answered.
# https://api.slack.com/interactivity/handling#acknowledgment_response
DRAIN_SECONDS = 10.0


def _stop_on_sigterm() -> None:
    # Containers and systemd stop with SIGTERM: treat it like Ctrl-C so the
    # server and the consumer wind down the same way.
    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


@click.command("serve")
@click.option("--http", "http_mode", is_flag=True, help="Serve HTTP (default: Socket Mode).")
@click.option("--port", default=3000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (HTTP).")
@click.option("--threads", default=16, show_default=True, type=click.IntRange(1, 256))
@click.option(
    "--no-worker",
    is_flag=True,
    help="Only answer Slack and enqueue: jobs and periodic work run in "
    "`checkpoint-bot worker` processes (jobs.queue: redis, or sqlite on this machine).",
)
@observe_options
@pass_runtime
def serve(
    rt: Runtime,
    http_mode: bool,
    port: int,
    host: str,
    threads: int,
    no_worker: bool,
    health_port: int | None,
    health_host: str | None,
    log_format: str | None,
) -> None:
    """Run the Slack bot and (unless --no-worker) the job consumer until stopped."""
    from bot.cli.reload import Reload

    Reload.hold()  # SIGHUP: a reload, once started (below)
    from slack_bolt.error import BoltError
    from slack_sdk.errors import SlackClientError

    from bot.config import ConfigError
    from bot.service import Unavailable

    settings = rt.settings
    setup_logging(rt, log_format)
    slack = settings.slack
    bot_token = need_secret(slack.bot_token, "slack.bot_token", rt.env)
    signing = (
        need_secret(slack.signing_secret, "slack.signing_secret", rt.env) if http_mode else None
    )
    app_token = None if http_mode else need_secret(slack.app_token, "slack.app_token", rt.env)
    api_url = rt.env.get("SLACK_API_URL") or slack.api_url

    # Imported here so the rest of the CLI never loads Bolt.
    from handlers.app import build_bolt_app
    from handlers.workspace import missing_workspace
    from templates import Renderer
    from templates.blocks import SlackRenderer

    if no_worker and settings.jobs.queue == "memory":
        raise ConfigError(
            "--no-worker needs a queue other processes can reach (jobs.queue: redis, or "
            "sqlite for workers on this machine); with jobs.queue: memory nothing would "
            "ever run the jobs"
        )
    # Said before anything starts (seen: the CLI's socket opened, Slack
    # asked and the hosts swept first, and the socket's file left behind).
    missing = missing_workspace(slack, demo=settings.demo)
    if missing is not None:
        raise missing
    ctx = rt.ctx
    # Every part now: a broken policy stops the bot here, not at its first request.
    ctx.build_all()
    ctx.watch_files()  # says when an edited file waits for a reload
    consumer = None if no_worker else ctx.start_workers()
    # Threads a stopped process left behind are posted by this one.
    ctx.start_slack_outbox()
    from bot.cli.local_server import start_cli_socket

    local = start_cli_socket(rt, ctx)
    try:
        # Bolt checks the token with auth.test here.
        app = build_bolt_app(
            ctx,
            bot_token=bot_token.reveal(),
            signing_secret=signing.reveal() if signing else "",
            api_url=api_url,
            renderer=SlackRenderer(Renderer(), simulated=settings.simulated_hosts),
        )
    except (SlackClientError, BoltError, OSError) as exc:
        if local is not None:
            local.close()  # its file too: no CLI is to be answered
        raise Unavailable(f"Slack refused or did not answer auth.test: {_why(exc)}") from None
    if settings.demo:
        click.echo(
            "checkpoint-bot: serving Slack in DEMO MODE on the simulated estate; "
            "every message says so.",
            err=True,
        )
    elif settings.simulated_hosts:
        click.echo(
            "checkpoint-bot: serving Slack on SIMULATED HOSTS (hyperv.backend: simulator); "
            "no checkpoint it takes is on a real Hyper-V host, and every message says so.",
            err=True,
        )
    _stop_on_sigterm()
    # A reload that checks out stops the bot exactly as SIGTERM does.
    reload = Reload(rt, lambda: os.kill(os.getpid(), signal.SIGTERM))
    reload.install()
    health = None
    if http_mode:
        from bot.slack_http import HttpServer, SlackWsgi, consumer_running, database_answers

        checks = readiness(ctx, consumer)
        # The health port first: whether there is one (the option or the
        # config key) decides what the Slack port may answer.
        health = start_health(rt, checks, health_port, health_host)
        wsgi = SlackWsgi(
            app,
            database_ok=lambda: database_answers(ctx.engine),
            consumer_ok=lambda: consumer is None or consumer_running(consumer),
            signing_secret=signing.reveal() if signing else "",
            readiness=checks,
            metrics=ctx.metrics,
            only_liveness=health is not None,
        )
        server = HttpServer(wsgi, host, port, threads=threads)
        _say_http_start(server.url, host, health_port=health is not None)
        # The loop runs in its own thread so that, on SIGTERM, it keeps
        # writing the answers of requests already taken while no new
        # connection is accepted; only then does the process go on to exit
        # (exiting under a running request would break it half-way).
        server.start()
        try:
            server.wait()
        except KeyboardInterrupt:
            pass
        finally:
            if not server.drain(timeout=DRAIN_SECONDS):
                click.echo(
                    f"checkpoint-bot: requests still running after {DRAIN_SECONDS:.0f} s; "
                    "stopping anyway",
                    err=True,
                )
            server.stop()
    else:
        # slack_sdk's websocket-client based client, made to reconnect and
        # stop without waiting (bot/slack_socket.py); the built-in client
        # acked the first envelope after a refresh ~3 s late.
        from bot.slack_socket import SocketModeHandler

        assert app_token is not None
        handler = SocketModeHandler(app, app_token=app_token.reveal())
        health = start_health(
            rt,
            readiness(ctx, consumer, slack_connected=handler.client.is_connected),
            health_port,
            health_host,
        )
        click.echo("checkpoint-bot: connecting to Slack over Socket Mode; Ctrl-C stops", err=True)
        try:
            handler.start()
        except KeyboardInterrupt:
            pass
        except (SlackClientError, OSError) as exc:
            # Only the first apps.connections.open raises here (later ones
            # are retried by the client's monitor while /readyz says so): a
            # token Slack refuses is refused again on every try.
            if local is not None:
                local.close()
            if health is not None:
                health.stop()
            raise Unavailable(
                f"Slack refused or did not answer apps.connections.open: {_why(exc)}"
                f"{_app_token_hint(exc)}"
            ) from None
        finally:
            handler.close()  # type: ignore[no-untyped-call]

    def stopping() -> None:
        if local is not None:
            local.close()
        if health is not None:
            health.stop()
        if consumer is not None:
            click.echo("checkpoint-bot: stopping the job consumer", err=True)
        reload.restart_if_requested()

    # Then the context closes, giving the jobs under way 10 s; a second
    # Ctrl-C leaves them to the reconciler.
    rt.shut_down(stopping)
