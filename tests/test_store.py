from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import select

from bot.store.db import make_engine, session_scope
from bot.store.migrate import current_revision, head_revision
from bot.store.models import Change


def test_migrated_to_head(engine: Engine) -> None:
    assert current_revision(engine) == head_revision()


def test_datetimes_round_trip_as_utc(engine: Engine) -> None:
    now = datetime(2026, 11, 24, 17, 0, 5, tzinfo=UTC)
    with session_scope(engine) as s:
        s.add(
            Change(
                vm_id="x",
                vm_name="WEB01",
                host="HV01",
                checkpoint_type="production",
                reason="r",
                requester="u",
                state="requested",
                ttl_seconds=60,
                created_at=now,
                updated_at=now,
            )
        )
    with session_scope(engine) as s:
        row = s.exec(select(Change)).one()
    assert row.created_at == now and row.created_at.tzinfo is not None


def test_the_written_down_head_is_alembics_and_answers_the_start_check(tmp_path: Path) -> None:
    from bot.store import migrate

    assert migrate.head_revision() == migrate.HEAD
    engine = make_engine(f"sqlite:///{tmp_path / 'head.db'}")
    try:
        assert not migrate.schema_is_current(engine)  # no alembic_version table yet
        migrate.upgrade(engine, migrate.HEAD)
        assert migrate.schema_is_current(engine)
        migrate.downgrade(engine, "0010")
        assert not migrate.schema_is_current(engine)
    finally:
        engine.dispose()
