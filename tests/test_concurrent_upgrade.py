"""Two processes migrating one new database at once: both succeed, and the
schema is applied once. Seen: three emulators started together on a fresh
PostgreSQL `--database` each ran the migrations; one failed with a unique
violation on `alembic_version` (both inserted the first revision). An
operator running `db upgrade` while a deployment's migration Job runs meets
the same race."""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from bot.store import migrate
from bot.store.db import make_engine
from tests.migration_support import BACKENDS, engine_at


@pytest.fixture(params=BACKENDS)
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with engine_at(request, tmp_path, None) as engine:
        yield engine


def test_concurrent_upgrades_of_a_new_database_both_succeed(empty_engine: Engine) -> None:
    errors = _all_at_once(empty_engine, migrate.upgrade)
    # Where it failed, not only what (seen once in CI: "database is locked").
    assert errors == [], "".join(traceback.format_exception(errors[0]))
    assert migrate.current_revision(empty_engine) == migrate.HEAD
    assert migrate.schema_is_current(empty_engine)


def _all_at_once(engine: Engine, work: Callable[[Engine], None]) -> list[BaseException]:
    url = engine.url.render_as_string(hide_password=False)
    engines = [make_engine(url) for _ in range(3)]
    start = threading.Barrier(len(engines))
    errors: list[BaseException] = []

    def one(each: Engine) -> None:
        start.wait()
        try:
            work(each)
        except BaseException as exc:  # the test reports it
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for each in engines:
        each.dispose()
    return errors


def test_emulators_started_together_on_a_new_database_all_start(empty_engine: Engine) -> None:
    """What `checkpoint-bot emulator --database URL` does at start, three at
    once: migrate, then make the modelled hosts' own table."""
    from sqlalchemy import inspect

    from bot.devtools.hostmodel.table import create_tables

    def start(engine: Engine) -> None:
        migrate.upgrade(engine)
        create_tables(engine)

    assert _all_at_once(empty_engine, start) == []
    assert "devtools_host_state" in inspect(empty_engine).get_table_names()
