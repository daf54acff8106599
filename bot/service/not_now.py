"""Why an action cannot happen to a change in its current state, in words
for the person who clicked (the state machine's own message names
commands, which reads like an internal error)."""

from __future__ import annotations

from bot.changes import State

_VERB = {"rollback": "roll back", "merge": "keep & merge"}


def not_now(ref: str, state: State, action: str) -> str:
    """One sentence: what the change is doing or did, and what is left."""
    verb = _VERB.get(action, action)
    if state in (State.CREATING, State.MERGING, State.ROLLING_BACK):
        doing = state.value.replace("_", " ")
        return f"{ref} is already {doing}; the thread shows how it goes"
    if state is State.ROLLED_BACK:
        return f"{ref} was already rolled back; you can keep & merge or extend it now"
    if state is State.VANISHED:
        return f"{ref} lost its checkpoint (gone from the host): there is nothing left to {verb}"
    if state is State.MERGED:
        return f"{ref} was kept & merged; there is no checkpoint left to {verb}"
    if state is State.INTERRUPTED:
        return (
            f"{ref} was interrupted and the bot is checking the host; nothing else can "
            "happen to it until the thread says how it ended"
        )
    if state in (State.REQUESTED, State.AWAITING_APPROVAL, State.APPROVED, State.SCHEDULED):
        waiting = state.value.replace("_", " ")
        return f"{ref} has no checkpoint yet ({waiting}), so there is nothing to {verb}"
    return f"{ref} is {state.value.replace('_', ' ')}: no checkpoint exists for it to {verb}"
