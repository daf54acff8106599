"""Which changes get no Slack thread because they settled long before any
process could post one (docs/operations-failures.md, "The Slack outbox").

Apart from the thread notifier, so that `checkpoint-bot outbox` can say how
many waiting changes will get none without loading the Slack SDK.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.changes.lifecycle import FINAL_STATES, State
from bot.store.tables.changes import Change

# A change that was settled this long ago and never had a thread gets none:
# no process could tell Slack while it happened (Slack was not configured
# yet, or could not be reached for that long). Opening threads for all of
# them at once would fill the channel with history; the record keeps them
# (`change show`, `audit export`).
UNPOSTED_HORIZON = timedelta(days=1)


def too_late_for_a_thread(change: Change, now: datetime) -> bool:
    """Whether `change` settled more than `UNPOSTED_HORIZON` before `now`
    (the record's clock) without a thread of its own."""
    return (
        change.thread_ts is None
        and State(change.state) in FINAL_STATES
        and now - change.updated_at > UNPOSTED_HORIZON
    )
