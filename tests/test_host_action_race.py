"""Two writers on one change at the same moment, on SQLite and PostgreSQL:
the other write lands between a read of the change and its conditional
update, from another connection, as another process's would.

- A rollback or merge a person asked (bot/service/requests.py
  `begin_host_action`): a note moves only the version, so the request goes
  ahead, once; a move of state is refused in the words of the state it is
  in now. Nothing is half-done either way: one job, one event.
- An extension: counted from the expiry the policy was asked about, it
  goes ahead past a note and is refused if that expiry moved meanwhile.
- A person's answer to an interrupted change (bot/service/reconcile.py
  `resolve`): recorded past a note.
- What already happened (bot/changes/record.py `recording`): a job's step
  after the host acted, and a TTL reminder whose slot is claimed, are
  written after the other note instead of being lost.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.changes import Command
from bot.changes.record import get_change, note, transition
from bot.clock import ManualClock
from bot.context import AppContext, build_context
from bot.service import Conflict, extend, request_checkpoint, show_change
from bot.service.reconcile import Reconciler, resolve
from bot.service.requests import apply_extension, begin_host_action
from bot.service.ttl_chase import TTLChaser
from bot.store.db import session_scope
from bot.store.tables import change_ref
from bot.store.tables.jobs import Job
from policies import Action
from tests.helpers import settings_for


@pytest.fixture
def ctx(
    tmp_path: Path, pg_engine: Engine, pg_database_url: str, clock: ManualClock
) -> Iterator[AppContext]:
    """On PostgreSQL: its sessions read before they lock, so another
    process's write can land in between (on SQLite every writing session
    begins IMMEDIATE and the other writer waits: see
    `test_on_sqlite_the_other_writer_waits_for_the_request`)."""
    # No consumer: the jobs stay queued where the test can count them.
    settings = settings_for(tmp_path, pg_database_url)
    context = build_context(settings, clock=clock, huey_kind="memory")
    try:
        yield context
    finally:
        context.close()


def _active(ctx: AppContext, vm: str = "WEB01") -> int:
    out = request_checkpoint(ctx, vm, reason="KB5044284", requester="alice")
    assert out.job_id is not None
    ctx.runner.run(out.job_id)
    change = show_change(ctx, out.change.ref)
    assert change.state == "active"
    return change.id


def _state(ctx: AppContext, change_id: int) -> str:
    return show_change(ctx, change_ref(change_id)).state


@contextmanager
def overtaken(engine: Engine, times: int, write: Callable[[], None]) -> Iterator[list[int]]:
    """Run `write` (on its own connection) just before each of the next
    `times` conditional updates of a change; yields how many ran."""
    ran: list[int] = []
    writing: list[bool] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        # The other writer's own update is not overtaken in turn.
        if writing or len(ran) >= times:
            return
        if statement.lstrip().upper().startswith("UPDATE CHANGE "):
            ran.append(1)
            writing.append(True)
            try:
                write()
            finally:
                writing.clear()

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield ran
    finally:
        event.remove(engine, "before_cursor_execute", before)


def _noting(ctx: AppContext, change_id: int, kind: str, actor: str) -> Callable[[], None]:
    """Another process's note on the change, as a write to run later."""

    def write() -> None:
        with session_scope(ctx.engine) as s:
            note(
                s,
                get_change(s, change_id),
                kind=kind,
                actor=actor,
                now=ctx.clock(),
                message=f"a {kind} from another process",
            )

    return write


def _remind(ctx: AppContext, change_id: int) -> Callable[[], None]:
    return _noting(ctx, change_id, "ttl_reminder", "ttl_chase")


def _jobs(ctx: AppContext, change_id: int, kind: str) -> int:
    with session_scope(ctx.engine) as s:
        found = s.exec(
            select(Job).where(col(Job.change_id) == change_id, col(Job.kind) == kind)
        ).all()
        return len(found)


@pytest.mark.postgres
@pytest.mark.parametrize("action", [Action.ROLLBACK, Action.MERGE])
def test_a_note_that_lands_first_does_not_turn_the_request_away(
    ctx: AppContext, action: Action
) -> None:
    change_id = _active(ctx)
    with overtaken(ctx.engine, 1, _remind(ctx, change_id)) as ran:
        job_id = begin_host_action(ctx, change_id, action, "bob")
    assert ran == [1]
    change = show_change(ctx, change_ref(change_id))
    assert change.state == {Action.ROLLBACK: "rolling_back", Action.MERGE: "merging"}[action]
    kinds = [e.kind for e in change.events]
    assert kinds[-2:] == ["ttl_reminder", f"start_{action.value}"]
    assert _jobs(ctx, change_id, action.value) == 1
    assert ctx.ledger.get(job_id).change_id == change_id


@pytest.mark.postgres
def test_a_change_that_keeps_changing_is_told_and_nothing_is_started(
    ctx: AppContext,
) -> None:
    change_id = _active(ctx)
    before = len(show_change(ctx, change_ref(change_id)).events)
    with overtaken(ctx.engine, 3, _remind(ctx, change_id)), pytest.raises(Conflict) as told:
        begin_host_action(ctx, change_id, Action.MERGE, "bob")
    assert told.value.message.endswith("changed while you asked; nothing was done, look again")
    change = show_change(ctx, change_ref(change_id))
    assert change.state == "active"
    assert [e.kind for e in change.events][before:] == ["ttl_reminder"] * 3
    assert _jobs(ctx, change_id, "merge") == 0


@pytest.mark.postgres
def test_a_state_moved_by_the_other_writer_is_refused_in_its_words(ctx: AppContext) -> None:
    """Keep & merge is allowed from rolled back too, but bob asked it of an
    active change: a rollback that ended meanwhile is his to see first."""
    change_id = _active(ctx)

    def someone_else_rolled_back() -> None:
        with session_scope(ctx.engine) as s:
            change = get_change(s, change_id)
            for command in (Command.START_ROLLBACK, Command.ROLLED_BACK):
                transition(s, change, command, actor="carol", now=ctx.clock())

    with overtaken(ctx.engine, 1, someone_else_rolled_back), pytest.raises(Conflict) as told:
        begin_host_action(ctx, change_id, Action.MERGE, "bob")
    assert told.value.message == (
        f"{change_ref(change_id)} was already rolled back; you can keep & merge or extend it now"
    )
    assert _state(ctx, change_id) == "rolled_back"
    assert _jobs(ctx, change_id, "merge") == 0


def test_on_sqlite_the_other_writer_waits_for_the_request(
    tmp_path: Path, sqlite_engine: Engine, sqlite_url: str, clock: ManualClock
) -> None:
    """SQLite has one writer at a time and the bot's sessions take the lock
    when they begin (bot/store/db.py): a note that comes at the same moment
    waits, and lands after the request."""
    context = build_context(settings_for(tmp_path, sqlite_url), clock=clock, huey_kind="memory")
    try:
        change_id = _active(context)
        writer: list[threading.Thread] = []

        def in_another_thread() -> None:
            writer.append(threading.Thread(target=_remind(context, change_id)))
            writer[0].start()
            writer[0].join(timeout=0.5)  # it cannot get in
            assert writer[0].is_alive()

        with overtaken(context.engine, 1, in_another_thread) as ran:
            begin_host_action(context, change_id, Action.MERGE, "bob")
        writer[0].join(timeout=30)
        assert ran == [1] and not writer[0].is_alive()
        change = show_change(context, change_ref(change_id))
        assert [e.kind for e in change.events][-2:] == ["start_merge", "ttl_reminder"]
        assert change.state == "merging"
        assert _jobs(context, change_id, "merge") == 1
    finally:
        context.close()


@pytest.mark.postgres
def test_a_job_records_what_the_host_did_after_a_note_that_came_first(ctx: AppContext) -> None:
    """The restore ran; a note landing between the job's read of the change
    and its update must not lose the record of it (bot/changes/record.py
    `recording`). A staging VM: its rollback needs no approval, so the
    job's re-check lets it run."""
    change_id = _active(ctx, "STG-WEB01")
    job_id = begin_host_action(ctx, change_id, Action.ROLLBACK, "bob")
    with overtaken(ctx.engine, 1, _remind(ctx, change_id)) as ran:
        ctx.runner.run(job_id)
    assert ran == [1]
    change = show_change(ctx, change_ref(change_id))
    assert change.state == "rolled_back"
    kinds = [e.kind for e in change.events]
    assert kinds[-2:] == ["ttl_reminder", "rolled_back"]
    assert ctx.ledger.get(job_id).state == "succeeded"


@pytest.mark.postgres
def test_a_ttl_reminder_overtaken_by_another_note_is_still_told(
    ctx: AppContext, clock: ManualClock
) -> None:
    """The reminder's slot is claimed before its note is written: a note
    lost to another writer's would never be written again."""
    change_id = _active(ctx)
    clock.advance(timedelta(hours=48, minutes=1))  # 72 h TTL, reminded 24 h before

    another_process_warns = _noting(ctx, change_id, "warning", "checkpoint-bot")
    with overtaken(ctx.engine, 1, another_process_warns) as ran:
        TTLChaser(ctx).tick(clock())
    assert ran == [1]
    kinds = [e.kind for e in show_change(ctx, change_ref(change_id)).events]
    assert kinds[-2:] == ["warning", "ttl_reminder"]


@pytest.mark.postgres
def test_an_extension_goes_ahead_past_a_note_and_not_past_another_extension(
    ctx: AppContext,
) -> None:
    """Extending counts from the expiry the policy was asked about: a note
    that lands first is read past; another extension that lands first
    means the person's new expiry was counted from a stale one."""
    change_id = _active(ctx)
    ref = change_ref(change_id)
    before = show_change(ctx, ref).expires_at
    assert before is not None
    with overtaken(ctx.engine, 1, _remind(ctx, change_id)) as ran:
        extend(ctx, ref, "24h", requester="bob")
    assert ran == [1]
    change = show_change(ctx, ref)
    assert change.expires_at == before + timedelta(hours=24)
    assert [e.kind for e in change.events][-2:] == ["ttl_reminder", "extended"]

    def carol_extends() -> None:
        with session_scope(ctx.engine) as s:
            current = get_change(s, change_id)
            assert current.expires_at is not None
            apply_extension(
                s, current, current.expires_at + timedelta(hours=48), "carol", ctx.clock()
            )

    with overtaken(ctx.engine, 1, carol_extends), pytest.raises(Conflict) as told:
        extend(ctx, ref, "1h", requester="bob")
    assert told.value.message == f"{ref} changed while you asked; look again"
    change = show_change(ctx, ref)
    assert change.expires_at == before + timedelta(hours=72)
    assert [e.actor for e in change.events if e.kind == "extended"] == ["bob", "carol"]


@pytest.mark.postgres
def test_an_extension_counted_from_an_expiry_that_moved_while_the_policy_was_asked_is_refused(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, bob's +1h counted from the old expiry was written over
    carol's +48h, taking 47 hours away."""
    change_id = _active(ctx)
    ref = change_ref(change_id)
    before = show_change(ctx, ref).expires_at
    assert before is not None
    decide = ctx.decider.decide

    def carol_extends_meanwhile(*args: Any, **kwargs: Any) -> Any:
        decision = decide(*args, **kwargs)
        with session_scope(ctx.engine) as s:
            current = get_change(s, change_id)
            apply_extension(s, current, before + timedelta(hours=48), "carol", ctx.clock())
        return decision

    monkeypatch.setattr(ctx.decider, "decide", carol_extends_meanwhile)
    with pytest.raises(Conflict) as told:
        extend(ctx, ref, "1h", requester="bob")
    assert told.value.message == f"{ref} changed while you asked; look again"
    assert show_change(ctx, ref).expires_at == before + timedelta(hours=48)


@pytest.mark.postgres
def test_an_answer_to_an_interrupted_change_is_recorded_past_a_note(
    ctx: AppContext, clock: ManualClock
) -> None:
    """A person's answer (`change resolve`) is a request on what they saw:
    a note landing at its update (the reconciler's reminder, say) moves
    only the version, and the answer is recorded once."""
    change_id = _active(ctx)
    job_id = begin_host_action(ctx, change_id, Action.ROLLBACK, "bob")
    assert ctx.ledger.claim(job_id, "dead-host:1:deadbeef").won
    assert ctx.ledger.mark_sent(job_id, "dead-host:1:deadbeef")  # mid-restore
    clock.advance(ctx.ledger.lock_stale_after + timedelta(seconds=1))
    Reconciler(ctx).tick(clock())
    assert _state(ctx, change_id) == "interrupted"
    with overtaken(ctx.engine, 1, _noting(ctx, change_id, "reminder", "reconciler")) as ran:
        done = resolve(ctx, change_ref(change_id), "rolled_back", who="alice")
    assert ran == [1]
    assert done.state == "rolled_back"
    assert [e.kind for e in done.events][-2:] == ["reminder", "reconcile_rolled_back"]
    assert done.events[-1].actor == "alice"
