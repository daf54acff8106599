"""What a library logs that the bot then says better itself.

pypsrp logs an ERROR, with a traceback, for a read or connect timeout on
a WinRM request before it raises it (pypsrp/wsman.py, `_send`: "ReadTimeout
during initial authentication request - attempt 0"); the bot has no retry
there (`retries_on_read_timeout` 0), so the raise always follows, and the
bot words it in its own line ("HV02 did not answer within …"). Seen: that
library line beside every retry line of a wave waiting on a host that
accepts connections and never answers. Dropped from what the CLI shows and
what `serve` and `worker` log; everything else a library says still shows.
"""

from __future__ import annotations

import logging

# pypsrp's own templates (record.msg, before its arguments are merged in).
_PYPSRP_RETRY = frozenset(
    {
        "%s during initial authentication request - attempt %d",
        "%s during WSMan request - attempt %d",
    }
)


class LibraryNoise(logging.Filter):
    """Drops the records above; lets every other one through."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name.startswith("pypsrp") and record.msg in _PYPSRP_RETRY)
