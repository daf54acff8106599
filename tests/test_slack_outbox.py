"""The Slack outbox on SQLite and PostgreSQL: every write to a change
leaves an entry in its transaction, a drainer's lease keeps another off the
change, a sync that cannot finish backs off, a dead drainer's lease runs
out, and entries written during a sync are synced next, in order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.changes import Command
from bot.changes.record import get_change, note, open_change, transition
from bot.notify.outbox import LEASE, MAX_ATTEMPTS, OutboxDrainer, retry_after
from bot.store.db import session_scope
from bot.store.models import Change, SlackOutbox

T0 = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def new_change(engine: Engine, vm: str = "WEB01") -> int:
    """A change of `vm` waiting for its approval, recorded at T0."""
    with session_scope(engine) as s:
        change = open_change(
            s,
            Change(
                vm_id=f"vm-{vm}",
                vm_name=vm,
                host="HV01",
                checkpoint_type="production",
                reason="patch",
                requester="U0ALICE",
                channel="C0OPS",
                state="",
                ttl_seconds=3600,
            ),
            actor="U0ALICE",
            now=T0,
        )
        transition(s, change, Command.REQUEST_APPROVAL, actor="policy", now=T0)
        assert change.id is not None
        return change.id


def entries(engine: Engine, change_id: int) -> list[SlackOutbox]:
    with session_scope(engine) as s:
        return list(
            s.exec(
                select(SlackOutbox)
                .where(col(SlackOutbox.change_id) == change_id)
                .order_by(col(SlackOutbox.id))
            )
        )


def test_every_write_to_a_change_leaves_an_entry_in_its_transaction(engine: Engine) -> None:
    change_id = new_change(engine)
    assert len(entries(engine, change_id)) == 2  # opened, then moved
    with pytest.raises(RuntimeError), session_scope(engine) as s:
        note(s, get_change(s, change_id), kind="warning", actor="policy", now=T0, message="x")
        raise RuntimeError("the transaction rolls back")
    assert len(entries(engine, change_id)) == 2  # nor the entry without the write


def test_a_lease_keeps_a_second_drainer_off_the_change(engine: Engine) -> None:
    change_id = new_change(engine)
    clock = Clock()
    synced: list[tuple[str, int]] = []
    second = OutboxDrainer(engine, lambda c: synced.append(("second", c)) or True, "b", now=clock)

    def first_sync(c: int) -> bool:
        # While the first drainer holds the change, the second gets nothing.
        assert second.claim(c) is None and second.due() == []
        assert second.drain() == 0
        synced.append(("first", c))
        return True

    first = OutboxDrainer(engine, first_sync, "a", now=clock)
    assert first.due() == [change_id]
    assert first.drain() == 1
    assert synced == [("first", change_id)]
    assert all(e.done_at is not None and e.claimed_by == "a" for e in entries(engine, change_id))
    assert first.pending() == 0 and second.drain() == 0


def test_entries_written_during_a_sync_are_synced_next(engine: Engine) -> None:
    change_id = new_change(engine)
    seen: list[int] = []

    def sync(c: int) -> bool:
        seen.append(len(entries(engine, c)))
        if len(seen) == 1:  # the change moves while its thread is posted
            with session_scope(engine) as s:
                note(s, get_change(s, c), kind="warning", actor="policy", now=T0, message="x")
        return True

    drainer = OutboxDrainer(engine, sync, "a", now=Clock())
    assert drainer.drain_change(change_id)
    assert drainer.pending() == 1  # the new entry is not marked done unseen
    assert drainer.drain() == 1 and drainer.pending() == 0
    assert seen == [2, 3]


def test_an_unfinished_sync_backs_off_and_a_dead_drainers_lease_runs_out(engine: Engine) -> None:
    change_id = new_change(engine)
    clock = Clock()
    answers = iter([False, True])
    drainer = OutboxDrainer(engine, lambda _c: next(answers), "a", now=clock)
    assert not drainer.drain_change(change_id)
    left = entries(engine, change_id)
    assert {(e.attempts, e.done_at, e.lease_until) for e in left} == {(1, None, None)}
    assert drainer.due() == []  # backing off
    clock.now += retry_after(1)
    assert drainer.due() == [change_id] and drainer.drain() == 1

    # A drainer that claimed and died: its lease holds, then runs out.
    other = new_change(engine)
    dead = OutboxDrainer(engine, lambda _c: True, "dead", now=clock)
    assert dead.claim(other) is not None
    alive = OutboxDrainer(engine, lambda _c: True, "alive", now=clock)
    assert alive.drain() == 0
    clock.now += LEASE + timedelta(seconds=1)
    assert alive.drain() == 1 and alive.pending() == 0


def test_a_sync_that_keeps_failing_is_given_up_with_an_error(engine: Engine) -> None:
    change_id = new_change(engine)
    clock = Clock()

    def sync(_c: int) -> bool:
        raise ConnectionError("Slack unreachable")

    drainer = OutboxDrainer(engine, sync, "a", now=clock)
    for _ in range(MAX_ATTEMPTS):
        clock.now += timedelta(hours=1)
        assert not drainer.drain_change(change_id)
    assert drainer.pending() == 0
    assert {e.error for e in entries(engine, change_id)} == {"ConnectionError"}


@given(st.integers(min_value=0, max_value=10_000))
def test_backoff_grows_and_is_bounded(attempts: int) -> None:
    wait = retry_after(attempts)
    assert timedelta(0) <= wait <= timedelta(minutes=5)
    assert retry_after(attempts + 1) >= wait
    assert (wait == timedelta(0)) == (attempts == 0)
