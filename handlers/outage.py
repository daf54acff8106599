"""What a Slack user is told when their request hit a database outage.

A listener notes `committed_writes()` before its work; if the work then
fails because the database could not be reached, the answer says plainly
that nothing was changed only when no write of this work was committed,
and otherwise that part of it may have been recorded. Anything else is a
bug: logged with its traceback, answered with the generic text.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.store.outage import committed_writes, is_transient
from handlers import messages
from handlers.deps import SlackDeps

log = logging.getLogger(__name__)

DATABASE_DOWN = "the database is unavailable; nothing was changed, try again in a minute"
DATABASE_DOWN_PART_WAY = (
    "the database became unavailable part-way through; some of this may have been "
    "recorded, so look at the change (/checkpoint status) before trying again"
)


def failure(deps: SlackDeps, exc: Exception, writes_before: int, what: str) -> dict[str, Any]:
    """The answer to `exc`, raised by the work on `what` (a log label)."""
    if not is_transient(exc):
        log.error(messages.log_unexpected(what), exc_info=exc)
        return deps.error(messages.UNEXPECTED)
    log.warning("%s: the database is unavailable (%s)", what, type(exc).__name__)
    if committed_writes() == writes_before:
        return deps.error(DATABASE_DOWN)
    return deps.error(DATABASE_DOWN_PART_WAY)
