"""What the service layer raises to its callers (CLI, Slack, playground).

ServiceError            message: one line a person can act on
├── BadRequest          the input was wrong; nothing was written
├── NotFound            no such change, VM or checkpoint
│   └── NotOnCluster    no node of the VM's cluster has it (bot.service.locate)
├── Forbidden           the one asking may not do this
├── Conflict            the change's state does not allow this now
│   ├── Stale           a button or command acted on what is no longer waiting
│   └── Ambiguous       more than one request could be meant (bot.service.binding)
└── Unavailable         a host or dependency could not be reached
    ├── HostUnavailable the host a decision needs did not answer (bot.service.locate)
    └── OwnerAmbiguous  two nodes report the VM's VMId (bot.service.locate)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from bot.changes import State
from bot.domain import ChangeRef
from bot.hyperv.errors import HostAuthError, HostTimeout, HostUnreachable, HyperVError

if TYPE_CHECKING:
    # Named in a signature only: a command that never reads the inventory
    # does not load it (bench/cli_start.py).
    from bot.inventory.errors import InventoryLookupError


class ServiceError(Exception):
    # Whether `message` is the bot's own words, naming people only with
    # bot.domain's mention helpers and holding nothing a person typed: Slack
    # then shows its mention tokens as people (handlers' `refusal`), where
    # anyone else's text is escaped. Set by the errors that name someone.
    names_people: ClassVar[bool] = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ServiceError):
    pass


class NotFound(ServiceError):
    pass


class Forbidden(ServiceError):
    # Who may do it instead, in the policy's words.
    names_people = True


class Conflict(ServiceError):
    pass


class Unavailable(ServiceError):
    pass


# The boundary: lower layers' errors become the service's, in one place each
# (the CLI and Slack render the service's tree, never a host's or the
# inventory's own exceptions).


def from_inventory(exc: InventoryLookupError) -> BadRequest:
    """A name the inventory does not know (or cannot be a name): the person
    typed it, so it is their input that was wrong; nothing was written."""
    return BadRequest(str(exc))


def from_host(exc: HyperVError) -> ServiceError:
    """A host's failure: one it may recover from (unreachable, timed out,
    credentials refused) is Unavailable, never a refusal; anything else is
    what the host refused, in its own words."""
    if isinstance(exc, HostUnreachable | HostTimeout | HostAuthError):
        return Unavailable(str(exc))
    return ServiceError(f"the host refused: {exc.message}")


# What a person is told when the change moved on between what they saw and
# what they did: what was kept of their act, and what to do now.
Meanwhile = Literal["look again", "nothing was done, look again", "nothing was recorded, try again"]


def changed_meanwhile(change_id: int, while_you: str, then: Meanwhile = "look again") -> Conflict:
    """The one sentence for a change that moved while someone `while_you`
    (asked, approved, rejected, answered)."""
    return Conflict(f"{ChangeRef(change_id)} changed while you {while_you}; {then}")


# Why an action cannot happen to a change in its current state, in words for
# the person who clicked (the state machine's own message names commands,
# which reads like an internal error).
_VERB = {"rollback": "roll back", "merge": "keep & merge"}


def not_now(ref: str, state: State, action: str, *, awaits_human: bool = False) -> str:
    """One sentence: what the change is doing or did, and what is left.
    `awaits_human`: an interrupted change the host could not settle, which
    waits for a person to say how it ended (the reconciler's question)."""
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
    if state is State.INTERRUPTED and awaits_human:
        # Seen: "the bot is checking the host" for a change nobody but a
        # person could settle, and no word of how to settle it.
        return (
            f"{ref} was interrupted and its host cannot tell how it ended: the requester or "
            "an admin says what happened, with the buttons in its thread in Slack, or "
            f"`checkpoint-bot change resolve {ref} OUTCOME` on the CLI; nothing else can "
            "happen to it until then"
        )
    if state is State.INTERRUPTED:
        return (
            f"{ref} was interrupted and the bot is checking the host; nothing else can "
            "happen to it until the thread says how it ended"
        )
    if state in (State.REQUESTED, State.AWAITING_APPROVAL, State.APPROVED, State.SCHEDULED):
        waiting = state.value.replace("_", " ")
        return f"{ref} has no checkpoint yet ({waiting}), so there is nothing to {verb}"
    return f"{ref} is {state.value.replace('_', ' ')}: no checkpoint exists for it to {verb}"
