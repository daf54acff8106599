"""The application context: every long-lived dependency, built once at the
entry point from `Settings` and passed down explicitly."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Engine, ExceptionContext
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlmodel import Session

from bot.clock import Clock, real_seconds, speed_of, system_clock
from bot.config import ConfigError, Settings
from bot.jobs.ledger import JobLedger
from bot.jobs.runner import default_worker_id
from bot.jobs.ticks import TickClaims
from bot.notify.base import ChangeNotifier, NullNotifier
from bot.notify.channel import ChannelNotices, NullChannelNotices
from bot.secrets import secret_from
from bot.service.directory import Directory, NoDirectory
from bot.service.errors import Unavailable
from bot.service.outage import misconfigured_database, schema_mismatch_message
from bot.store import migrate
from bot.store.db import driver_reason, make_engine, session_scope

if TYPE_CHECKING:
    from bot.hyperv import HyperVHost
    from bot.hyperv.hosts import Hosts, HostWrapper
    from bot.inventory import Inventory

    # Built when first used (`_Parts`), so imported there: a command that
    # lists the outbox or shows a change never loads the policy, the
    # decider, the job runner or Prometheus' client (bench/cli_start.py).
    from bot.jobs import InProcessConsumer, JobKind, JobQueue, JobRunner
    from bot.jobs.delivery import JobDelivery
    from bot.jobs.periodic import PeriodicScheduler, PeriodicTask
    from bot.observe import Metrics
    from bot.observe.stale_files import FileWatch
    from bot.service.deciding import Decider
    from bot.store.tables.changes import Change
    from policies import Policy

T = TypeVar("T")


class SchemaOutOfDate(ConfigError):
    pass


log = logging.getLogger(__name__)

# How long a closing process waits for the jobs it runs to end.
STOP_GRACE_S = 10.0


@dataclass(frozen=True)
class RunningHere:
    """A job this process runs: its id, its change's ref (None for a job of
    no change), its kind and its host."""

    job_id: int
    change: str | None
    kind: str
    host: str


@dataclass
class AppContext:
    settings: Settings
    engine: Engine
    ledger: JobLedger
    # The queue is made when first used: a command that queues nothing (a
    # listing, `change show`) never loads Huey (bench/cli_start.py).
    make_queue: Callable[[], JobQueue]
    clock: Clock
    worker_id: str
    ticks: TickClaims
    # The host connections, the policy, the decider, the job runner and the
    # metrics, each built when first used (`build_all` builds them now).
    parts: _Parts = field(repr=False)
    notifier: ChangeNotifier = field(default_factory=NullNotifier)
    channels: ChannelNotices = field(default_factory=NullChannelNotices)
    # Called with each job the service delivered, in the caller's thread,
    # after the commit that recorded it (build_context's `after_delivery`).
    after_delivery: Callable[[JobRunner, int], None] | None = field(default=None, repr=False)
    _consumer: InProcessConsumer | None = field(default=None, repr=False)
    _scheduler: PeriodicScheduler | None = field(default=None, repr=False)
    _closers: list[Callable[[], None]] = field(default_factory=list, repr=False)
    _close_hosts: CloseHosts = field(default=lambda wait: None, repr=False)
    _queue: JobQueue | None = field(default=None, repr=False)
    _queue_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _file_watch: FileWatch | None = field(default=None, repr=False)

    @property
    def inventory(self) -> Inventory:
        return self.parts.inventory

    @property
    def host_for(self) -> Hosts:
        return self.parts.host_for

    @property
    def policy(self) -> Policy:
        return self.parts.policy

    @property
    def decider(self) -> Decider:
        return self.parts.decider

    @property
    def runner(self) -> JobRunner:
        return self.parts.runner

    @property
    def metrics(self) -> Metrics:
        """This context's own registry (docs/operations.md), never a global one."""
        return self.parts.metrics

    def build_all(self, *, warn: bool = True) -> None:
        """Build every part now: a process that serves or runs jobs fails at
        its start on a broken policy, not at its first request. A host
        credential it cannot read is logged (`warn`), one line each: that
        host's calls will fail, the others' need not. A reload refuses an
        edit that breaks one (bot/cli/reload.py)."""
        self.parts.build_all()
        if warn:
            for problem in self.credential_problems():
                log.warning("a host's credential cannot be read: %s", problem)

    def credential_problems(self) -> list[str]:
        """Why each host's credential the inventory names cannot be read now
        (none when all can, or the backend reads none); no host is asked."""
        return self.parts.credential_problems()

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
        from bot.store.tables.changes import Change

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
        from bot.jobs.delivery import JobDelivery

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
            from bot.jobs import InProcessConsumer

            # A process that runs jobs needs every part; a broken one fails now.
            self.build_all()
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
        from bot.jobs.periodic import PeriodicScheduler

        scheduler = PeriodicScheduler([task], self.clock, interval=self.settings.jobs.tick_seconds)
        scheduler.start()

        def stop() -> None:
            scheduler.stop()

        self._closers.append(stop)

    def watch_files(self) -> FileWatch:
        """The config, inventory and policy files as this process read them,
        watched from now on: a change is logged on the next tick and shown
        by `checkpoint_bot_files_changed` (bot/observe/stale_files.py).
        `serve` and `worker` call it once every part is built."""
        if self._file_watch is None:
            from bot.observe.stale_files import FileWatch, files_read

            watch = FileWatch(files_read(self.settings))
            self.metrics.add_collector(watch)
            self.tick_here(watch)
            self._file_watch = watch
        return self._file_watch

    def at_close(self, close: Callable[[], None]) -> None:
        """Run `close` when the context closes, after the consumer and the
        periodic ticks stop and before the notifier and the database close
        (a Slack app's work pool: bot handlers/app.py)."""
        self._closers.append(close)

    def start_periodic(self) -> PeriodicScheduler:
        self.start_slack_outbox()
        if self._scheduler is None:
            from bot.jobs.periodic import PeriodicScheduler

            self._scheduler = PeriodicScheduler(
                self.periodic_tasks(),
                self.clock,
                interval=self.settings.jobs.tick_seconds,
            )
            self._scheduler.start()
        return self._scheduler

    def close(self, *, leave_running: bool = False, why: str = "was stopped") -> bool:
        """Stop what runs here and close what is open. With `leave_running`
        (a command interrupted while its job runs in this process) nothing
        waits for a job or a host call under way: the host goes on with it,
        its claim lapses (`jobs.lock_stale_after`), and the next reconciler
        (any bot, worker or `checkpoint-bot reconcile`) records how it ended
        (docs/operations-failures.md). `why`: how this process ends ("was
        reloaded (SIGHUP)"), written on each job it leaves so that the
        reconciler records that stop. Whether a job of this process was
        left running (so that `worker` and `serve` can exit saying so)."""
        # The periodic work (reconciling, sweeps, chasing TTLs) and the jobs
        # under way share one grace.
        grace_ends = time.monotonic() + STOP_GRACE_S
        busy = leave_running
        if self._scheduler is not None:
            scheduler, self._scheduler = self._scheduler, None
            if not scheduler.stop(0.0 if leave_running else STOP_GRACE_S):
                # A round still waiting on a host: closing that host's pool
                # would wait for its call, up to `hyperv.call_timeout` (seen:
                # ten minutes after SIGTERM, a second Ctrl-C ignored). It is
                # left; what it did not finish, the next round does.
                busy = True
                if not leave_running:
                    log.warning(
                        "the periodic work (reconciling, sweeps) is still waiting after %.0f s, "
                        "probably on a host that does not answer; it is left, and the next "
                        "process's round does what it did not",
                        STOP_GRACE_S,
                    )
        left_jobs = False
        if leave_running:
            left_jobs = self._leave(why)
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            # It takes no new job. The jobs under way, the consumer's and
            # those a request thread runs at once alike, get STOP_GRACE_S to
            # end (the consumer's threads and the ledger say when); a second
            # Ctrl-C ends the wait.
            consumer.stop(wait=False)
            # A job still running keeps its host call: waiting for that call's
            # connection would wait out the job after all, up to
            # `hyperv.call_timeout`. Its claim lapses and a reconciler
            # settles it.
            if not leave_running and not (
                consumer.join_until(grace_ends) and self._jobs_end_by(grace_ends)
            ):
                busy = True
                try:
                    left = self.running_here()
                except Exception:  # a database that does not answer: say it plainly
                    left = []
                    log.warning(
                        "jobs of this process may still run after %.0f s (the database did "
                        "not say); they are left to a reconciler",
                        STOP_GRACE_S,
                    )
                for job in left:
                    log.warning(
                        "%s: its %s on %s is still running after %.0f s; it is left to the "
                        "host, and a reconciler records how it ended once its claim lapses",
                        job.change or f"job {job.job_id}",
                        job.kind,
                        job.host,
                        STOP_GRACE_S,
                    )
                left_jobs = self._leave(f"{why} after waiting {STOP_GRACE_S:.0f} s for it")
        self._close_hosts(not busy)
        for close in self._closers:
            close()
        self.notifier.close()
        self.engine.dispose()
        return left_jobs

    def _leave(self, why: str) -> bool:
        """Mark the jobs this process still runs as left by its stop
        (`JobLedger.leave`); whether there were any. A database that does
        not answer leaves them unmarked (they then read as a worker that
        stopped heart-beating), never holds up the stop."""
        runner = self.parts.built_runner()
        # Known here first (the runner's own count): a command that runs no
        # job writes nothing (its Ctrl-C says whether it recorded anything:
        # bot.cli.runtime), and a database this release can no longer read
        # (`db downgrade` under a running worker) is not asked.
        if runner is None or not runner.left_behind():
            return False
        try:
            self.ledger.leave(self.worker_id, why)
        except Exception:
            log.debug("could not mark the jobs left by this stop", exc_info=True)
        return True

    def _jobs_end_by(self, deadline: float) -> bool:
        """Whether every job this process runs has ended by `deadline`
        (`time.monotonic()`), as its runner knows them (a Ctrl-C ends the
        wait, as a KeyboardInterrupt for the caller). Seen: asked of the
        database, a worker whose schema had been rolled back (`db
        downgrade`) could not read its own jobs and exited 4, "jobs of this
        process may still run", with none running."""
        runner = self.parts.built_runner()
        if runner is None:
            return True  # no job ever ran here
        while runner.running():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        # One whose outcome could not be written stays running in the ledger.
        return not runner.left_behind()

    def queued_of(self, refs: Iterable[str]) -> list[RunningHere]:
        """The jobs of these changes still waiting in the queue: recorded,
        not started (no process holds them yet; `host` is the one the
        change names)."""
        from bot.domain import ChangeRef
        from bot.jobs.states import JobState

        waiting: list[RunningHere] = []
        for ref in dict.fromkeys(refs):
            parsed = ChangeRef.parse(ref)
            if parsed is None:
                continue
            waiting.extend(
                RunningHere(job.id or 0, ref, job.kind, job.host)
                for job in self.ledger.jobs_of_change(parsed.id)
                if job.state == JobState.QUEUED.value
            )
        return waiting

    def running_here(self) -> list[RunningHere]:
        """The jobs this process holds the claim of now."""
        from bot.domain import ChangeRef

        return [
            RunningHere(
                job.id or 0,
                str(ChangeRef(job.change_id)) if job.change_id is not None else None,
                job.kind,
                job.host,
            )
            for job in self.ledger.running_by(self.worker_id)
        ]


def prepare_database(settings: Settings, engine: Engine) -> None:
    """Demo mode migrates on its own; a real deployment is told to. Once the
    schema is the release's, a statement that names a table or column the
    database lacks (a schema an edited migration chain or a hand left
    incomplete) raises SchemaOutOfDate, one line without the statement,
    instead of the driver's error (which SQLite words as an outage)."""
    if settings.demo:
        migrate.upgrade(engine)
    elif not migrate.schema_is_current(engine):
        _refuse_schema(settings, engine)
    event.listen(engine, "handle_error", _schema_mismatch)


def _refuse_schema(settings: Settings, engine: Engine) -> None:
    """The database is not at `migrate.HEAD`: say what to run."""
    current = migrate.current_revision(engine)
    known = [rev for rev, _ in migrate.revisions()]
    head = known[-1]
    if current == head:
        return
    if current is not None and current not in known:
        from bot.service.schema import written_by_newer

        raise SchemaOutOfDate(written_by_newer(settings.database_label, current, head))
    has = "has no schema yet" if current is None else f"is at schema {current}"
    where = ""
    if current is None and settings.database_from_cwd:
        # Seen: a command run from another directory found an empty
        # record there; upgrading it would split the deployment's record.
        where = (
            f"; or, if this deployment's record is elsewhere, run from its directory or set "
            f"database_url (or workdir) in {settings.config_path}: without them the record "
            "is var/checkpoint-bot.db under the directory the command runs in "
            f"({settings.workdir})"
        )
    raise SchemaOutOfDate(
        f"the database ({settings.database_label}) {has}, this release needs {head}: "
        f"run 'checkpoint-bot db upgrade'{where}"
    )


def _schema_mismatch(context: ExceptionContext) -> None:
    """SQLAlchemy's `handle_error` hook: a statement naming a table or
    column the database lacks raises SchemaOutOfDate (exit 2 on the CLI)."""
    said = schema_mismatch_message(context.sqlalchemy_exception or context.original_exception)
    if said is not None:
        raise SchemaOutOfDate(said)


class _Fleet(Protocol):
    def host(self, name: str) -> HyperVHost: ...
    def close(self, *, wait: bool = True) -> None: ...


# How a context closes its host connections: with `wait`, a call in progress
# ends first (within its deadline); without, it is left to the leaving process.
CloseHosts = Callable[[bool], None]


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

    def close(self, wait: bool = True) -> None:
        with self._lock:
            fleet, self._fleet = self._fleet, None
        if fleet is not None:
            fleet.close(wait=wait)


def _credential_problems(env: Mapping[str, str]) -> Callable[[Inventory], list[str]]:
    """Why each host's credential, as the inventory names it, cannot be read
    now (an unset or empty variable, a file that is not there), without
    asking any host (`AppContext.build_all`, docs/operations.md)."""

    def problems(inventory: Inventory) -> list[str]:
        from bot.hyperv.errors import HyperVError
        from bot.hyperv.winrm.connect import Credentials

        credentials = Credentials(env)
        found = []
        for host in inventory.hosts:
            try:
                credentials.for_host(host)
            except HyperVError as exc:
                found.append(f"{host.name}: {exc.message}")
        return found

    return problems


def _hosts(
    settings: Settings,
    inventory: Callable[[], Inventory],
    engine: Engine,
    clock: Clock,
    env: Mapping[str, str],
) -> tuple[Callable[[str], HyperVHost], CloseHosts]:
    """The Hyper-V backend the settings name, and how to close it."""
    if settings.hyperv.backend == "winrm":
        hyperv = settings.hyperv

        def make_fleet() -> _Fleet:
            # Imported here so a process that never reaches a host never loads pypsrp.
            from bot.hyperv.winrm.host import WinRMFleet

            return WinRMFleet(
                inventory(),
                env,
                fanout=hyperv.fanout,
                call_timeout=hyperv.call_timeout.total_seconds(),
                idle_timeout=hyperv.idle_timeout.total_seconds(),
            )

        winrm = _FirstUse(make_fleet)
        return winrm.host, winrm.close
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
    return fleet.host, lambda wait: fleet.close(wait=wait)


def _notifier(
    settings: Settings,
    engine: Engine,
    env: Mapping[str, str],
    metrics: Callable[[], Metrics],
    clock: Clock,
) -> tuple[ChangeNotifier, ChannelNotices, Directory]:
    """Slack threads, channel notices and user groups when a bot token is
    configured, else nothing to tell and no groups to know (and no metrics
    built for the Slack calls)."""
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
    client = make_web_client(token.reveal(), api_url, metrics())
    renderer = SlackRenderer(Renderer(), simulated=settings.simulated_hosts)
    # One pacer: Slack's limit is per channel, whoever posts.
    pacer = ChannelPacer()
    threads = ThreadNotifier(
        engine,
        client,
        renderer,
        default_channel=slack.changes_channel,
        demo=settings.labelled_simulated,
        start_after_restore=settings.defaults.start_after_restore,
        pacer=pacer,
        clock=clock,
    )
    notices = SlackChannelNotices(client, renderer, demo=settings.labelled_simulated, pacer=pacer)
    return threads, notices, SlackDirectory(client)


class _Lazy(Generic[T]):
    """A value built when first asked for, once."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._value: T | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        with self._lock:
            if self._value is None:
                self._value = self._build()
            return self._value

    @property
    def value(self) -> T | None:
        """The value if it was built, without building it."""
        return self._value


class _Parts:
    """What a context builds when first used, once, under one lock (the
    Slack app's threads and the job consumers share a context). A command
    that lists the outbox or shows a change never loads the inventory, the
    policy, the decider, the job runner or Prometheus' client: 60-160 ms of
    such a command's 0.5-0.9 s (bench/cli_start.py). A part that cannot be
    built raises when first asked for, as it did when the context was built:
    a broken inventory or policy stops every command that reads it, and
    every process that serves or runs jobs at its start
    (`AppContext.build_all`)."""

    def __init__(
        self,
        settings: Settings,
        inventory: _Lazy[Inventory],
        engine: Engine,
        clock: Clock,
        *,
        hosts: Callable[[str], HyperVHost],
        host_wrapper: HostWrapper | None,
        directory: Directory,
        notifier: ChangeNotifier,
        ledger: JobLedger,
        worker_id: str,
        metrics: _Lazy[Metrics],
        credentials: Callable[[Inventory], list[str]] | None = None,
    ) -> None:
        self._settings = settings
        self._inventory = inventory
        # Why each host's credential cannot be read (none when they all
        # can, or the backend reads none): `AppContext.build_all`.
        self._credentials = credentials
        self._engine = engine
        self._clock = clock
        self._hosts = hosts
        self._host_wrapper = host_wrapper
        self._directory = directory
        self._notifier = notifier
        self._ledger = ledger
        self._worker_id = worker_id
        self._metrics = metrics
        self._lock = threading.RLock()
        self._host_for: Hosts | None = None
        self._policy: Policy | None = None
        self._decider: Decider | None = None
        self._runner: JobRunner | None = None

    def build_all(self) -> None:
        self.inventory  # noqa: B018 (built for its effect)
        self.runner  # noqa: B018 (built for its effect: the runner needs every other part)

    def credential_problems(self) -> list[str]:
        return self._credentials(self.inventory) if self._credentials is not None else []

    def built_runner(self) -> JobRunner | None:
        """The runner, if this process built one (ran or may run a job)."""
        with self._lock:
            return self._runner

    def built(self) -> frozenset[str]:
        """The parts built so far, by name (what a process has loaded)."""
        with self._lock:
            parts = {
                "inventory": self._inventory.value,
                "host_for": self._host_for,
                "policy": self._policy,
                "decider": self._decider,
                "runner": self._runner,
            }
            return frozenset(name for name, part in parts.items() if part is not None)

    @property
    def inventory(self) -> Inventory:
        return self._inventory.get()

    @property
    def metrics(self) -> Metrics:
        return self._metrics.get()

    @property
    def host_for(self) -> Hosts:
        with self._lock:
            if self._host_for is None:
                from bot.hyperv.hosts import Hosts
                from bot.observe.hosts import metered

                # Measured beneath any wrapper a test or bench adds.
                host_for = Hosts(metered(self._hosts, self.metrics))
                host_for.wrap(self._host_wrapper)
                self._host_for = host_for
            return self._host_for

    @property
    def policy(self) -> Policy:
        with self._lock:
            if self._policy is None:
                from policies import PolicyError, load_policy

                try:
                    self._policy = load_policy(*self._settings.policy_files)
                except PolicyError as exc:
                    raise ConfigError(str(exc)) from None
            return self._policy

    @property
    def decider(self) -> Decider:
        with self._lock:
            if self._decider is None:
                from bot.observe.work import MeteredDecider
                from bot.service.directory import PolicyGroups
                from bot.service.locate import Locator

                settings, inventory, policy = self._settings, self.inventory, self.policy
                self._decider = MeteredDecider(
                    inventory=inventory,
                    host_for=self.host_for,
                    policy=policy,
                    clock=self._clock,
                    locator=Locator(
                        inventory,
                        self.host_for,
                        self._engine,
                        self._clock,
                        fanout=settings.hyperv.fanout,
                    ),
                    inventory_label=f"inventory {settings.inventory_path.name}",
                    metrics=self.metrics,
                    directory=PolicyGroups(self._directory, policy),
                )
            return self._decider

    @property
    def runner(self) -> JobRunner:
        with self._lock:
            if self._runner is None:
                from bot.observe.work import MeteredRunner
                from bot.service.execution import HostJobs

                settings = self._settings
                host_jobs = HostJobs(
                    engine=self._engine,
                    inventory=self.inventory,
                    host_for=self.host_for,
                    decider=self.decider,
                    defaults=settings.defaults,
                    clock=self._clock,
                    on_change=self._notifier.changed,
                )
                self._runner = MeteredRunner(
                    self._ledger,
                    host_jobs.handlers(),
                    self._worker_id,
                    clock=self._clock,
                    heartbeat_interval=settings.jobs.heartbeat_seconds,
                    on_progress=self._notifier.progress,
                    metrics=self.metrics,
                )
            return self._runner


def build_context(
    settings: Settings,
    *,
    env: Mapping[str, str] | None = None,
    clock: Clock = system_clock,
    huey_kind: Literal["sqlite", "memory", "redis"] | None = None,
    host_wrapper: HostWrapper | None = None,
    metrics: Metrics | None = None,
    after_delivery: Callable[[JobRunner, int], None] | None = None,
    on_inventory: Callable[[Inventory], None] | None = None,
) -> AppContext:
    """The context `settings` describe. `after_delivery`, when given, is
    called with the runner and each job id the service hands to the queue,
    in the caller's thread once the job is committed and delivered: the
    tests' inline jobs (tests/helpers.py `run_inline`, docs/architecture.md)
    run it there instead of leaving it to a consumer. Production passes
    nothing: its jobs run only in the queue's consumers. The policy, the
    decider, the runner and the metrics are built when first used
    (`_Parts`). `on_inventory`, when given, is called with the inventory
    once it is read (the CLI's warnings about it, bot/cli/runtime.py)."""
    env = env or {}

    def load() -> Inventory:
        from bot.inventory import InventoryError, load_inventory

        try:
            loaded = load_inventory(settings.inventory_path)
        except InventoryError as exc:
            raise ConfigError(str(exc)) from None
        if on_inventory is not None:
            on_inventory(loaded)
        return loaded

    inventory = _Lazy(load)
    engine = make_engine(settings.database_url)
    try:
        prepare_database(settings, engine)
    except ConfigError:
        engine.dispose()
        raise
    except (OperationalError, InterfaceError) as exc:
        engine.dispose()
        raise misconfigured_database(exc, settings.database_label) or Unavailable(
            f"cannot open the database {settings.database_label}: {driver_reason(exc)}"
        ) from None
    except Exception as exc:
        engine.dispose()
        raise misconfigured_database(exc, settings.database_label) or Unavailable(
            f"cannot open the database {settings.database_label}: {type(exc).__name__}"
        ) from None
    try:
        factory, close_hosts = _hosts(settings, inventory.get, engine, clock, env)
    except ConfigError:
        engine.dispose()
        raise
    # Heartbeats beat in real seconds; a faster clock (the demo's --speed)
    # must not make a live worker's lock look stale.
    ledger = JobLedger(
        engine, clock, lock_stale_after=settings.jobs.lock_stale_after * speed_of(clock)
    )
    worker_id = default_worker_id()

    def make_metrics() -> Metrics:
        from bot.observe import Metrics
        from bot.observe.certificates import UncheckedCertificates
        from bot.observe.gauges import DatabaseGauges

        made = metrics or Metrics(multiprocess_dir=env.get("PROMETHEUS_MULTIPROC_DIR"))
        made.add_collector(DatabaseGauges(engine, inventory.get(), clock))
        # The simulator reaches no host, so it checks no certificate either.
        winrm = settings.hyperv.backend == "winrm"
        unchecked = inventory.get().unchecked_certificates if winrm else ()
        made.add_collector(UncheckedCertificates(unchecked))
        return made

    lazy_metrics = _Lazy(make_metrics)
    notifier, channels, directory = _notifier(settings, engine, env, lazy_metrics.get, clock)
    parts = _Parts(
        settings,
        inventory,
        engine,
        clock,
        hosts=factory,
        host_wrapper=host_wrapper,
        directory=directory,
        notifier=notifier,
        ledger=ledger,
        worker_id=worker_id,
        metrics=lazy_metrics,
        credentials=_credential_problems(env) if settings.hyperv.backend == "winrm" else None,
    )
    kind = huey_kind or settings.jobs.queue
    redis_url = env.get("REDIS_URL") or settings.jobs.redis_url
    from bot.jobs.queue import check_queue

    try:
        check_queue(kind, redis_url)  # said now, though the queue is made on first use
    except ValueError as exc:
        raise ConfigError(f"jobs.queue: {exc}") from None

    def make_queue() -> JobQueue:
        from bot.jobs.queue import JobQueue, make_huey, sqlite_queue_file

        huey = make_huey(
            kind,
            path=sqlite_queue_file(settings.database_url, settings.workdir),
            name=settings.jobs.queue_name,
            redis_url=redis_url,
        )
        return JobQueue(huey, parts.runner)

    return AppContext(
        settings=settings,
        engine=engine,
        ledger=ledger,
        make_queue=make_queue,
        clock=clock,
        worker_id=worker_id,
        ticks=TickClaims(engine, clock, worker_id),
        parts=parts,
        notifier=notifier,
        channels=channels,
        after_delivery=after_delivery,
        _close_hosts=close_hosts,
    )
