"""Changes: the lifecycle table and the change record."""

from bot.changes.lifecycle import (
    FINAL_STATES,
    HOLDS_CHECKPOINT,
    IN_FLIGHT,
    RESOLUTIONS,
    TRANSITIONS,
    Command,
    IllegalTransition,
    State,
    Transition,
    allowed_commands,
    apply,
    next_state,
    still_wanted,
)

__all__ = [
    "FINAL_STATES",
    "HOLDS_CHECKPOINT",
    "IN_FLIGHT",
    "RESOLUTIONS",
    "TRANSITIONS",
    "Command",
    "IllegalTransition",
    "State",
    "Transition",
    "allowed_commands",
    "apply",
    "next_state",
    "still_wanted",
]
