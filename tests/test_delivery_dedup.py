"""Issue #13 item 9: a signed request delivered twice within Slack's
five-minute window acts once. The keys live in the database (migration
0008), so every replica sees them; old keys are pruned."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel, col, func, select

from bot.store.db import session_scope
from bot.store.deliveries import DeliveryKeys
from bot.store.models import Change, SlackDelivery
from tests.slack_support import TEAM_ID, RunningBot, running_bot

FORM = "application/x-www-form-urlencoded"


class Wall:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_a_key_is_first_once_within_the_window(engine: Engine) -> None:
    wall = Wall()
    keys, other_replica = DeliveryKeys(engine, now=wall), DeliveryKeys(engine, now=wall)
    assert keys.first("sha256:a")
    assert not keys.first("sha256:a")
    assert not other_replica.first("sha256:a")
    assert other_replica.first("sha256:b")
    wall.now += timedelta(minutes=11)  # past KEEP: a new delivery may reuse it
    assert other_replica.first("sha256:a")
    assert not keys.first("sha256:a")


def test_old_keys_are_pruned_on_insert(engine: Engine) -> None:
    wall = Wall()
    keys = DeliveryKeys(engine, now=wall)
    for n in range(5):
        keys.first(f"k{n}")
    wall.now += timedelta(minutes=30)
    keys.first("fresh")
    with session_scope(engine) as s:
        left = s.exec(select(col(SlackDelivery.key))).all()
    assert left == ["fresh"]


def test_the_model_matches_migration_0008(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    ours = [d for d in diff if "slack_delivery" in repr(d)]
    assert ours == []


# --- through the bot ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBot]:
    with running_bot(tmp_path_factory.mktemp("replay")) as running:
        yield running


def _changes(bot: RunningBot, vm: str) -> int:
    with session_scope(bot.ctx.engine) as s:
        return int(s.exec(select(func.count()).where(Change.vm_name == vm)).one())


def _command(bot: RunningBot, text: str, key: str) -> str:
    return urlencode(
        {
            "token": "legacy",
            "team_id": TEAM_ID,
            "team_domain": "test",
            "channel_id": "C0OPS",
            "channel_name": "ops",
            "user_id": "U0ALICE",
            "user_name": "alice",
            "command": "/checkpoint",
            "text": text,
            "api_app_id": "A0TEST",
            "is_enterprise_install": "false",
            "response_url": f"{bot.api.url}/response/{key}",
            "trigger_id": f"trigger.{key}",
        }
    )


def test_a_replayed_slash_command_makes_one_change(bot: RunningBot, tmp_path: Path) -> None:
    body = _command(bot, "create WEB02 --reason KB5044284", "replay1")
    stamp = int(time.time())
    first = bot.slack.post(body, FORM, timestamp=stamp)
    again = bot.slack.post(body, FORM, timestamp=stamp)  # byte for byte, same signature
    assert (first.status, again.status) == (200, 200)
    bot.api.wait_for(lambda cs: any(c.method == "response_url:replay1" for c in cs))
    time.sleep(0.5)  # time for a second change to appear, if it were made
    assert _changes(bot, "WEB02") == 1


def test_two_commands_with_the_same_text_are_two_deliveries(bot: RunningBot) -> None:
    """Not a replay: Slack gives each its own trigger_id and response_url."""
    for key in ("twice1", "twice2"):
        bot.slack.post(_command(bot, "create APP01 --reason KB1", key), FORM)
        bot.api.wait_for(lambda cs, k=key: any(c.method == f"response_url:{k}" for c in cs))
    assert _changes(bot, "APP01") == 2


def test_concurrent_askers_get_one_first_per_key(engine: Engine) -> None:
    """Keys are written in groups by one thread (a group commit): 200 asks
    for 50 keys from 40 threads and two replicas' objects, one True each."""
    from concurrent.futures import ThreadPoolExecutor

    replicas = [DeliveryKeys(engine), DeliveryKeys(engine)]
    asks = [(n % 2, f"sha256:k{n % 50}") for n in range(200)]
    with ThreadPoolExecutor(40) as pool:
        answers = list(pool.map(lambda a: (a[1], replicas[a[0]].first(a[1])), asks))
    firsts = [key for key, first in answers if first]
    assert sorted(firsts) == sorted({key for _, key in asks})
