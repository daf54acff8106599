"""What a Slack user is told when their request failed unexpectedly.

A listener notes `committed_writes()` before its work; if the work then
fails because the database could not be reached, the answer says plainly
that nothing was changed only when no write of this work was committed,
and otherwise that part of it may have been recorded
(`bot.service.outage`). Anything else is a bug: logged with its traceback,
answered with the generic text.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.service import DATABASE_DOWN, outage_message
from handlers import messages
from handlers.deps import SlackDeps

__all__ = ["DATABASE_DOWN", "failure"]

log = logging.getLogger(__name__)


def failure(deps: SlackDeps, exc: Exception, writes_before: int, what: str) -> dict[str, Any]:
    """The answer to `exc`, raised by the work on `what` (a log label)."""
    said = outage_message(exc, writes_before)
    if said is None:
        log.error(messages.log_unexpected(what), exc_info=exc)
        return deps.error(messages.UNEXPECTED)
    log.warning("%s: the database is unavailable (%s)", what, type(exc).__name__)
    return deps.error(said)
