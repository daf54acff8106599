"""Which events of a change get a reply in its thread: one reply per step
that matters (docs/slack-setup.md, "A quiet thread"). Pure decisions over the
record's events; the notifier posts what these say.

The root card always shows the change as it is now, so a reply is for what
a reader of the thread must notice: an approval asked for (the approvers
are pinged there), an approval given, a refusal or rejection, the host
work's outcome, a warning. What the card or the next reply already says is
left out: the request itself (the root is the request), the approve
transition that follows the approval reply, the start of host work (its
progress reply and its outcome reply tell it).
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.changes.views import ASKS_APPROVAL, SETTING_RESTORED, EventView

# The root message is the request; the outcome reply tells the host work. A
# CheckpointType set back is what the reply that raised it promised: told
# only when it could not be (its own, warning, reply).
_QUIET = frozenset(
    {"requested", "start_create", "start_rollback", "start_merge", "resume", SETTING_RESTORED}
)


def worth_a_reply(event: EventView, events: Sequence[EventView]) -> bool:
    """Whether `event` (one of `events`, in seq order) gets its own reply."""
    if event.kind in _QUIET:
        return False
    if event.kind == "approve" and event.actor != "policy":
        # The approval that completed the request was just posted ("approved
        # by <@U…> (1 of 1)"); the transition it caused says it again.
        return not _follows_approval(event, events)
    # The policy's own approval of a change that needs none: the card says so.
    return not (event.kind == "approve" and event.actor == "policy")


def _follows_approval(event: EventView, events: Sequence[EventView]) -> bool:
    before = [e for e in events if e.seq < event.seq]
    return bool(before) and before[-1].kind == "approval" and before[-1].actor == event.actor


def approvers_to_ping(event: EventView) -> tuple[str, ...]:
    """The Slack users an approval request names by id and asks to be
    messaged directly (the approvals rule's `dm: true`); groups are pinged
    in the thread by their mention."""
    if event.kind not in ASKS_APPROVAL:
        return ()
    approval = event.details.get("approval") or {}
    if not isinstance(approval, dict) or not approval.get("dm"):
        return ()
    excluded = set(approval.get("excluded") or ())
    users = [str(u) for u in approval.get("users") or () if u != "*" and u not in excluded]
    return tuple(u for u in users if u[:1] in ("U", "W"))
