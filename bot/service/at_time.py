"""`--at`: a checkpoint (or a wave) at a chosen time, not only "now" or
"when the window opens" (docs/batches.md "At a time").

What was typed is read on a wall clock: the zone written after it, else
the requester's (their Slack profile's `tz`, from users.info:
https://api.slack.com/methods/users.info), else the configured
`defaults.timezone`. The answer always says which zone it used. The
policy's change windows still apply: an instant outside a window the VM
must be changed in is refused, with the next opening, before anything is
recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.clock import utc_text
from bot.service.errors import BadRequest
from policies import Decision

EXAMPLE = '--at "2026-12-10 22:00"'
# The rule whose firing at `--at` means "not then" (policies/rules/schedule.py).
WINDOW_RULE = "change_window"


@dataclass(frozen=True)
class AtTime:
    """An `--at` read: the instant, and the wall clock it was read on."""

    instant: datetime  # aware, UTC
    zone: str  # an IANA key ("Europe/Berlin") or a fixed offset ("+01:00")
    # Where the zone came from: "typed", "slack" (the requester's profile)
    # or "configured" (defaults.timezone).
    source: str

    @property
    def local_text(self) -> str:
        """`2026-12-10 22:00 Europe/Berlin`: as the requester meant it."""
        return f"{self.instant.astimezone(_zone(self.zone)):%Y-%m-%d %H:%M} {self.zone}"

    @property
    def said(self) -> str:
        """The instant with the zone it was read in and why, for the CLI:
        `2026-12-10 22:00 Europe/Berlin (2026-12-10 21:00 UTC)`."""
        why = {
            "typed": "",
            "slack": "your Slack time zone",
            "configured": "no zone given: the configured defaults.timezone",
        }[self.source]
        if self.zone == "UTC":
            return utc_text(self.instant) + (f" ({why})" if why else "")
        return f"{self.local_text} ({utc_text(self.instant)}{', ' + why if why else ''})"


def _zone(key: str) -> tzinfo:
    if key.startswith(("+", "-")):
        fixed = datetime.fromisoformat(f"2000-01-01T00:00{key}").tzinfo
        assert fixed is not None
        return fixed
    return ZoneInfo(key)


def zone_of(key: str | None) -> ZoneInfo | None:
    """A zone from its IANA key; None when there is none or it is unknown."""
    if not key:
        return None
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def parse_at(text: str, default: ZoneInfo, *, source: str) -> AtTime:
    """Read `--at`: "2026-12-10 22:00", optionally followed by a zone
    ("Europe/Berlin", "UTC") or written with an offset ("2026-12-10T22:00+01:00",
    "…Z"). Without one, it is read in `default` (said to be from `source`).
    A wall-clock time the clocks skip (the spring-forward gap) is refused;
    in the repeated autumn hour the first one counts (zoneinfo's fold=0)."""
    words = text.strip().split()
    if not words:
        raise BadRequest(f"--at needs a date and a time, e.g. {EXAMPLE}")
    zone: ZoneInfo | None = None
    if len(words) > 1 and not words[-1][:1].isdigit():
        zone = zone_of("UTC" if words[-1].upper() in ("UTC", "Z", "GMT") else words[-1])
        if zone is None:
            raise BadRequest(
                f"--at: unknown time zone '{words[-1]}': write an IANA zone like "
                "Europe/Berlin, or UTC"
            )
        words = words[:-1]
    written = " ".join(words)
    try:
        parsed = datetime.fromisoformat(written)
    except ValueError:
        raise BadRequest(
            f"--at: '{text.strip()}' is not a date and time: write it like {EXAMPLE} "
            "(year-month-day hour:minute, optionally a zone such as Europe/Berlin)"
        ) from None
    if len(written) <= 10:
        raise BadRequest(f"--at: '{text.strip()}' has no time of day: write it like {EXAMPLE}")
    if parsed.tzinfo is not None:
        if zone is not None:
            raise BadRequest("--at: give either an offset or a zone name, not both")
        offset = parsed.utcoffset() or timedelta(0)
        key = "UTC" if offset == timedelta(0) else parsed.strftime("%z")
        key = key if key == "UTC" else f"{key[:3]}:{key[3:]}"
        return AtTime(parsed.astimezone(UTC), key, "typed")
    where = zone or default
    local = parsed.replace(tzinfo=where)
    instant = local.astimezone(UTC)
    if instant.astimezone(where).replace(tzinfo=None) != parsed:
        raise BadRequest(
            f"--at: {parsed:%Y-%m-%d %H:%M} does not exist in {where.key} (the clocks "
            "go forward then): pick a time outside the skipped hour"
        )
    return AtTime(instant, where.key, "typed" if zone is not None else source)


def check_future(at: AtTime, now: datetime) -> None:
    if at.instant <= now:
        raise BadRequest(
            f"--at {at.local_text} is in the past (it is {utc_text(now)} now): "
            "give a later time, or leave --at out to take it now"
        )


def window_refusal(decision: Decision) -> tuple[str, datetime | None] | None:
    """(why, next opening) when the change-window rule fired for a decision
    made as of `--at`, whatever its effect (a deny, or a schedule for later:
    either way not at that time); None when `--at` falls in a window or
    none applies."""
    for outcome in decision.outcomes:
        if outcome.rule == WINDOW_RULE and outcome.fired:
            return outcome.message, outcome.schedule_at
    return None


def outside_window(at: AtTime, refused: list[tuple[str, str, datetime | None]]) -> BadRequest:
    """The refusal of an `--at` outside VMs' change windows: why, for each
    VM (VM, the rule's words, its next opening after `--at`), and the time
    to ask for instead."""
    parts = [f"{vm}: {why}" for vm, why, _ in refused]
    text = f"--at {at.local_text} is outside a change window ({'; '.join(parts)})"
    openings = [when for _, _, when in refused if when is not None]
    if openings:
        # The latest of the next openings: none of them is open before it.
        latest = max(openings)
        local = latest.astimezone(_zone(at.zone))
        zone = "" if at.zone == "UTC" else f" {at.zone}"
        text += f'; ask for --at "{local:%Y-%m-%d %H:%M}{zone}" ({utc_text(latest)}) or later'
    return BadRequest(text + "; nothing was recorded")
