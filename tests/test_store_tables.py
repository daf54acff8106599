"""The tables live in one module per part of the record (bot.store.tables),
so a reader maps only what it reads; a write maps them all first
(bot.store.db `RecordSession`), because a flush resolves the foreign keys of
the tables it writes, and `change.batch_id` names a table of another
module. Each check runs in a fresh interpreter: this test process has
mapped every table long before."""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

from sqlmodel import SQLModel

import bot.store.models  # noqa: F401  (maps every table for create_all)
from bot.store.db import make_engine

ROOT = Path(__file__).resolve().parents[1]

WRITE_A_CHANGE = """
import sys
from datetime import datetime, timezone
from bot.store.db import make_engine, session_scope
from bot.store.tables.changes import Change, ChangeEvent

assert "bot.store.tables.batches" not in sys.modules  # Change's foreign key names it
now = datetime.now(timezone.utc)
engine = make_engine(sys.argv[1])
with session_scope(engine) as s:
    change = Change(
        vm_id="vm-1", vm_name="STG-WEB01", host="HV01", checkpoint_type="production",
        reason="KB5044284", requester="cli:alice", state="requested", ttl_seconds=3600,
        created_at=now, updated_at=now, version=1,
    )
    s.add(change)
    s.flush()
    s.add(ChangeEvent(change_id=change.id, seq=1, kind="requested", actor="cli:alice",
                      at=now, message="asked"))
print(change.id)
"""


def test_a_process_that_mapped_one_module_can_write(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'record.db'}"
    SQLModel.metadata.create_all(make_engine(url))
    done = subprocess.run(
        [sys.executable, "-c", WRITE_A_CHANGE, url],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-800:]
    assert done.stdout.strip() == "1"


def test_every_table_is_in_the_aggregate_module() -> None:
    """`bot.store.models` (what the migrations and the schema check import)
    holds every table the modules define, under the names they export."""
    import bot.store.tables

    defined = set()
    for info in pkgutil.iter_modules(bot.store.tables.__path__):
        module = importlib.import_module(f"bot.store.tables.{info.name}")
        defined |= {
            cls.__tablename__
            for cls in vars(module).values()
            if isinstance(cls, type)
            and issubclass(cls, SQLModel)
            and cls.__module__ == module.__name__
            and hasattr(cls, "__table__")
        }
    exported = {
        getattr(bot.store.models, name).__tablename__
        for name in bot.store.models.__all__
        if isinstance(getattr(bot.store.models, name), type)
    }
    assert defined == exported == set(SQLModel.metadata.tables)
