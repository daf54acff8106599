"""A database of its own at a given schema revision, on SQLite or on the
machine's PostgreSQL, for the tests of one migration: each upgrades it,
checks the model, and goes back.

    @pytest.fixture(params=BACKENDS)
    def engine_before_0017(request, tmp_path):
        with engine_at(request, tmp_path, "0016") as engine:
            yield engine
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url

from bot.store.db import make_engine
from bot.store.migrate import upgrade

# Each migration test runs on both backends; PostgreSQL's under its marker.
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@contextmanager
def engine_at(
    request: pytest.FixtureRequest, tmp_path: Path, revision: str | None
) -> Iterator[Engine]:
    """An engine on a new database migrated to `revision` (None: empty), on
    the backend `request.param` names; the database goes with it."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'migrating.db'}")
        if revision is not None:
            upgrade(engine, revision)
        try:
            yield engine
        finally:
            engine.dispose()
        return
    admin_url: str = request.getfixturevalue("pg_admin_url")
    name = f"cbmig_{uuid.uuid4().hex[:10]}"
    admin = make_engine(admin_url)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(make_url(admin_url).set(database=name).render_as_string(False))
    try:
        if revision is not None:
            upgrade(engine, revision)
        yield engine
    finally:
        engine.dispose()
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
