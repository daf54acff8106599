"""A database outage as the people who asked see it.

The entry points (Slack, the CLI) do not reach into storage: they ask here
whether an error means the database could not be reached, and what can be
said truthfully about what was recorded (`bot.store.outage` counts the
committed writes of the current thread).
"""

from __future__ import annotations

from bot.store.outage import committed_writes, is_transient

__all__ = ["DATABASE_DOWN", "DATABASE_DOWN_PART_WAY", "committed_writes", "outage_message"]

DATABASE_DOWN = "the database is unavailable; nothing was changed, try again in a minute"
DATABASE_DOWN_PART_WAY = (
    "the database became unavailable part-way through; some of this may have been "
    "recorded, so look at the change (/checkpoint status) before trying again"
)


def outage_message(exc: BaseException, writes_before: int) -> str | None:
    """What to tell the person whose work raised `exc`, when it is an
    outage (None: it is not, so it is a bug). `writes_before`: the
    `committed_writes()` when the work began."""
    if not is_transient(exc):
        return None
    if committed_writes() == writes_before:
        return DATABASE_DOWN
    return DATABASE_DOWN_PART_WAY
