"""Builders shared by the service and CLI tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from bot.clock import Clock, ScaledClock
from bot.config import Settings, demo_settings
from bot.context import AppContext, build_context

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def settings_for(workdir: Path, database_url: str | None = None) -> Settings:
    env = {"DATABASE_URL": database_url} if database_url else {}
    return demo_settings(env, workdir)


@contextmanager
def running_context(
    workdir: Path, database_url: str | None = None, clock: Clock | None = None
) -> Iterator[AppContext]:
    """A demo-mode context with its job consumer running in threads; the
    clock runs 600x so simulated merges finish within a second."""
    ctx = build_context(
        settings_for(workdir, database_url),
        clock=clock or ScaledClock(600, start=T0),
        huey_kind="memory",
    )
    ctx.start_workers()
    try:
        yield ctx
    finally:
        ctx.close()
