"""The batch's state is a pure function of its members' states: for any
members, it is the one the documented table (bot/changes/batch_state.py,
docs/batches.md) names, whatever their order and however many were refused
or withdrawn; and the progress line's numbers add up to the members,
whichever action of the wave it speaks of, a member never being "done"
unless it is where that action leaves one."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.changes import State
from bot.changes.batch_state import PART_OF, Action, BatchState, Part, Tally, batch_state

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
    unknown = Part.UNKNOWN in live
    assert (got is BatchState.EMPTY) == (not states)
    withdrawn = State.WITHDRAWN in states
    # A wave nobody refused is never called refused: withdrawn is its own word.
    assert (got is BatchState.REFUSED) == (bool(states) and not live and not withdrawn)
    assert (got is BatchState.WITHDRAWN) == (bool(states) and not live and withdrawn)
    assert (got is BatchState.RUNNING) == busy
    assert (got is BatchState.AWAITING_APPROVAL) == (waiting and not busy)
    assert (got is BatchState.SCHEDULED) == (scheduled and not waiting and not busy)
    on_its_way = busy or waiting or scheduled
    # A member interrupted, its outcome unknown until the reconciler asks
    # its host: the wave is interrupted, never (partly) failed for it.
    assert (got is BatchState.INTERRUPTED) == (unknown and not on_its_way)
    settled = bool(live) and not on_its_way and not unknown
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
    """The progress line's numbers by their words: "2 of 3 rolled back,
    1 not rolled back" is {"done": 2, "of": 3, "rolled back": 2,
    "not rolled back": 1}."""
    said: dict[str, int] = {}
    for part in text.split(", "):
        words = part.split()
        if words[1] == "of":
            said |= {"done": int(words[0]), "of": int(words[2])}
            said[" ".join(words[3:])] = int(words[0])
        else:
            assert " ".join(words[1:]) not in said, text
            said[" ".join(words[1:])] = int(words[0])
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
    failed = states.count(State.FAILED)
    # Interrupted: neither done nor failed until the reconciler settles it.
    unknown = states.count(State.INTERRUPTED)
    refused = sum(s in (State.DENIED, State.EXPIRED) for s in states)
    rejected = states.count(State.REJECTED)
    withdrawn = states.count(State.WITHDRAWN)
    assert said.get("failed", 0) == failed
    assert said.get("outcome unknown", 0) == unknown
    assert said.get("refused", 0) == refused
    assert said.get("rejected", 0) == rejected
    assert said.get("withdrawn", 0) == withdrawn
    taking_part = len(states) - refused - rejected - withdrawn
    # "0 of 0 done" says nothing: a wave nobody took part in is its counts alone.
    assert said.get("of") == (taking_part or None)
    done = sum(s in (State.ACTIVE, State.ROLLED_BACK, State.MERGED, State.VANISHED) for s in states)
    assert said.get("done", 0) == done
    assert done + failed + unknown <= taking_part


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
    # One taken, one failed, one interrupted: neither is done, and the one
    # interrupted is not failed either (the host may have taken it).
    taken = [State.ACTIVE, State.FAILED, State.INTERRUPTED]
    assert Tally.of(taken).describe() == "1 of 3 done, 1 failed, 1 outcome unknown"
    assert batch_state(taken) is BatchState.INTERRUPTED


# Where a member stands once each action did what it was asked, written
# out here rather than read from the code: a create took its checkpoint
# (whatever became of it since), a Roll back all restored it, a Keep & merge
# all ended it (merged, or its checkpoint already gone).
DID_IT = {
    Action.CREATE: {State.ACTIVE, State.ROLLED_BACK, State.MERGED, State.VANISHED},
    Action.ROLLBACK: {State.ROLLED_BACK},
    Action.MERGE: {State.MERGED, State.VANISHED},
}
WORD = {Action.CREATE: "done", Action.ROLLBACK: "rolled back", Action.MERGE: "merged"}
FAILED = (State.FAILED,)
ASIDE = (State.DENIED, State.EXPIRED, State.REJECTED, State.WITHDRAWN)


@given(members, st.sampled_from(list(Action)))
def test_after_each_action_the_numbers_add_up_and_done_means_that_action(
    states: list[State], action: Action
) -> None:
    """After a Roll back all, "37 of 40 done" counted 13 members still
    active as done; now each number counts its own members once, and "done"
    only those the action left where it leaves a member."""
    tally = Tally.of(states, action)
    said = _said(tally.describe()) if states else {}
    did = sum(s in DID_IT[action] for s in states)
    assert tally.done == said.get("done", 0) == did
    taking_part = len(states) - sum(s in ASIDE for s in states)
    assert said.get("of") == (taking_part or None)
    if taking_part:
        assert said[WORD[action]] == did
    failed = sum(s in FAILED for s in states)
    assert said.get("failed", 0) == failed
    unknown = states.count(State.INTERRUPTED)
    assert said.get("outcome unknown", 0) == unknown
    busy = sum(
        PART_OF[s] in (Part.PENDING, Part.RUNNING, Part.WAITING, Part.SCHEDULED) for s in states
    )
    # Every member taking part is said once: done, failed, of unknown
    # outcome, on its way (in "of" only), or settled in its own words.
    others = sum(n for word, n in tally.left)
    assert did + others + failed + unknown + busy == taking_part
    assert tally.settled == did + others + failed
    # Nothing else is done in other words: a member still active after a
    # Roll back all is "not rolled back", one holding a checkpoint after a
    # Keep & merge all "not merged".
    if action is Action.ROLLBACK:
        assert said.get("not rolled back", 0) == states.count(State.ACTIVE)
    if action is Action.MERGE:
        holding = states.count(State.ACTIVE) + states.count(State.ROLLED_BACK)
        assert said.get("not merged", 0) == holding
    # The create's line is as it always was.
    if action is Action.CREATE:
        assert tally.describe() == Tally.of(states).describe()
        assert tally.done == tally.settled - failed


def test_the_on_calls_wave_after_roll_back_all() -> None:
    wave = (
        [State.DENIED] * 2
        + [State.ROLLED_BACK] * 24
        + [State.ACTIVE] * 13
        + [State.INTERRUPTED] * 2
        + [State.FAILED]
    )
    # Two interrupted: what the wave comes to waits on the reconciler.
    assert batch_state(wave) is BatchState.INTERRUPTED
    assert Tally.of(wave).describe() == "37 of 40 done, 1 failed, 2 outcome unknown, 2 refused"
    assert Tally.of(wave, Action.ROLLBACK).describe() == (
        "24 of 40 rolled back, 13 not rolled back, 1 failed, 2 outcome unknown, 2 refused"
    )
    settled = [s for s in wave if s is not State.INTERRUPTED]
    assert batch_state(settled) is BatchState.PARTLY_FAILED
    kept = [State.MERGED] * 5 + [State.VANISHED, State.ACTIVE, State.ROLLED_BACK]
    assert Tally.of(kept, Action.MERGE).describe() == "6 of 8 merged, 2 not merged"
    # Merged or gone since a Roll back all: never said to be rolled back.
    since = [State.ROLLED_BACK, State.MERGED, State.VANISHED]
    assert Tally.of(since, Action.ROLLBACK).describe() == (
        "1 of 3 rolled back, 1 merged, 1 vanished"
    )
