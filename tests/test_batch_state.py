"""The batch's state is a pure function of its members' states: for any
members, it is the one the documented table (bot/changes/batch_state.py,
docs/batches.md) names, whatever their order and however many were refused
or withdrawn; and the progress line's numbers add up to the members."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.changes import State
from bot.changes.batch_state import PART_OF, BatchState, Part, Tally, batch_state

members = st.lists(st.sampled_from(list(State)), max_size=60)
# Members that never took part: refused, or withdrawn by their requester.
aside = st.lists(
    st.sampled_from([State.DENIED, State.REJECTED, State.EXPIRED, State.WITHDRAWN]), max_size=10
)


def _parts(states: list[State]) -> set[Part]:
    return {PART_OF[s] for s in states} - {Part.REFUSED, Part.REJECTED, Part.WITHDRAWN}


def test_every_state_has_a_part() -> None:
    assert set(PART_OF) == set(State)


@given(members)
def test_the_state_is_the_documented_function(states: list[State]) -> None:
    """Each batch state holds exactly when its row of the table does, so the
    rows are checked one by one against the members, not against the code."""
    got = batch_state(states)
    live = _parts(states)
    busy = bool(live & {Part.PENDING, Part.RUNNING})
    waiting = Part.WAITING in live
    scheduled = Part.SCHEDULED in live
    assert (got is BatchState.EMPTY) == (not states)
    withdrawn = State.WITHDRAWN in states
    # A wave nobody refused is never called refused: withdrawn is its own word.
    assert (got is BatchState.REFUSED) == (bool(states) and not live and not withdrawn)
    assert (got is BatchState.WITHDRAWN) == (bool(states) and not live and withdrawn)
    assert (got is BatchState.RUNNING) == busy
    assert (got is BatchState.AWAITING_APPROVAL) == (waiting and not busy)
    assert (got is BatchState.SCHEDULED) == (scheduled and not waiting and not busy)
    settled = bool(live) and not busy and not waiting and not scheduled
    assert (got is BatchState.FAILED) == (settled and live == {Part.FAILED})
    assert (got is BatchState.PARTLY_FAILED) == (
        settled and Part.FAILED in live and live != {Part.FAILED}
    )
    for part, state in (
        (Part.ACTIVE, BatchState.ACTIVE),
        (Part.ROLLED_BACK, BatchState.ROLLED_BACK),
        (Part.ENDED, BatchState.DONE),
    ):
        assert (got is state) == (settled and live == {part})
    mixed = settled and Part.FAILED not in live and len(live) > 1
    assert (got is BatchState.MIXED) == mixed


@given(members, st.randoms())
def test_order_does_not_matter(states: list[State], rnd: object) -> None:
    shuffled = list(states)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert batch_state(shuffled) is batch_state(states)


@given(members.filter(lambda s: bool(_parts(s))), aside)
def test_refused_or_withdrawn_members_never_change_a_batch_that_ran(
    states: list[State], set_aside: list[State]
) -> None:
    assert batch_state(states + set_aside) is batch_state(states)


def _said(text: str) -> dict[str, int]:
    """The progress line's numbers by their word: "2 of 3 done, 1 failed"
    is {"done": 2, "of": 3, "failed": 1}."""
    said: dict[str, int] = {}
    for part in text.split(", "):
        words = part.split()
        if words[1] == "of":
            said |= {"done": int(words[0]), "of": int(words[2])}
        else:
            said[words[1]] = int(words[0])
    return said


@given(members)
def test_the_tally_says_each_member_once_in_its_own_word(states: list[State]) -> None:
    """Every number of the progress line is true: a failed member is never
    done, a withdrawn one never refused, a rejected one (an approver's
    decision) never refused (the policy's), and the words add up."""
    tally = Tally.of(states)
    assert tally.total == len(states)
    assert 0 <= tally.done <= tally.settled <= tally.taking_part <= tally.total
    said = _said(tally.describe()) if states else {}
    failed = sum(s in (State.FAILED, State.INTERRUPTED) for s in states)
    refused = sum(s in (State.DENIED, State.EXPIRED) for s in states)
    rejected = states.count(State.REJECTED)
    withdrawn = states.count(State.WITHDRAWN)
    assert said.get("failed", 0) == failed
    assert said.get("refused", 0) == refused
    assert said.get("rejected", 0) == rejected
    assert said.get("withdrawn", 0) == withdrawn
    taking_part = len(states) - refused - rejected - withdrawn
    # "0 of 0 done" says nothing: a wave nobody took part in is its counts alone.
    assert said.get("of") == (taking_part or None)
    done = sum(s in (State.ACTIVE, State.ROLLED_BACK, State.MERGED, State.VANISHED) for s in states)
    assert said.get("done", 0) == done
    assert done + failed <= taking_part


def test_a_wave_of_ten_with_two_refused() -> None:
    wave = [State.DENIED] * 2 + [State.ACTIVE] * 7 + [State.FAILED]
    assert batch_state(wave) is BatchState.PARTLY_FAILED
    assert Tally.of(wave).describe() == "7 of 8 done, 1 failed, 2 refused"
    assert batch_state([State.DENIED] * 2 + [State.ACTIVE] * 8) is BatchState.ACTIVE
    after_rollback = [State.ROLLED_BACK] * 7 + [State.ACTIVE]
    assert batch_state(after_rollback) is BatchState.MIXED
    assert batch_state([State.CREATING, State.ACTIVE]) is BatchState.RUNNING
    # A wave asked for at a time waits as a whole; a withdrawn one is withdrawn.
    assert batch_state([State.SCHEDULED] * 3 + [State.DENIED]) is BatchState.SCHEDULED
    assert Tally.of([State.SCHEDULED] * 3 + [State.DENIED]).describe() == "0 of 3 done, 1 refused"
    withdrawn = [State.WITHDRAWN] * 3 + [State.DENIED]
    assert batch_state(withdrawn) is BatchState.WITHDRAWN
    assert Tally.of(withdrawn).describe() == "1 refused, 3 withdrawn"
    assert batch_state([State.DENIED] * 2) is BatchState.REFUSED
    # One taken, two failed: the failures are not done.
    taken = [State.ACTIVE, State.FAILED, State.INTERRUPTED]
    assert Tally.of(taken).describe() == "1 of 3 done, 2 failed"
