"""`checkpoint-bot demo`: the local Slack playground and the whole product
behind it, on this machine (see bot/devtools/playground/demo.py). Prints the URL;
Ctrl-C or SIGTERM stops everything."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import click

from bot.cli.runtime import Runtime, pass_runtime
from bot.interrupts import StopRequest


@click.command("demo")
@click.option(
    "--port",
    default=3000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="The playground's port (0: any free one).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="The playground's address (whoever reaches it acts as any demo user).",
)
@click.option(
    "--speed",
    default=1.0,
    show_default=True,
    type=click.FloatRange(1, 10_000),
    help="Run the bot's clock N times faster (TTLs, change windows).",
)
@click.option(
    "--workdir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where runs keep their state, one directory per port (default: var/demo; "
    "var/demo/port-3000 is cleared when a demo starts on port 3000).",
)
@pass_runtime
def demo(rt: Runtime, port: int, host: str, speed: float, workdir: Path | None) -> None:
    """Run the playground: a local Slack, the bot, emulated Hyper-V hosts."""
    # Imported here so other commands never load the playground (or Bolt).
    from bot.devtools.playground import DemoOptions, start_demo

    started = time.monotonic()
    click.echo(
        "checkpoint-bot: starting the playground (DEMO MODE, nothing real is touched)…", err=True
    )
    running = start_demo(
        DemoOptions(workdir=(workdir or rt.cwd / "var" / "demo"), port=port, host=host, speed=speed)
    )
    done = StopRequest()
    previous = signal.signal(signal.SIGTERM, done.on_signal)
    try:
        hosts = ", ".join(running.fleet.servers) if running.fleet else "-"
        click.echo(
            f"checkpoint-bot: emulated Hyper-V hosts {hosts} over WinRM; bot on "
            f"{running.bot_url}; clock x{speed:g}",
            err=True,
        )
        click.echo(f"checkpoint-bot: playground ready in {time.monotonic() - started:.1f}s")
        click.echo(f"  open {running.url}   (Ctrl-C stops)", nl=True)
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        click.echo("checkpoint-bot: stopping the playground", err=True)
        running.stop()
