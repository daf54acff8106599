"""The whole product on one machine (`checkpoint-bot demo`):

    browser ──► playground (UI + Slack Web API, --port) ──signed requests──► bot (HTTP mode)
                     ▲                                                        │
                     └────────────── Web API calls (chat.*, views.*) ─────────┤
                                                                              ▼
                                     emulated Hyper-V hosts (WinRM/PSRP on loopback)

Everything runs in this process on 127.0.0.1: the bot is the real one
(Bolt app, service layer, job consumer, periodic scheduler) on the embedded
defaults (SQLite in the run's directory, the in-process queue), talking real
WinRM (pypsrp, NTLM) to emulated hosts of the demo host model
(deploy/examples/demo-hosts.yaml), with the demo inventory aimed at them.
Each run starts from a clean estate: the playground's workspace lives in
memory, so the bot's state must too.

Two demos never share state: the playground's port is taken before anything
is touched, and each run keeps its state in `<workdir>/port-<port>/`, so a
second demo on a busy port fails with one line and leaves the running one
alone.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from bot.clock import ScaledClock
from bot.config import ConfigError, HyperVConfig, JobsConfig, Settings, SlackConfig, demo_settings
from bot.context import AppContext, build_context
from bot.devtools.emulator import EmulatedFleet, EmulatorLog
from bot.devtools.emulator.pointing import EMULATOR_PASSWORD_ENV, emulated_inventory
from bot.devtools.hostmodel import InMemoryHostStateStore, demo_hosts_path, load_host_model
from bot.devtools.playground.console import HyperVConsole
from bot.devtools.playground.server import PlaygroundApp
from bot.devtools.playground.signing import AppLink
from bot.devtools.playground.ui import PlaygroundUi
from bot.devtools.playground.webapi import WebApi
from bot.devtools.playground.workspace import DEMO_CHANNELS, TEAM_ID, Workspace
from bot.inventory import demo_inventory_path, load_inventory
from bot.slack_http import EVENTS_PATH, HttpServer, SlackWsgi, consumer_running, database_answers

log = logging.getLogger(__name__)

EMULATOR_USER = "hvadmin"
# Threads and notices go to #ops, whichever channel a command came from.
DEMO_CHANNEL = DEMO_CHANNELS[0].id
# What a run leaves in its directory, removed when the next one on that port
# starts (var/queue.db: where runs kept the queue before 2026-12-05).
_RUN_FILES = ("checkpoint-bot.db", "inventory.yaml", "queue.db", "var/queue.db")


def demo_policy_path() -> Path:
    """The playground's policy, merged over the shipped default."""
    return demo_inventory_path().with_name("demo-policy.yaml")


@dataclass(frozen=True)
class DemoOptions:
    workdir: Path
    port: int = 3000
    host: str = "127.0.0.1"
    # How many times faster than real time the bot's clock runs.
    speed: float = 1.0


def run_dir(workdir: Path, port: int) -> Path:
    """Where the demo serving `port` keeps its state."""
    return workdir / f"port-{port}"


def _settings(options: DemoOptions, rundir: Path, inventory: Path) -> Settings:
    # `--speed` is for TTLs and change windows; the deadlines that guard host
    # work keep their real length. (The context already keeps the ledger's
    # stale-lock window in real seconds under a scaled clock.)
    s = options.speed
    jobs = JobsConfig()
    jobs = JobsConfig(
        workers=2,
        create_deadline=jobs.create_deadline * s,
        restore_deadline=jobs.restore_deadline * s,
        merge_deadline=jobs.merge_deadline * s,
    )
    # The embedded defaults, with what the demo needs instead; `replace`
    # keeps every other setting (and any added later) at its default.
    return replace(
        demo_settings({}, rundir),
        inventory_path=inventory,
        policy_files=(demo_policy_path(),),
        database_url=f"sqlite:///{rundir / 'checkpoint-bot.db'}",
        hyperv=HyperVConfig(backend="winrm", call_timeout=timedelta(seconds=60)),
        jobs=jobs,
        # The playground's workspace is the one the bot serves (as a
        # deployment's slack.team_ids says), so its requests are accepted.
        slack=SlackConfig(changes_channel=DEMO_CHANNEL, team_ids=(TEAM_ID,)),
    )


def _listen(wsgi: Any, host: str, port: int, what: str) -> HttpServer:
    try:
        # Each open browser tab holds a thread in its long poll.
        return HttpServer(wsgi, host, port, threads=32)
    except OSError as exc:
        hint = ": pass --port N (0 picks a free one)" if port else ""
        raise ConfigError(
            f"cannot serve the {what} on {host}:{port}: {exc.strerror or exc}{hint}"
        ) from None


@dataclass
class Demo:
    """A running demo; `stop()` ends every part, newest first."""

    url: str
    workspace: Workspace
    # This run's state: the bot's database, the pointed inventory, the queue.
    rundir: Path
    ctx: AppContext | None = None
    fleet: EmulatedFleet | None = None
    bot_url: str = ""
    _stops: list[Any] = field(default_factory=list, repr=False)

    def stop(self) -> None:
        while self._stops:
            stop = self._stops.pop()
            try:
                stop()
            except Exception:
                log.warning("demo: stopping %r failed", stop, exc_info=True)


def _stop_playground(workspace: Workspace, server: HttpServer) -> None:
    """Answer the browsers' long polls, let those answers go out, then stop:
    an open poll would hold its thread until it timed out, and the server
    would wait for it and warn "thread(s) still running" (Ctrl-C took 5 s)."""
    workspace.close()
    server.drain(timeout=1.0)
    server.stop(timeout=1.0)


def _clear(rundir: Path) -> None:
    rundir.mkdir(parents=True, exist_ok=True)
    for name in _RUN_FILES:
        for path in rundir.glob(name + "*"):
            path.unlink()


def start_demo(options: DemoOptions) -> Demo:
    """Start every part; the playground answers at `Demo.url` on return."""
    # Per-run secrets, held only in this process: never printed or logged.
    bot_token = "xoxb-demo-" + secrets.token_hex(12)
    signing_secret = secrets.token_hex(16)
    emulator_password = secrets.token_urlsafe(18)

    workspace = Workspace()
    ui = PlaygroundUi(workspace, response_base="")
    clock = ScaledClock(options.speed)
    # The port first: a busy one (another demo) fails here, before any state
    # is touched.
    playground = _listen(
        PlaygroundApp(
            workspace, WebApi(workspace, bot_token), ui, clock=clock, speed=options.speed
        ),
        options.host,
        options.port,
        "playground",
    )
    rundir = run_dir(options.workdir, playground.port)
    demo = Demo(url=playground.url + "/", workspace=workspace, rundir=rundir)
    demo._stops.append(lambda: _stop_playground(workspace, playground))
    ui.response_base = f"{playground.url}/response_url"
    try:
        _clear(rundir)
        # The playground's Web API must answer before Bolt's auth.test.
        playground.start()

        inventory = load_inventory(demo_inventory_path())
        # The hosts' listeners as Windows ships them: Negotiate, and no
        # unencrypted traffic over HTTP (docs/emulator.md), so the demo's
        # bot seals every message as it must on a real estate.
        fleet = EmulatedFleet.start(
            InMemoryHostStateStore(),
            model=load_host_model(demo_hosts_path()),
            users={EMULATOR_USER: emulator_password},
            auth=("ntlm",),
            log=EmulatorLog(),
            clock=clock,
            allow_unencrypted=False,
        )
        demo.fleet = fleet
        demo._stops.append(fleet.stop)
        # `/hyperv migrate WEB02 HV01`: live-migrate behind the bot's back.
        ui.console = HyperVConsole(lambda: [fleet.host(n) for n in fleet.servers])
        pointed = rundir / "inventory.yaml"
        ports = {name: server.port for name, server in fleet.servers.items()}
        pointed.write_text(
            emulated_inventory(inventory, ports, EMULATOR_USER, EMULATOR_PASSWORD_ENV),
            encoding="utf-8",
        )

        env = {
            "SLACK_BOT_TOKEN": bot_token,
            "SLACK_API_URL": f"{playground.url}/api/",
            EMULATOR_PASSWORD_ENV: emulator_password,
        }
        ctx = build_context(_settings(options, rundir, pointed), env=env, clock=clock)
        demo.ctx = ctx
        demo._stops.append(ctx.close)
        consumer = ctx.start_workers()

        # Imported here so the rest of the CLI never loads Bolt.
        from handlers.app import build_bolt_app
        from templates import Renderer
        from templates.blocks import SlackRenderer

        app = build_bolt_app(
            ctx,
            bot_token=bot_token,
            signing_secret=signing_secret,
            api_url=f"{playground.url}/api/",
            renderer=SlackRenderer(Renderer()),
        )
        wsgi = SlackWsgi(
            app,
            database_ok=lambda: database_answers(ctx.engine),
            consumer_ok=lambda: consumer_running(consumer),
            signing_secret=signing_secret,
        )
        bot = _listen(wsgi, "127.0.0.1", 0, "bot").start()
        demo._stops.append(bot.stop)
        demo.bot_url = bot.url
        ui.app = AppLink(bot.url + EVENTS_PATH, signing_secret)
    except BaseException:
        demo.stop()
        raise
    return demo
