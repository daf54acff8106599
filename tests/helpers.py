"""Builders shared by the service and CLI tests."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from bot.clock import Clock, ScaledClock
from bot.config import Settings, demo_settings
from bot.context import AppContext, build_context
from bot.devtools.emulator import EmulatedFleet
from bot.devtools.emulator.pointing import EMULATOR_PASSWORD_ENV, emulated_inventory
from bot.inventory import demo_inventory_path, load_inventory
from bot.jobs import JobRunner, RunStatus

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def settings_for(workdir: Path, database_url: str | None = None) -> Settings:
    env = {"DATABASE_URL": database_url} if database_url else {}
    return demo_settings(env, workdir)


def broken_policy(workdir: Path) -> Path:
    """A policy file naming a rule there is none of: what `load_policy` refuses."""
    policy = workdir / "policy.yaml"
    policy.write_text("rules:\n  no_such_rule: {}\n", encoding="utf-8")
    return policy


def run_inline(runner: JobRunner, job_id: int) -> None:
    """Run a delivered job to its end in this thread, as a consumer would:
    the same runner, so the same claim, VM lock and idempotency. A job not
    due yet (a window, `--at`, a retry's backoff on a manual clock) is left
    queued for its time, as the queue's delay would leave it; a VM or host
    that is busy, or a retry that is due, is tried again after the delay
    the runner asks of the queue."""
    while True:
        outcome = runner.run(job_id)
        if outcome.retry_after is None or outcome.status is RunStatus.NOT_DUE:
            return
        time.sleep(outcome.retry_after)


def inline_context(
    settings: Settings, clock: Clock | None = None, env: dict[str, str] | None = None
) -> AppContext:
    """A demo-mode context whose jobs run inline (`run_inline`): when the
    service call that recorded a job returns, the job has finished. No
    consumer and no periodic work run; a test that needs a tick runs it."""
    return build_context(
        settings,
        env=env,
        clock=clock or ScaledClock(600, start=T0),
        huey_kind="memory",
        after_delivery=run_inline,
    )


@contextmanager
def running_context(
    workdir: Path,
    database_url: str | None = None,
    clock: Clock | None = None,
    *,
    inline: bool = False,
) -> Iterator[AppContext]:
    """A demo-mode context with its job consumer running in threads; the
    clock runs 600x so simulated merges finish within a second. `inline`:
    no consumer, jobs run in the caller's thread (`inline_context`)."""
    settings = settings_for(workdir, database_url)
    if inline:
        ctx = inline_context(settings, clock)
    else:
        ctx = build_context(settings, clock=clock or ScaledClock(600, start=T0), huey_kind="memory")
        ctx.start_workers()
    try:
        yield ctx
    finally:
        ctx.close()


def refused_port() -> int:
    """A loopback port nothing listens on: bound for a moment, never
    listening, then closed, so a connection to it is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def emulated_deployment(workdir: Path, fleet: EmulatedFleet, hyperv: str, extra: str = "") -> Path:
    """`workdir/bot.yaml`: the demo inventory aimed at `fleet` (each host's
    emulated port, the emulator's user and password variable), `hyperv:` as
    given (a YAML flow mapping: `{backend: winrm, call_timeout: 60s}`), and
    `extra` lines after it. Its path."""
    inventory = load_inventory(demo_inventory_path())
    ports = {name: server.port for name, server in fleet.servers.items()}
    (workdir / "inventory.yaml").write_text(
        emulated_inventory(inventory, ports, "hvadmin", EMULATOR_PASSWORD_ENV), encoding="utf-8"
    )
    config = workdir / "bot.yaml"
    config.write_text(f"inventory: inventory.yaml\nhyperv: {hyperv}\n{extra}", encoding="utf-8")
    return config


def documented_yaml(page: str, section: str) -> str:
    """The first YAML block of `section` (a `## ` heading) in docs/`page`:
    an example the docs show, for a test to load as the product would."""
    text = (Path(__file__).resolve().parents[1] / "docs" / page).read_text(encoding="utf-8")
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return body.split("\n```yaml\n", 1)[1].split("\n```", 1)[0] + "\n"
