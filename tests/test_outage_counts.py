"""What may be said after a database outage: "nothing was changed" only when
no write of the work was committed (bot.store.outage, bot.service.outage),
on SQLite and PostgreSQL, with a real outage error (a server that does not
answer), never a constructed one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

import bot.service
from bot.context import AppContext
from bot.service.outage import (
    DATABASE_DOWN,
    DATABASE_DOWN_PART_WAY,
    committed_writes,
    outage_message,
)
from bot.store.db import make_engine, session_scope
from bot.store.models import Tick
from bot.store.outage import is_transient
from tests.cli_support import invoke, one_line_error


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


def _request_then_outage(ctx: AppContext, *_: object, **__: object) -> NoReturn:
    """The create's request recorded, then the database gone: as when it
    stops answering while the job runs (seen with a proxy cut mid-create)."""
    with session_scope(ctx.engine) as s:
        s.add(_tick("the request"))
    raise _real_outage()


def _nothing_then_outage(ctx: AppContext, *_: object, **__: object) -> NoReturn:
    raise _real_outage()


@pytest.mark.parametrize(
    ("work", "code", "said"),
    [
        (
            _request_then_outage,
            4,
            "the database became unavailable part-way through; some of this may have been "
            "recorded, so look at the change (checkpoint-bot change list) before trying again",
        ),
        (_nothing_then_outage, 3, DATABASE_DOWN),
    ],
)
def test_the_cli_exits_3_only_when_nothing_was_recorded(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    work: Callable[..., NoReturn],
    code: int,
    said: str,
) -> None:
    """Seen: a create whose database went away after its checkpoint was
    taken exited 3, which the README's exit codes call "nothing was decided
    or recorded: try again" (a script would take a second checkpoint), and
    pointed a CLI user at a Slack command."""
    assert invoke(tmp_path, "change", "list").returncode == 0  # the demo's record made
    monkeypatch.setattr(bot.service, "request_checkpoint", work)
    result = invoke(tmp_path, "checkpoint", "create", "WEB01", "--reason", "patch")
    assert result.returncode == code, result.stderr
    assert one_line_error(result) == f"checkpoint-bot: error: {said}"
