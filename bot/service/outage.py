"""A database outage as the people who asked see it.

The entry points (Slack, the CLI) do not reach into storage: they ask here
whether an error means the database could not be reached, and what can be
said truthfully about what was recorded (`bot.store.outage` counts the
committed writes of the current thread). A statement naming a table or
column the database lacks is no outage: its schema does not match this
release (`schema_mismatch_message`), and trying again changes nothing.
"""

from __future__ import annotations

from bot.config import ConfigError
from bot.store.db import bad_connection_option, tls_refused
from bot.store.outage import committed_writes, is_transient, schema_mismatch
from bot.store.pg_tls import TLS_HINT

__all__ = [
    "DATABASE_DOWN",
    "DATABASE_DOWN_PART_WAY",
    "committed_writes",
    "misconfigured_database",
    "outage_message",
    "schema_mismatch_message",
]

DATABASE_DOWN = "the database is unavailable; nothing was changed, try again in a minute"
_PART_WAY = (
    "the database became unavailable part-way through; some of this may have been "
    "recorded, so look at the change ({look}) before trying again"
)
DATABASE_DOWN_PART_WAY = _PART_WAY.format(look="/checkpoint status")


def outage_message(
    exc: BaseException, writes_before: int, *, look: str = "/checkpoint status"
) -> str | None:
    """What to tell the person whose work raised `exc`, when it is an
    outage (None: it is not, so it is a bug). `writes_before`: the
    `committed_writes()` when the work began; `look`: how that person sees
    a change (Slack's command, or the CLI's). Anything but DATABASE_DOWN
    means something was recorded: its outcome is unknown, not "try again"."""
    if not is_transient(exc):
        return None
    if committed_writes() == writes_before:
        return DATABASE_DOWN
    return _PART_WAY.format(look=look)


def schema_mismatch_message(exc: BaseException) -> str | None:
    """One line for a statement that named a table or column the database
    lacks, with the database's own words and never the statement (None for
    any other error). Not an outage: `db status` names what is missing and
    whether `db upgrade` adds it."""
    said = schema_mismatch(exc)
    if said is None:
        return None
    return (
        f"the database's schema does not match this release ({said}): "
        "run 'checkpoint-bot db status'"
    )


def misconfigured_database(exc: BaseException, label: str) -> ConfigError | None:
    """`exc` as the configuration error it is when the driver refused one
    of the database URL's connection options (an invalid sslmode, an
    unknown option, a non-integer timeout), else None. The driver raises
    these as it does an unreachable server, but no retry can fix them:
    whoever opens the database says so instead of "try again". `label` is
    the settings' `database_label` (its password hidden)."""
    said = bad_connection_option(exc)
    if said is None:
        refused = tls_refused(exc)
        if refused is None:
            return None
        return ConfigError(
            f"the database {label} answered, but not over TLS this bot can verify: "
            f"{refused}; {TLS_HINT}"
        )
    return ConfigError(
        f"the database URL {label} has a connection option the driver refuses: {said}; "
        "fix DATABASE_URL (or database_url_file)"
    )
