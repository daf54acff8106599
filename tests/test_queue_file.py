"""Each record has its own SQLite job queue: two configs run from one
directory, each with its own SQLite database, never take each other's jobs
(seen: the second config's command ran the first's jobs as "delivered but
does not exist", and the first's changes sat approved until a reconciler
delivered them again)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bot.context import build_context
from bot.jobs.queue import sqlite_queue_file
from tests.helpers import settings_for


def test_the_queue_file_sits_beside_a_sqlite_record_and_is_named_after_it(tmp_path: Path) -> None:
    work = tmp_path / "work"
    assert sqlite_queue_file(f"sqlite:///{tmp_path}/var/checkpoint-bot.db", work) == (
        tmp_path / "var" / "queue.db"
    )
    assert sqlite_queue_file(f"sqlite:///{tmp_path}/state.db", work) == tmp_path / "state.queue.db"
    assert sqlite_queue_file(f"sqlite:///{tmp_path}/prod.sqlite3", work) == (
        tmp_path / "prod.queue.db"
    )
    # No file of its own (PostgreSQL, an in-memory SQLite): the working directory's.
    for url in ("postgresql://bot@db/checkpoints", "sqlite://", "sqlite:///:memory:"):
        assert sqlite_queue_file(url, work) == work / "var" / "queue.db"


def test_two_records_in_one_directory_have_two_queues(tmp_path: Path) -> None:
    base = settings_for(tmp_path)
    contexts = [
        build_context(
            dataclasses.replace(base, database_url=f"sqlite:///{tmp_path / name}"),
            huey_kind="sqlite",
        )
        for name in ("staging.db", "prod.db")
    ]
    try:
        files = [ctx.queue.huey.storage.filename for ctx in contexts]
        assert files == [str(tmp_path / "staging.queue.db"), str(tmp_path / "prod.queue.db")]
    finally:
        for ctx in contexts:
            ctx.close()
    # The default deployment's file is where it always was.
    ctx = build_context(base, huey_kind="sqlite")
    try:
        assert ctx.queue.huey.storage.filename == str(tmp_path / "var" / "queue.db")
    finally:
        ctx.close()
