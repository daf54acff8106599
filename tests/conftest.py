"""Shared fixtures: databases on SQLite and on the local PostgreSQL server.

`engine` is parametrized over both backends; a test that needs only one
asks for `sqlite_engine` or `pg_engine`. PostgreSQL is started when it is
down (the command this machine documents); if it still cannot be reached
the PostgreSQL half is skipped with the reason, loudly.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url
from sqlmodel import SQLModel

from bot.clock import ManualClock
from bot.context import AppContext, build_context
from bot.store.db import make_engine
from bot.store.migrate import upgrade
from tests.db_proxy import CuttableProxy
from tests.helpers import T0, running_context, settings_for


def pytest_configure(config: pytest.Config) -> None:
    """Property tests check what holds, not how fast: Hypothesis's 200 ms
    deadline per example failed `test_mangled_inventory_fails_only_with_
    inventory_error` (449 ms) on a CI machine at load average 10. Timing
    targets live in bench/."""
    settings.register_profile("checkpoint-bot", deadline=None)
    settings.load_profile("checkpoint-bot")


PG_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
_PG_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


@pytest.fixture(scope="session", autouse=True)
def _cli_sockets_of_this_run() -> Iterator[None]:
    """Every `serve` and `worker` a test starts listens for its CLI under
    $XDG_RUNTIME_DIR (bot.cli.local_socket), and one killed with SIGKILL
    leaves its socket file behind: a directory of this run, removed at its
    end, keeps them out of the machine's /tmp."""
    before = os.environ.get("XDG_RUNTIME_DIR")
    # Short: a socket's path is at most 107 bytes (unix(7)).
    run_dir = tempfile.mkdtemp(prefix="cb-run-")
    os.environ["XDG_RUNTIME_DIR"] = run_dir
    yield
    if before is None:
        os.environ.pop("XDG_RUNTIME_DIR", None)
    else:
        os.environ["XDG_RUNTIME_DIR"] = before
    shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """A test that runs the CLI in-process configures the root logger with the
    stderr pytest captured for that test; a later test's threads would write
    to that closed stream. Put the root logger back after every test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


def _pg_reachable(url: str) -> str | None:
    try:
        engine = make_engine(url)
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    problem = _pg_reachable(PG_URL)
    if problem and Path("/etc/postgresql").exists():
        subprocess.run(_PG_START, shell=True, check=False, capture_output=True)  # noqa: S602
        for _ in range(40):
            problem = _pg_reachable(PG_URL)
            if problem is None:
                break
            time.sleep(0.25)
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {PG_URL} is unreachable in CI: {problem}")
        pytest.skip(f"PostgreSQL at {PG_URL} unreachable, PostgreSQL tests SKIPPED: {problem}")
    return PG_URL


@pytest.fixture(scope="session")
def pg_database_url(pg_admin_url: str) -> Iterator[str]:
    """A throwaway database for this test session, migrated to head."""
    name = f"cbtest_{uuid.uuid4().hex[:10]}"
    admin = make_engine(pg_admin_url)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _tables() -> list[str]:
    """Every table the models define, so a new one is never left uncleaned."""
    import bot.store.models  # noqa: F401 (registers the tables on the metadata)

    return [t.name for t in SQLModel.metadata.sorted_tables]


def _devtools_tables() -> list[str]:
    from bot.devtools.hostmodel.table import DevtoolsTable

    return [t.name for t in DevtoolsTable.metadata.sorted_tables]


@pytest.fixture
def pg_engine(pg_database_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_database_url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(_tables())} RESTART IDENTITY CASCADE"))
        # The dev tools' tables live outside the bot's schema; a test that
        # used the modelled hosts created them.
        conn.execute(text(f"DROP TABLE IF EXISTS {', '.join(_devtools_tables())}"))
    yield engine
    engine.dispose()


@pytest.fixture
def through_proxy(pg_engine: Engine, pg_database_url: str) -> Iterator[tuple[CuttableProxy, str]]:
    """The test database (emptied) behind a proxy a test can cut
    (tests/db_proxy.py), and its URL through the proxy."""
    proxy, url = CuttableProxy.before(pg_database_url)
    with proxy:
        yield proxy, url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'var' / 'checkpoint-bot.db'}"


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """A migrated, empty database URL on each backend."""
    if request.param == "sqlite":
        url: str = request.getfixturevalue("sqlite_url")
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        return url
    request.getfixturevalue("pg_engine")  # truncates
    pg_url: str = request.getfixturevalue("pg_database_url")
    return pg_url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> ManualClock:
    """A clock that moves only when the test says so, starting at T0."""
    return ManualClock(T0)


@pytest.fixture
def running_ctx(tmp_path: Path, db_url: str) -> Iterator[AppContext]:
    """A demo-mode context on each backend, its job consumer running in
    threads (tests.helpers.running_context)."""
    with running_context(tmp_path, db_url) as context:
        yield context


@pytest.fixture
def idle_ctx(tmp_path: Path, db_url: str, clock: ManualClock) -> Iterator[AppContext]:
    """A demo-mode context on each backend on the `clock` fixture, with no
    job consumer: every job step (a claim, a run, a worker that vanished)
    is played by the test."""
    context = build_context(settings_for(tmp_path, db_url), clock=clock, huey_kind="memory")
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def inline_ctx(tmp_path: Path, db_url: str) -> Iterator[AppContext]:
    """A demo-mode context on each backend whose jobs run inline: when
    `request_checkpoint`, `approve`, `rollback` or `merge` returns, its job
    has finished (tests.helpers.run_inline). For tests that are not about
    the queue or its consumers; those use `running_ctx`."""
    with running_context(tmp_path, db_url, inline=True) as context:
        yield context
