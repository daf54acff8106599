"""App Homes across processes (bot/notify/homes.py) on SQLite and
PostgreSQL: a process with no Slack app records the change it synced, a
serving process claims each record once, a dead claimer's lease runs out,
and migration 0016 adds and drops the table. The end-to-end path (a worker
process finishes a create, a `serve --no-worker` replica publishes the
requester's Home) is tests/test_multiprocess.py's."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from slack_sdk import WebClient
from sqlalchemy import inspect
from sqlalchemy.engine import Engine

from bot.changes.batch_record import open_batch
from bot.notify.homes import KEEP, LEASE, StaleHomes
from bot.notify.thread import ThreadNotifier
from bot.service import request_checkpoint
from bot.store.db import session_scope
from bot.store.migrate import downgrade, upgrade
from bot.store.models import Batch, Change
from templates import Renderer
from templates.blocks import SlackRenderer
from tests.migration_support import BACKENDS, engine_at
from tests.slack_support import BOT_TOKEN, Call, FakeSlackApi, running_bot
from tests.test_slack_outbox import T0, Clock, new_change


def test_a_change_recorded_twice_before_a_claim_is_one_row(engine: Engine) -> None:
    homes = StaleHomes(engine, now=Clock())
    first, second = new_change(engine, "WEB01"), new_change(engine, "APP01")
    homes.record(first)
    homes.record(first)
    homes.record(second)
    assert homes.pending() == 2
    claim = homes.claim("serve-a")
    assert claim.change_ids == (first, second) and len(claim.ids) == 2
    # Claimed rows are being published from the change as it was then: a
    # move after the claim is recorded again, for the next round.
    homes.record(first)
    assert homes.pending() == 3
    homes.done(claim)
    assert homes.pending() == 1
    assert homes.claim("serve-a").change_ids == (first,)


def test_two_serving_processes_claim_each_row_once(engine: Engine) -> None:
    homes = StaleHomes(engine)
    changes = [new_change(engine, f"VM{n:02d}") for n in range(40)]
    for change_id in changes:
        homes.record(change_id)
    won: dict[str, list[int]] = {"a": [], "b": []}
    start = threading.Barrier(2)

    def claimer(owner: str) -> None:
        start.wait()
        while claim := homes.claim(owner, limit=3):
            won[owner] += claim.change_ids

    threads = [threading.Thread(target=claimer, args=(o,)) for o in won]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(won["a"] + won["b"]) == sorted(changes)
    assert not set(won["a"]) & set(won["b"])


def test_a_dead_claimers_lease_runs_out_and_its_done_deletes_nothing(engine: Engine) -> None:
    clock = Clock()
    homes = StaleHomes(engine, now=clock)
    change_id = new_change(engine)
    homes.record(change_id)
    dead = homes.claim("serve-dead")
    assert dead.change_ids == (change_id,)
    assert not homes.claim("serve-live")  # held
    clock.now += LEASE + timedelta(seconds=1)
    live = homes.claim("serve-live")
    assert live.change_ids == (change_id,)
    # The first claimer wakes up late: the row is no longer its to delete.
    homes.done(dead)
    assert homes.pending() == 1
    homes.done(live)
    assert homes.pending() == 0


def test_rows_no_serving_process_took_are_pruned_after_a_day(engine: Engine) -> None:
    clock = Clock()
    old, new = new_change(engine, "WEB01"), new_change(engine, "APP01")
    StaleHomes(engine, now=clock).record(old)
    clock.now += KEEP + timedelta(minutes=1)
    StaleHomes(engine, now=clock).record(new)  # a new recorder prunes on its first record
    assert StaleHomes(engine, now=clock).claim("serve").change_ids == (new,)


# --- who records: the thread notifier of a process without a Slack app ------------------


@pytest.fixture
def notifier(engine: Engine) -> Iterator[ThreadNotifier]:
    with FakeSlackApi() as api:
        client = WebClient(token=BOT_TOKEN, base_url=api.api_url)
        threads = ThreadNotifier(
            engine,
            client,
            SlackRenderer(Renderer()),
            default_channel="C0OPS",
            demo=False,
            start_after_restore=False,
        )
        try:
            yield threads
        finally:
            threads.close()


def test_a_process_without_a_home_renderer_records_the_synced_change(
    engine: Engine, notifier: ThreadNotifier
) -> None:
    change_id = new_change(engine)
    assert notifier.sync(change_id)
    assert StaleHomes(engine).claim("serve").change_ids == (change_id,)


def test_a_process_with_a_home_renderer_tells_it_and_records_nothing(
    engine: Engine, notifier: ThreadNotifier
) -> None:
    told: list[int] = []
    notifier.listen(told.append)
    change_id = new_change(engine)
    assert notifier.sync(change_id)
    assert told == [change_id]
    assert StaleHomes(engine).pending() == 0


# --- migration 0016 -------------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def engine_before_0016(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A database at schema 0015 (before this table), on each backend."""
    with engine_at(request, tmp_path, "0015") as engine:
        yield engine


def test_0016_adds_the_stale_home_table_and_goes_back(engine_before_0016: Engine) -> None:
    assert "stale_home" not in inspect(engine_before_0016).get_table_names()
    upgrade(engine_before_0016, "0016")
    assert "stale_home" in inspect(engine_before_0016).get_table_names()
    change_id = new_change(engine_before_0016)
    StaleHomes(engine_before_0016).record(change_id)
    assert StaleHomes(engine_before_0016).claim("serve").change_ids == (change_id,)
    downgrade(engine_before_0016, "0015")
    assert "stale_home" not in inspect(engine_before_0016).get_table_names()


# --- who publishes: a serving process's tick ----------------------------------------------


def test_a_serving_process_publishes_what_another_left_on_its_tick(tmp_path: Path) -> None:
    with running_bot(tmp_path, jobs={"tick_seconds": 0.2}) as bot:
        out = request_checkpoint(
            bot.ctx, "WEB01", reason="KB5044284", requester="U0ALICE", channel="C0OPS",
            source="slack",
        )  # fmt: skip
        assert out.job_id is not None
        assert bot.ctx.ledger.wait(out.job_id, timeout=30).state == "succeeded"
        line = f"*{out.change.ref}* · WEB01 on HV01 · active"

        def alices(calls: list[Call]) -> list[str]:
            return [
                json.dumps(c.body["view"], ensure_ascii=False)
                for c in calls
                if c.method == "views.publish" and c.body.get("user_id") == "U0ALICE"
            ]

        # This process's own refresh (its notifier's listener) comes first.
        bot.api.wait_for(lambda calls: any(line in h for h in alices(calls)))
        time.sleep(1.0)  # its rounds are over
        before = len(alices(bot.api.calls))
        # What a worker process leaves (bot/notify/homes.py): published on a
        # tick of this one, and the row deleted once it is.
        homes = StaleHomes(bot.ctx.engine)
        homes.record(out.change.id)
        published = bot.api.wait_for(lambda calls: len(alices(calls)) > before)
        assert line in alices(published)[-1]
        deadline = time.monotonic() + 10
        while homes.pending() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert homes.pending() == 0


def test_a_batch_members_sync_records_its_change_too(
    engine: Engine, notifier: ThreadNotifier
) -> None:
    """A wave's member moving (taken, failed, rolled back) leaves its Homes
    for a serving process as a lone change does: its requester's "Your
    open changes" shows the wave's progress."""
    with session_scope(engine) as s:
        batch = open_batch(
            s,
            Batch(
                requester="U0ALICE",
                reason="wave",
                checkpoint_type="production",
                ttl_seconds=3600,
                channel="C0OPS",
            ),
            now=T0,
            details={},
        )
        batch_id = batch.id
    change_id = new_change(engine)
    with session_scope(engine) as s:
        change = s.get(Change, change_id)
        assert change is not None
        change.batch_id = batch_id
    assert notifier.sync(change_id)
    assert StaleHomes(engine).claim("serve").change_ids == (change_id,)
