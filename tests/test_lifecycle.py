"""The transition table, and the record that enforces it."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from bot.changes import FINAL_STATES, TRANSITIONS, Command, IllegalTransition, State, next_state
from bot.changes.record import ConcurrentUpdate, events_of, get_change, open_change, transition
from bot.store.db import make_engine, session_scope
from bot.store.migrate import upgrade
from bot.store.models import Change

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
commands = st.lists(st.sampled_from(list(Command)), max_size=40)


def _reachable() -> set[State]:
    seen, frontier = {State.REQUESTED}, [State.REQUESTED]
    while frontier:
        state = frontier.pop()
        for edges in TRANSITIONS.values():
            target = edges.get(state)
            if target is not None and target not in seen:
                seen.add(target)
                frontier.append(target)
    return seen


def test_every_state_is_reachable_and_final_states_are_final() -> None:
    assert _reachable() == set(State)
    for state in FINAL_STATES:
        assert not any(state in edges for edges in TRANSITIONS.values())


def test_illegal_transition_says_what_was_expected() -> None:
    with pytest.raises(IllegalTransition) as err:
        next_state(State.MERGED, Command.START_ROLLBACK)
    assert str(err.value) == "cannot start rollback a change that is merged (expected: active)"
    assert err.value.allowed == ()


@given(commands)
def test_random_commands_only_follow_the_table(seq: list[Command]) -> None:
    state = State.REQUESTED
    for command in seq:
        allowed = TRANSITIONS[command]
        try:
            new = next_state(state, command)
        except IllegalTransition:
            assert state not in allowed
            continue
        assert allowed[state] == new
        state = new
    assert state in _reachable()


@pytest.fixture(scope="module")
def record_engine() -> Iterator[Engine]:
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'lifecycle.db'}")
        upgrade(engine)
        yield engine
        engine.dispose()


def _new_change(engine: Engine) -> int:
    with session_scope(engine) as s:
        change = open_change(
            s,
            Change(
                vm_id="vm",
                vm_name="WEB01",
                host="HV01",
                checkpoint_type="production",
                reason="patch",
                requester="alice",
                state="",
                ttl_seconds=3600,
            ),
            actor="alice",
            now=T0,
        )
        assert change.id is not None
        return change.id


@settings(max_examples=40, deadline=None)
@given(commands)
def test_every_accepted_transition_appends_exactly_one_event(
    record_engine: Engine, seq: list[Command]
) -> None:
    change_id = _new_change(record_engine)
    accepted: list[tuple[State, State]] = []
    for i, command in enumerate(seq):
        try:
            with session_scope(record_engine) as s:
                change = get_change(s, change_id)
                before = State(change.state)
                transition(s, change, command, actor="bob", now=T0 + timedelta(seconds=i))
                accepted.append((before, State(change.state)))
        except IllegalTransition:
            pass
    with session_scope(record_engine) as s:
        events = events_of(s, change_id)
        final = State(get_change(s, change_id).state)
    assert [e.seq for e in events] == list(range(1, len(accepted) + 2))
    assert [(e.from_state, e.to_state) for e in events[1:]] == [
        (a.value, b.value) for a, b in accepted
    ]
    assert final == (accepted[-1][1] if accepted else State.REQUESTED)


def test_stale_writer_loses(record_engine: Engine) -> None:
    change_id = _new_change(record_engine)
    with session_scope(record_engine) as s:
        stale = get_change(s, change_id)
    with session_scope(record_engine) as s:
        transition(s, get_change(s, change_id), Command.APPROVE, actor="a", now=T0)
    with pytest.raises(ConcurrentUpdate), session_scope(record_engine) as s:
        s.add(stale)
        transition(s, stale, Command.DENY, actor="b", now=T0)
    with session_scope(record_engine) as s:
        assert get_change(s, change_id).state == "approved"
        assert len(events_of(s, change_id)) == 2


@given(st.sampled_from(list(State)), st.sampled_from(["rollback", "merge"]))
def test_every_refusal_reads_as_words_not_commands(state: State, action: str) -> None:
    from bot.service.errors import not_now

    text = not_now("CHG-0042", state, action)
    assert text.startswith("CHG-0042 ")
    assert "_" not in text and "expected" not in text and "cannot" not in text
