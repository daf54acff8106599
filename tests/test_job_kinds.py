"""Job kinds: one word per operation, rules as data, and the migration that
renamed the stored kinds (0012) without losing an idempotency key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from bot.config import JobsConfig
from bot.jobs import JOB_RULES, JobKind, job_words
from bot.store.migrate import downgrade, upgrade
from tests.migration_support import BACKENDS, engine_at


def test_every_kind_has_a_rule_and_a_deadline_setting() -> None:
    jobs = JobsConfig()
    assert set(JOB_RULES) == set(JobKind)
    for kind in JobKind:
        assert getattr(jobs, kind.rule.deadline_setting).total_seconds() > 0
    # Destructive: what a retry could do twice to what the VM holds.
    assert {k for k in JobKind if k.rule.destructive} == {JobKind.ROLLBACK, JobKind.MERGE}


def test_the_thread_words_name_the_action() -> None:
    assert job_words("rollback") == "the rollback"
    assert job_words("merge") == "the merge"
    # A word from an older row still reads as something.
    assert job_words("restore") == "the restore job"


@pytest.fixture(params=BACKENDS)
def old_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A database at schema 0011, on each backend."""
    with engine_at(request, tmp_path, "0011") as engine:
        yield engine


def _job(conn: Connection, key: str, kind: str) -> None:
    conn.execute(
        text(
            "INSERT INTO job (idempotency_key, kind, vm_id, host, state, destructive, attempt, "
            "max_attempts, payload, result, created_at) VALUES "
            "(:key, :kind, 'v1', 'HV01', 'succeeded', true, 1, 1, '{}', '{}', '2026-01-01')"
        ),
        {"key": key, "kind": kind},
    )


def test_0012_renames_kinds_and_keys_and_goes_back(old_engine: Engine) -> None:
    with old_engine.begin() as conn:
        _job(conn, "restore:7:3", "restore")
        _job(conn, "remove:7:5", "remove")
        _job(conn, "create:7", "create")
    upgrade(old_engine, "0012")
    with old_engine.connect() as conn:
        rows = set(conn.execute(text("SELECT kind, idempotency_key FROM job")).all())
    assert rows == {("rollback", "rollback:7:3"), ("merge", "merge:7:5"), ("create", "create:7")}
    downgrade(old_engine, "0011")
    with old_engine.connect() as conn:
        rows = set(conn.execute(text("SELECT kind, idempotency_key FROM job")).all())
    assert rows == {("restore", "restore:7:3"), ("remove", "remove:7:5"), ("create", "create:7")}
