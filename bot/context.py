"""The application context: every long-lived dependency, built once at the
entry point from `Settings` and passed down explicitly."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.clock import Clock, real_seconds, speed_of, system_clock
from bot.config import ConfigError, Settings
from bot.hyperv import HyperVHost
from bot.hyperv.hosts import Hosts, HostWrapper
from bot.inventory import Inventory, InventoryError, load_inventory
from bot.jobs import (
    InProcessConsumer,
    JobKind,
    JobLedger,
    JobQueue,
    JobRunner,
    check_queue,
    make_huey,
)
from bot.jobs.delivery import JobDelivery
from bot.jobs.periodic import PeriodicScheduler, PeriodicTask
from bot.jobs.runner import default_worker_id
from bot.jobs.ticks import TickClaims
from bot.notify.base import ChangeNotifier, NullNotifier
from bot.notify.channel import ChannelNotices, NullChannelNotices
from bot.observe import Metrics
from bot.secrets import secret_from
from bot.service.deciding import Decider
from bot.service.directory import Directory, NoDirectory, PolicyGroups
from bot.service.errors import Unavailable
from bot.service.execution import HostJobs
from bot.service.locate import Locator
from bot.store import migrate
from bot.store.db import make_engine, session_scope
from bot.store.models import Change
from policies import Policy, PolicyError, load_policy


class SchemaOutOfDate(ConfigError):
    pass


@dataclass
class AppContext:
    settings: Settings
    engine: Engine
    inventory: Inventory
    host_for: Hosts
    policy: Policy
    decider: Decider
    ledger: JobLedger
    runner: JobRunner
    # The queue is made when first used: a command that queues nothing (a
    # listing, `change show`) never loads Huey (bench/cli_start.py).
    make_queue: Callable[[], JobQueue]
    clock: Clock
    worker_id: str
    ticks: TickClaims
    notifier: ChangeNotifier = field(default_factory=NullNotifier)
    channels: ChannelNotices = field(default_factory=NullChannelNotices)
    # This context's own registry (docs/operations.md), never a global one.
    metrics: Metrics = field(default_factory=Metrics)
    # Called with each job the service delivered, in the caller's thread,
    # after the commit that recorded it (build_context's `after_delivery`).
    after_delivery: Callable[[JobRunner, int], None] | None = field(default=None, repr=False)
    _consumer: InProcessConsumer | None = field(default=None, repr=False)
    _scheduler: PeriodicScheduler | None = field(default=None, repr=False)
    _closers: list[Callable[[], None]] = field(default_factory=list, repr=False)
    _queue: JobQueue | None = field(default=None, repr=False)
    _queue_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def queue(self) -> JobQueue:
        with self._queue_lock:
            if self._queue is None:
                self._queue = self.make_queue()
            return self._queue

    def submit(
        self,
        kind: JobKind,
        change_id: int,
        *,
        key: str,
        not_before: datetime | None = None,
        payload: dict[str, Any] | None = None,
    ) -> int:
        """Record host work for a change on the ledger (a transaction of its
        own) and hand it to the queue; see `record_job` to record it with
        the state change that implies it."""
        with session_scope(self.engine) as s:
            change = s.get(Change, change_id)
            assert change is not None
            job_id = self.record_job(
                s, kind, change, key=key, not_before=not_before, payload=payload
            )
        self.deliver(job_id)
        return job_id

    def record_job(
        self,
        s: Session,
        kind: JobKind,
        change: Change,
        *,
        key: str,
        not_before: datetime | None = None,
        payload: dict[str, Any] | None = None,
    ) -> int:
        """Write the job row in the caller's transaction; after it commits,
        `deliver` hands it to the queue (the job outbox, bot.jobs.delivery)."""
        rule = kind.rule
        deadline: timedelta = getattr(self.settings.jobs, rule.deadline_setting)
        assert change.id is not None
        job, _created = self.ledger.submit(
            kind,
            vm_id=change.vm_id,
            host=change.host,
            change_id=change.id,
            payload=payload or {},
            idempotency_key=key,
            destructive=rule.destructive,
            deadline=deadline + (not_before - self.clock() if not_before else timedelta(0)),
            not_before=not_before,
            session=s,
        )
        assert job.id is not None
        return job.id

    def deliver(self, job_id: int) -> bool:
        """Hand a committed job to the queue; False if the queue did not
        answer (the job waits in the outbox, and its thread says so)."""
        from bot.service.dispatch import deliver

        delivered = deliver(self, job_id)
        if delivered and self.after_delivery is not None:
            # After the delivering transaction too: the runner's claim is
            # an UPDATE of the row that transaction held.
            self.after_delivery(self.runner, job_id)
        return delivered

    def job_delivery(self) -> JobDelivery:
        return JobDelivery(self.engine, self.queue, self.clock, self._delay_of)

    def _delay_of(self, not_before: datetime | None) -> float:
        if not_before is None:
            return 0.0
        return max(0.0, real_seconds(self.clock, not_before - self.clock()))

    def start_workers(self, *, periodic: bool = True) -> InProcessConsumer:
        """Run the queue's consumer in threads of this process, and (unless
        told not to) the periodic work: reconciliation, window notices, TTL
        chasing and sweeps. Every process may tick; slots are claimed once."""
        if self._consumer is None:
            self._consumer = InProcessConsumer(self.queue.huey, workers=self.settings.jobs.workers)
            self._consumer.start()
            # A job this process enqueues starts now, not on the next poll.
            self.queue.wake_with(self._consumer.wake)
        if periodic:
            self.start_periodic()
        return self._consumer

    def periodic_tasks(self) -> list[PeriodicTask]:
        # Imported here: the tasks are use cases built on this context.
        from bot.service.periodic_tasks import periodic_tasks

        return periodic_tasks(self)

    def start_slack_outbox(self) -> None:
        """Post what the Slack outbox holds, now and on every tick: every
        process that talks to Slack drains it (bot.notify.outbox)."""
        self.notifier.start_draining(self.settings.jobs.tick_seconds)

    def tick_here(self, task: PeriodicTask) -> None:
        """Tick `task` in this process on every tick until `close()`, beside
        (not among) the periodic tasks: those claim each slot once across
        processes, while this is work only this process can do (publishing
        the App Homes its own Slack app renders, handlers/home_refresh.py)."""
        scheduler = PeriodicScheduler([task], self.clock, interval=self.settings.jobs.tick_seconds)
        scheduler.start()
        self._closers.append(scheduler.stop)

    def at_close(self, close: Callable[[], None]) -> None:
        """Run `close` when the context closes, after the consumer and the
        periodic ticks stop and before the notifier and the database close
        (a Slack app's work pool: bot handlers/app.py)."""
        self._closers.append(close)

    def start_periodic(self) -> PeriodicScheduler:
        self.start_slack_outbox()
        if self._scheduler is None:
            self._scheduler = PeriodicScheduler(
                self.periodic_tasks(),
                self.clock,
                interval=self.settings.jobs.tick_seconds,
            )
            self._scheduler.start()
        return self._scheduler

    def close(self) -> None:
        if self._scheduler is not None:
            self._scheduler.stop()
            self._scheduler = None
        if self._consumer is not None:
            self._consumer.stop()
            self._consumer = None
        for close in self._closers:
            close()
        self.notifier.close()
        self.engine.dispose()


def prepare_database(settings: Settings, engine: Engine) -> None:
    """Demo mode migrates on its own; a real deployment is told to."""
    if settings.demo:
        migrate.upgrade(engine)
        return
    if migrate.schema_is_current(engine):
        return
    current, head = migrate.current_revision(engine), migrate.head_revision()
    if current != head:
        raise SchemaOutOfDate(
            f"the database ({settings.database_label}) is at schema {current or 'none'}, "
            f"expected {head}: run 'checkpoint-bot db upgrade'"
        )


class _Fleet(Protocol):
    def host(self, name: str) -> HyperVHost: ...
    def close(self) -> None: ...


class _FirstUse:
    """A fleet made when a host is first asked for (a command that asks no
    host never imports the WinRM client), owned and closed by the context."""

    def __init__(self, make: Callable[[], _Fleet]) -> None:
        self._make = make
        self._fleet: _Fleet | None = None
        self._lock = threading.Lock()

    def host(self, name: str) -> HyperVHost:
        with self._lock:
            if self._fleet is None:
                self._fleet = self._make()
            fleet = self._fleet
        return fleet.host(name)

    def close(self) -> None:
        with self._lock:
            fleet, self._fleet = self._fleet, None
        if fleet is not None:
            fleet.close()


def _hosts(
    settings: Settings,
    inventory: Inventory,
    engine: Engine,
    clock: Clock,
    env: Mapping[str, str],
) -> tuple[Callable[[str], HyperVHost], list[Callable[[], None]]]:
    """The Hyper-V backend the settings name, and how to close it."""
    if settings.hyperv.backend == "winrm":
        hyperv = settings.hyperv

        def make_fleet() -> _Fleet:
            # Imported here so a process that never reaches a host never loads pypsrp.
            from bot.hyperv.winrm.host import WinRMFleet

            return WinRMFleet(
                inventory,
                env,
                fanout=hyperv.fanout,
                call_timeout=hyperv.call_timeout.total_seconds(),
                idle_timeout=hyperv.idle_timeout.total_seconds(),
            )

        winrm = _FirstUse(make_fleet)
        return winrm.host, [winrm.close]
    # The modelled hosts come from their own file, never from the inventory:
    # what the bot believes and what the hosts hold may disagree. They are dev
    # tools: a production install has them only with the demo extra.
    from bot.devtools import DevtoolsMissing, require

    try:
        require("hyperv.backend: simulator")
    except DevtoolsMissing as exc:
        raise ConfigError(f"{exc} (or set hyperv.backend: winrm)") from None
    from bot.devtools.hostmodel import (
        HostModelError,
        SqlHostStateStore,
        demo_hosts_path,
        load_host_model,
        seed_missing,
    )
    from bot.devtools.simulator.fleet import SimulatedFleet

    try:
        model = load_host_model(settings.hyperv.simulator_hosts or demo_hosts_path())
    except HostModelError as exc:
        raise ConfigError(str(exc)) from None
    store = SqlHostStateStore(engine)
    seed_missing(store, model)
    fleet = SimulatedFleet(store, clock)
    return fleet.host, [fleet.close]


def _notifier(
    settings: Settings, engine: Engine, env: Mapping[str, str], metrics: Metrics | None = None
) -> tuple[ChangeNotifier, ChannelNotices, Directory]:
    """Slack threads, channel notices and user groups when a bot token is
    configured, else nothing to tell and no groups to know."""
    slack = settings.slack
    token = secret_from(
        env_name=slack.bot_token.env, file=slack.bot_token.file, env=env, what="slack.bot_token"
    )
    if token is None:
        return NullNotifier(), NullChannelNotices(), NoDirectory()
    # Imported here so a CLI without Slack never loads the Slack SDK.
    from bot.notify.channel import SlackChannelNotices
    from bot.notify.groups import SlackDirectory
    from bot.notify.pacing import ChannelPacer
    from bot.notify.thread import ThreadNotifier
    from bot.observe.slack_api import make_web_client
    from templates import Renderer
    from templates.blocks import SlackRenderer

    api_url = env.get("SLACK_API_URL") or slack.api_url
    client = make_web_client(token.reveal(), api_url, metrics)
    renderer = SlackRenderer(Renderer())
    # One pacer: Slack's limit is per channel, whoever posts.
    pacer = ChannelPacer()
    threads = ThreadNotifier(
        engine,
        client,
        renderer,
        default_channel=slack.changes_channel,
        demo=settings.demo,
        start_after_restore=settings.defaults.start_after_restore,
        pacer=pacer,
    )
    notices = SlackChannelNotices(client, renderer, demo=settings.demo, pacer=pacer)
    return threads, notices, SlackDirectory(client)


def build_context(
    settings: Settings,
    *,
    env: Mapping[str, str] | None = None,
    clock: Clock = system_clock,
    huey_kind: Literal["sqlite", "memory", "redis"] | None = None,
    host_wrapper: HostWrapper | None = None,
    metrics: Metrics | None = None,
    after_delivery: Callable[[JobRunner, int], None] | None = None,
) -> AppContext:
    """The context `settings` describe. `after_delivery`, when given, is
    called with the runner and each job id the service hands to the queue,
    in the caller's thread once the job is committed and delivered: the
    tests' inline jobs (tests/helpers.py `run_inline`, docs/architecture.md)
    run it there instead of leaving it to a consumer. Production passes
    nothing: its jobs run only in the queue's consumers."""
    # Imported here: the measured wrappers build on the service layer.
    from bot.observe.gauges import DatabaseGauges
    from bot.observe.hosts import metered
    from bot.observe.work import MeteredDecider, MeteredRunner

    metrics = metrics or Metrics(multiprocess_dir=(env or {}).get("PROMETHEUS_MULTIPROC_DIR"))
    try:
        inventory = load_inventory(settings.inventory_path)
        policy = load_policy(*settings.policy_files)
    except (InventoryError, PolicyError) as exc:
        raise ConfigError(str(exc)) from None
    engine = make_engine(settings.database_url)
    try:
        prepare_database(settings, engine)
    except ConfigError:
        engine.dispose()
        raise
    except Exception as exc:
        engine.dispose()
        raise Unavailable(
            f"cannot open the database {settings.database_label}: {type(exc).__name__}"
        ) from None
    try:
        factory, closers = _hosts(settings, inventory, engine, clock, env or {})
    except ConfigError:
        engine.dispose()
        raise
    notifier, channels, directory = _notifier(settings, engine, env or {}, metrics)
    # Measured beneath any wrapper a test or bench adds.
    host_for = Hosts(metered(factory, metrics))
    host_for.wrap(host_wrapper)
    metrics.add_collector(DatabaseGauges(engine, inventory, clock))
    decider = MeteredDecider(
        inventory=inventory,
        host_for=host_for,
        policy=policy,
        clock=clock,
        locator=Locator(inventory, host_for, engine, clock, fanout=settings.hyperv.fanout),
        inventory_label=f"inventory {settings.inventory_path.name}",
        metrics=metrics,
        directory=PolicyGroups(directory, policy),
    )
    # Heartbeats beat in real seconds; a faster clock (the demo's --speed)
    # must not make a live worker's lock look stale.
    ledger = JobLedger(
        engine, clock, lock_stale_after=settings.jobs.lock_stale_after * speed_of(clock)
    )
    host_jobs = HostJobs(
        engine=engine,
        inventory=inventory,
        host_for=host_for,
        decider=decider,
        defaults=settings.defaults,
        clock=clock,
        on_change=notifier.changed,
    )
    worker_id = default_worker_id()
    runner = MeteredRunner(
        ledger,
        host_jobs.handlers(),
        worker_id,
        clock=clock,
        heartbeat_interval=settings.jobs.heartbeat_seconds,
        on_progress=notifier.progress,
        metrics=metrics,
    )
    kind = huey_kind or settings.jobs.queue
    redis_url = (env or {}).get("REDIS_URL") or settings.jobs.redis_url
    try:
        check_queue(kind, redis_url)  # said now, though the queue is made on first use
    except ValueError as exc:
        raise ConfigError(f"jobs.queue: {exc}") from None

    def make_queue() -> JobQueue:
        huey = make_huey(
            kind,
            path=settings.workdir / "var" / "queue.db",
            name=settings.jobs.queue_name,
            redis_url=redis_url,
        )
        return JobQueue(huey, runner)

    return AppContext(
        settings=settings,
        engine=engine,
        inventory=inventory,
        host_for=host_for,
        policy=policy,
        decider=decider,
        ledger=ledger,
        runner=runner,
        make_queue=make_queue,
        clock=clock,
        worker_id=worker_id,
        ticks=TickClaims(engine, clock, worker_id),
        notifier=notifier,
        channels=channels,
        metrics=metrics,
        after_delivery=after_delivery,
        _closers=closers,
    )
