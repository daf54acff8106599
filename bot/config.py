"""Settings: one YAML file plus environment variables, validated at start.

The entry point builds a `Settings` and passes it down; nothing below it
reads the environment. With no config file the bot runs in demo mode.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bot.config_file import CONFIG_ENV, chosen_config
from bot.domain import CheckpointKind, checked_channel_id
from bot.durations import DurationError, parse_duration
from bot.secrets import SecretError, credential_path, relative_to
from bot.store.db import default_sqlite_url, redacted_url, url_has_password
from bot.yamlio import (
    ConfigProblem,
    YamlDoc,
    YamlError,
    YamlValidationError,
    load_yaml,
    validation_errors,
)


class ConfigError(Exception):
    """A configuration problem, one line per problem, no secrets in it."""


_UNPARSED = "cannot be parsed; expected e.g. postgresql://USER@HOST:5432/DB or sqlite:///PATH"
_AT_IN_USERINFO = (
    "has more than one '@' before its host: an '@' in the user or the password must be "
    "written %40 (postgresql://USER:PA%40SS@HOST:5432/DB); the URL is not shown (it may "
    "hold a password)"
)


def _duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    try:
        return parse_duration(str(value))
    except DurationError as exc:
        raise ValueError(str(exc)) from None


def _path(value: object) -> object:
    # An empty string would be read as the config file's own folder, and fail
    # later as "cannot be read: Is a directory".
    if isinstance(value, str) and not value.strip():
        raise ValueError("is empty: give a path (relative to this file's folder)")
    return value


def _channel(value: str | None) -> str | None:
    # A name would post a thread's root, then fail every update of it
    # (chat.update takes an id only).
    return checked_channel_id(value) if value is not None else None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JobsConfig(_Model):
    # sqlite: Huey on a file in var/, consumer in this process (one machine).
    # redis: Huey on Redis, shared by bot replicas and `checkpoint-bot worker`s.
    queue: Literal["sqlite", "memory", "redis"] = "sqlite"
    # Used with queue: redis, unless REDIS_URL is set in the environment.
    redis_url: str | None = None
    # Deployments sharing one Redis keep apart by name.
    queue_name: str = Field(default="checkpoint-bot", min_length=1, max_length=64)
    workers: int = Field(default=4, ge=1, le=64)
    heartbeat_seconds: float = Field(default=2.0, gt=0, le=60)
    # How often (real seconds) each process looks for periodic work due.
    tick_seconds: float = Field(default=5.0, gt=0, le=300)
    lock_stale_after: timedelta = timedelta(seconds=60)
    create_deadline: timedelta = timedelta(minutes=30)
    restore_deadline: timedelta = timedelta(minutes=30)
    merge_deadline: timedelta = timedelta(hours=2)

    _durations = field_validator(
        "lock_stale_after", "create_deadline", "restore_deadline", "merge_deadline", mode="before"
    )(_duration)

    @model_validator(mode="after")
    def _heartbeats_fit_in_stale_window(self) -> JobsConfig:
        # A live worker must be able to miss two heartbeats before anyone
        # may take its VM lock over.
        if 3 * self.heartbeat_seconds > self.lock_stale_after.total_seconds():
            raise ValueError(
                f"lock_stale_after ({self.lock_stale_after.total_seconds():g}s) must be at "
                f"least 3 x heartbeat_seconds ({self.heartbeat_seconds:g}s)"
            )
        return self


class DefaultsConfig(_Model):
    # The policy's `ttl` rule sets lifetimes per scope; this is used only
    # where that rule is disabled.
    ttl: timedelta = timedelta(hours=72)
    checkpoint_type: CheckpointKind = CheckpointKind.PRODUCTION
    # A restored production checkpoint leaves the VM Off; start it again if
    # it was running before the rollback.
    start_after_restore: bool = True
    # The wall clock `checkpoint-bot checkpoint create --at` reads a time
    # without a zone on (an IANA key); Slack uses each requester's own
    # profile zone instead (docs/batches.md "At a time").
    timezone: str = "UTC"

    _durations = field_validator("ttl", mode="before")(_duration)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}: use an IANA name like Europe/Berlin, or UTC"
            ) from None
        return value


class HyperVConfig(_Model):
    """How the bot reaches Hyper-V: the simulator (demo) or WinRM."""

    # The default is demo mode's, which is built without a file. A config
    # file must name its backend (`load_settings`): defaulting there ran a
    # deployment that forgot the `hyperv:` block on simulated hosts, each
    # checkpoint "taken" on a host nobody asked.
    backend: Literal["simulator", "winrm"] = "simulator"
    # The simulator's hosts: a host-model file (bot.devtools.hostmodel), what
    # the modelled hosts hold, written apart from the inventory. Default: the
    # demo estate's, deploy/examples/demo-hosts.yaml.
    simulator_hosts: Path | None = None
    # Fleet-wide reads (listings, sweeps, discovery, finding a clustered VM)
    # ask at most this many hosts at once. A host's answer is mostly waiting
    # (round trips, its runspace, Hyper-V's own work), so enough askers keep
    # the bot's CPU busy rather than idle between waves of round trips; 64
    # rather than 32 since 2026-12-05 (bench/fleet_sweep.py, the README's
    # "Fleet sweep"). Writes never fan out: one job per VM.
    fanout: int = Field(default=64, ge=1, le=256)
    # The hard deadline of one host call (a production checkpoint can take minutes).
    call_timeout: timedelta = timedelta(minutes=10)
    # An unused runspace pool is closed after this long.
    idle_timeout: timedelta = timedelta(minutes=5)

    _durations = field_validator("call_timeout", "idle_timeout", mode="before")(_duration)
    _paths = field_validator("simulator_hosts", mode="before")(_path)


class SweepConfig(_Model):
    """The orphan and stale checkpoint sweep: every checkpoint on every host."""

    enabled: bool = True
    interval: timedelta = timedelta(hours=6)
    # A checkpoint owned by a change is stale once past its expiry; one no
    # change owns (an orphan) once older than this.
    orphan_after: timedelta = timedelta(hours=24)
    # Digests for checkpoints whose change names no channel, and for orphans.
    channel: str | None = None
    # Size samples (one per checkpoint per sweep) older than this are pruned.
    keep_sizes: timedelta = timedelta(days=30)

    _durations = field_validator("interval", "orphan_after", "keep_sizes", mode="before")(_duration)

    @field_validator("channel")
    @classmethod
    def _channel_id(cls, value: str | None) -> str | None:
        return _channel(value)


class BatchesConfig(_Model):
    """Patch waves: one request over several VMs (docs/batches.md)."""

    # A selection of more VMs than this is refused before anything is recorded.
    max_vms: int = Field(default=50, ge=1, le=1000)
    # At most this many of a batch's host jobs run at once on one host, so
    # a wave does not saturate the host's storage.
    per_host: int = Field(default=2, ge=1, le=64)
    # At most this many of a batch's host jobs run at once on the nodes of
    # one failover cluster (docs/clusters.md): its Cluster Shared Volumes
    # are one storage for every node, so two nodes at their per-host bound
    # would put 4 checkpoints on it at once; 3 keeps below that and still
    # lets both nodes work. A standalone host has only its per-host bound.
    per_cluster: int = Field(default=3, ge=1, le=256)


class ObservabilityConfig(_Model):
    """Health, metrics and logs of `serve` and `worker` (docs/operations.md)."""

    # /healthz, /readyz and /metrics on their own port (0: any free port);
    # unset: none (HTTP mode still answers them on its main port).
    health_port: int | None = Field(default=None, ge=0, le=65535)
    health_host: str = "127.0.0.1"
    log_format: Literal["text", "json"] = "text"


class SecretRefConfig(_Model):
    env: str | None = None
    file: Path | None = None

    _paths = field_validator("file", mode="before")(_path)

    @model_validator(mode="after")
    def _one_source(self) -> SecretRefConfig:
        # The file would win without a word (bot.secrets.secret_from): one
        # who rotated the variable would still run on the file's old secret.
        if self.env is not None and self.file is not None:
            raise ValueError("set env or file, not both")
        return self


TEAM_ID = re.compile(r"^T[A-Z0-9]{2,}$")
ENTERPRISE_ID = re.compile(r"^E[A-Z0-9]{2,}$")


class SlackConfig(_Model):
    bot_token: SecretRefConfig = SecretRefConfig(env="SLACK_BOT_TOKEN")
    signing_secret: SecretRefConfig = SecretRefConfig(env="SLACK_SIGNING_SECRET")
    app_token: SecretRefConfig = SecretRefConfig(env="SLACK_APP_TOKEN")
    api_url: str | None = None
    changes_channel: str | None = None
    # The workspace(s) the bot serves, by team id (T…). Slack user ids are
    # unique only within a workspace, so a request from any other team, or
    # from another organisation's user in a shared channel, is refused before
    # the policy is asked (handlers/workspace.py). `serve` needs it in a
    # configured deployment; demo mode takes the bot token's own workspace.
    team_ids: tuple[str, ...] = ()
    # Enterprise Grid: the organisation the workspace(s) belong to (E…).
    # Several team ids only within one organisation, where user ids are
    # unique across its workspaces, so one policy can name them.
    enterprise_id: str | None = None

    @field_validator("changes_channel")
    @classmethod
    def _channel_id(cls, value: str | None) -> str | None:
        return _channel(value)

    @field_validator("api_url")
    @classmethod
    def _web_api_url(cls, value: str | None) -> str | None:
        # Else every call fails later, as "no connection adapters" or the like.
        parts = urlsplit(value) if value is not None else None
        if parts is not None and (parts.scheme not in ("https", "http") or not parts.netloc):
            # Not echoed when it could hold credentials (user:password@).
            shown = repr(value) if "@" not in str(value) else "the value given"
            raise ValueError(
                f"{shown} is not a URL of Slack's Web API: https://slack.com/api/ (or a "
                "local stand-in's http://HOST:PORT/api/)"
            )
        return value

    @field_validator("team_ids", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return (value,) if isinstance(value, str) else value

    @field_validator("team_ids")
    @classmethod
    def _team_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for team in value:
            if not TEAM_ID.match(team):
                raise ValueError(f"{team!r} is not a Slack team id (T followed by letters/digits)")
        return value

    @field_validator("enterprise_id")
    @classmethod
    def _enterprise_id(cls, value: str | None) -> str | None:
        if value is not None and not ENTERPRISE_ID.match(value):
            raise ValueError(
                f"{value!r} is not an Enterprise Grid id (E followed by letters/digits)"
            )
        return value

    @model_validator(mode="after")
    def _several_teams_need_one_org(self) -> SlackConfig:
        if len(self.team_ids) > 1 and self.enterprise_id is None:
            raise ValueError(
                "team_ids names several workspaces: that is only safe within one Enterprise "
                "Grid organisation (set enterprise_id), because elsewhere the same user id "
                "can mean different people in different workspaces"
            )
        return self


class FileConfig(_Model):
    inventory: Path
    # Deep-merged over the shipped policies/default.yaml: say only what differs.
    policy: Path | None = None
    database_url: str | None = None
    database_url_file: Path | None = None
    workdir: Path | None = None
    hyperv: HyperVConfig = HyperVConfig()
    jobs: JobsConfig = JobsConfig()
    defaults: DefaultsConfig = DefaultsConfig()
    slack: SlackConfig = SlackConfig()
    sweep: SweepConfig = SweepConfig()
    observability: ObservabilityConfig = ObservabilityConfig()
    batches: BatchesConfig = BatchesConfig()

    _paths = field_validator("inventory", "policy", "database_url_file", "workdir", mode="before")(
        _path
    )

    @field_validator("database_url")
    @classmethod
    def _no_password_in_file(cls, value: str | None) -> str | None:
        if not value:
            return value
        try:
            url = make_url(value)
        except (ArgumentError, ValueError):
            # Never the URL itself, nor the parser's words about it: either
            # may hold the password this check is for.
            raise ValueError(_UNPARSED) from None
        # In `user:pass@` or in the query (?password=, ?sslpassword=): libpq
        # takes it from either, and the file is no place for either.
        if url_has_password(url):
            raise ValueError(
                "must not contain a password: set DATABASE_URL in the environment "
                "or name a file with database_url_file"
            )
        return value


# The database URLs' schemes the bot can open (SQLAlchemy's drivername).
_DATABASES = frozenset({"sqlite", "sqlite+pysqlite", "postgresql", "postgresql+psycopg"})


@dataclass(frozen=True)
class Settings:
    """Everything the process needs, validated: paths made absolute against
    the config file's folder, one database URL. Secrets stay references (an
    environment variable or a file to read, `bot.secrets`): they are read
    where they are used, never held here."""

    demo: bool
    config_path: Path | None
    inventory_path: Path
    # Policy files merged, in order, over the shipped default.
    policy_files: tuple[Path, ...]
    # May carry a password: kept out of repr; show `database_label` instead.
    database_url: str = field(repr=False)
    workdir: Path
    hyperv: HyperVConfig
    jobs: JobsConfig
    defaults: DefaultsConfig
    slack: SlackConfig
    sweep: SweepConfig
    observability: ObservabilityConfig = field(default_factory=ObservabilityConfig)
    batches: BatchesConfig = field(default_factory=BatchesConfig)
    # A config file that names neither a database nor a `workdir`: the record
    # is var/checkpoint-bot.db under whichever directory the command ran in.
    database_from_cwd: bool = False

    def __post_init__(self) -> None:
        try:
            url = make_url(self.database_url)
        except (ArgumentError, ValueError):
            # Never the URL itself: it may carry a password.
            raise ConfigError(
                f"the database URL (DATABASE_URL or database_url_file) {_UNPARSED}"
            ) from None
        if url.host is not None and "@" in url.host:
            # `user:pa@ss@host`: the URL's parser ends the password at the
            # first "@", so the rest of it reads as the host name and would
            # be said (and asked of DNS) as one. Never shown.
            raise ConfigError(
                f"the database URL (DATABASE_URL or database_url_file) {_AT_IN_USERINFO}"
            )
        # The record lives in SQLite or PostgreSQL, through the drivers this
        # package installs (`postgresql://` means psycopg 3, bot.store.db).
        if url.drivername not in _DATABASES:
            raise ConfigError(
                f"the database URL (DATABASE_URL or database_url) names {url.drivername}: "
                "the record is kept in SQLite (sqlite:///PATH) or PostgreSQL "
                "(postgresql://USER@HOST:5432/DB, or postgresql+psycopg://)"
            )
        # SQLite with no file, or ":memory:", is a database in this process's
        # memory: each command would start with an empty one and keep nothing
        # (https://www.sqlite.org/inmemorydb.html).
        if url.drivername.startswith("sqlite") and url.database in (None, "", ":memory:"):
            raise ConfigError(
                "the database URL (DATABASE_URL or database_url) names no file: SQLite would "
                "keep the record in this process's memory and lose it at exit; give a file, "
                "like sqlite:///var/checkpoint-bot.db"
            )

    @property
    def simulated_hosts(self) -> bool:
        """Its hosts are the built-in simulator outside demo mode: the CLI
        and every Slack message say so (a demo says it in its own words)."""
        return not self.demo and self.hyperv.backend == "simulator"

    @property
    def labelled_simulated(self) -> bool:
        """Every Slack message carries a footer saying no real host is touched."""
        return self.demo or self.simulated_hosts

    @property
    def database_label(self) -> str:
        """The URL for messages: every password in it (user:pass@, and
        password= or sslpassword= in the query) shown as ***."""
        return redacted_url(make_url(self.database_url))


def _problems_to_error(problems: list[ConfigProblem]) -> ConfigError:
    return ConfigError("\n".join(str(p) for p in problems))


def demo_settings(env: Mapping[str, str], cwd: Path) -> Settings:
    return Settings(
        demo=True,
        config_path=None,
        inventory_path=_demo_inventory_path(),
        policy_files=(),
        database_url=env.get("DATABASE_URL") or default_sqlite_url(cwd),
        workdir=cwd,
        hyperv=HyperVConfig(),
        jobs=JobsConfig(),
        defaults=DefaultsConfig(),
        slack=SlackConfig(),
        sweep=SweepConfig(),
    )


def _read_url_file(path: Path, source: str, doc: YamlDoc) -> str:
    try:
        url = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        line = doc.line_of(("database_url_file",))
        raise ConfigError(
            f"{source}:{line}: database_url_file: cannot read {path}: {exc.strerror}"
        ) from None
    return url


def _resolved_slack(slack: SlackConfig, base: Path) -> SlackConfig:
    """Secret files named in the file are relative to the file, as its
    other paths are (a supervisor started elsewhere finds them)."""
    update = {
        name: ref.model_copy(update={"file": relative_to(ref.file, base)})
        for name in ("bot_token", "signing_secret", "app_token")
        if (ref := getattr(slack, name)).file is not None
    }
    return slack.model_copy(update=update) if update else slack


def _resolved_hyperv(hyperv: HyperVConfig, base: Path) -> HyperVConfig:
    """Paths in the file are relative to the file."""
    if hyperv.simulator_hosts is None:
        return hyperv
    return hyperv.model_copy(update={"simulator_hosts": (base / hyperv.simulator_hosts).resolve()})


# What a config file must say, or say once, that its model cannot tell:
# the model fills in defaults (demo mode's too) and reads each key alone.
_BACKEND_UNSET = (
    "hyperv.backend is not set: `winrm` for real Hyper-V hosts, or `simulator` to try "
    "the bot on simulated ones"
)
_URL_TWICE = "set database_url or database_url_file, not both"


def _unsaid_or_twice(doc: YamlDoc) -> list[ConfigProblem]:
    """Problems of the file as written: a backend left to a default, a
    database URL given twice. Only for a mapping; the model reports the rest."""
    data = doc.data
    problems = []
    hyperv = data.get("hyperv")
    # A deployment runs on real hosts only when its file says so, and on
    # simulated ones likewise (fail closed). `backend: null`, or a `hyperv`
    # that is a list or a word, is the model's to report.
    if hyperv is None or (isinstance(hyperv, dict) and "backend" not in hyperv):
        # The block's line if there is one; none is "line 1" (the root's).
        line = doc.lines.get(("hyperv",))
        problems.append(ConfigProblem(doc.source, line, "", _BACKEND_UNSET))
    # database_url would win without a word, whichever the operator meant.
    if data.get("database_url") is not None and data.get("database_url_file") is not None:
        last = max(doc.lines.get((key,), 0) for key in ("database_url", "database_url_file"))
        problems.append(ConfigProblem(doc.source, last or None, "", _URL_TWICE))
    return problems


def load_settings(config_path: Path | None, env: Mapping[str, str], cwd: Path) -> Settings:
    """Settings from `config_path` (or $CHECKPOINT_BOT_CONFIG), else demo mode."""
    config_path = chosen_config(config_path, env, cwd)
    if config_path is None:
        return demo_settings(env, cwd)
    source = str(config_path)
    try:
        text = config_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the config file: {exc.strerror}") from None
    try:
        doc = load_yaml(text, source)
    except YamlError as exc:
        raise ConfigError(str(exc)) from None
    if not isinstance(doc.data, dict):
        raise ConfigError(f"{source}:1: the config file must be a mapping of keys to values")
    problems = _unsaid_or_twice(doc)
    try:
        parsed = FileConfig.model_validate(doc.data)
    except ValidationError as exc:
        # Every problem at once, in file order: one edit fixes them all.
        problems += validation_errors(exc, doc, model=FileConfig)
        raise _problems_to_error(sorted(problems, key=lambda p: p.line or 0)) from None
    if problems:
        raise _problems_to_error(problems)
    base = config_path.parent
    workdir = (base / parsed.workdir) if parsed.workdir else cwd
    url = env.get("DATABASE_URL") or parsed.database_url
    if not url and parsed.database_url_file:
        try:
            url_file = credential_path(parsed.database_url_file, env, "database_url_file")
        except SecretError as exc:
            raise ConfigError(f"{source}:{doc.line_of(('database_url_file',))}: {exc}") from None
        url = _read_url_file(base / url_file, source, doc)
    return Settings(
        demo=False,
        config_path=config_path,
        inventory_path=(base / parsed.inventory).resolve(),
        policy_files=((base / parsed.policy).resolve(),) if parsed.policy else (),
        database_url=url or default_sqlite_url(workdir),
        workdir=workdir,
        database_from_cwd=not url and not parsed.workdir,
        hyperv=_resolved_hyperv(parsed.hyperv, base),
        jobs=parsed.jobs,
        defaults=parsed.defaults,
        slack=_resolved_slack(parsed.slack, base),
        sweep=parsed.sweep,
        batches=parsed.batches,
        observability=parsed.observability,
    )


__all__ = [
    "CONFIG_ENV",
    "ConfigError",
    "Settings",
    "YamlValidationError",
    "demo_settings",
    "load_settings",
]


def _demo_inventory_path() -> Path:
    # Imported here: a command that never reads the inventory (`outbox`,
    # `change show`) does not load its models (bench/cli_start.py).
    from bot.inventory import demo_inventory_path

    return demo_inventory_path()
