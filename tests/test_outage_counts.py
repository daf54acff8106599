"""What may be said after a database outage: "nothing was changed" only when
no write of the work was committed (bot.store.outage, bot.service.outage),
on SQLite and PostgreSQL, with a real outage error (a server that does not
answer), never a constructed one."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from bot.service.outage import (
    DATABASE_DOWN,
    DATABASE_DOWN_PART_WAY,
    committed_writes,
    outage_message,
)
from bot.store.db import make_engine, session_scope
from bot.store.models import Tick
from bot.store.outage import is_transient


def _real_outage() -> Exception:
    dead = make_engine("postgresql://postgres@127.0.0.1:9/none?connect_timeout=2")
    try:
        with dead.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:
        return exc
    finally:
        dead.dispose()
    raise AssertionError("a server on port 9 answered")


def _tick(slot: str) -> Tick:
    return Tick(kind="test", slot=slot, worker="w", claimed_at=datetime.now(UTC))


def test_reads_and_rolled_back_writes_change_nothing(engine: Engine) -> None:
    outage = _real_outage()
    assert is_transient(outage)
    before = committed_writes()
    with session_scope(engine) as s:
        s.connection().execute(text("select 1"))
    with pytest.raises(RuntimeError), session_scope(engine) as s:
        s.add(_tick("rolled-back"))
        s.flush()
        raise RuntimeError("rolled back")
    assert committed_writes() == before
    assert outage_message(outage, before) == DATABASE_DOWN


def test_a_committed_write_is_never_called_nothing(engine: Engine) -> None:
    outage = _real_outage()
    before = committed_writes()
    with session_scope(engine) as s:
        s.add(_tick("kept"))
    assert committed_writes() == before + 1
    assert outage_message(outage, before) == DATABASE_DOWN_PART_WAY


def test_a_refusal_by_the_database_is_not_an_outage(engine: Engine) -> None:
    with session_scope(engine) as s:
        s.add(_tick("once"))
    before = committed_writes()
    with pytest.raises(IntegrityError) as caught, session_scope(engine) as s:
        s.add(_tick("once"))  # the (kind, slot) unique constraint
    assert not is_transient(caught.value)
    assert outage_message(caught.value, before) is None
