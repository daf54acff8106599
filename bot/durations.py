"""Human durations: `90m`, `24h`, `7d`, `1d12h`, `2w`.

Every duration is bounded here, where it is parsed: a TTL, an extension, a
window or a timeout longer than `MAX_DURATION` is refused with the maximum
in the message, so no caller meets an overflow (a TTL past PostgreSQL's
INTEGER column, an expiry past year 9999, a `timedelta` past its range).
"""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+)\s*([smhdw])")
_WHOLE = re.compile(r"^(?:\d+\s*[smhdw]\s*)+$")
# `-1h`, `- 2d`: a duration written below zero, told apart from noise.
_NEGATIVE = re.compile(r"^-\s*(?:\d+\s*[smhdw]\s*)+$")


# A year (and a day for leap years): far beyond any checkpoint's useful
# life or any setting's, and far inside every column and date it reaches.
MAX_DURATION = timedelta(days=366)
_MAX_SHOWN = "366d (a year)"
# Longer texts are refused before any arithmetic: no real duration needs it.
_MAX_TEXT = 64


# A number with no unit after it (`24`, `1h30`): what was most likely meant
# is the next smaller unit after the last one given, hours for a bare number.
_BARE = re.compile(r"^\d+$")
_TRAILING = re.compile(r"^(?:\d+\s*[smhdw]\s*)+(\d+)$")
_NEXT_SMALLER = {"w": "d", "d": "h", "h": "m", "m": "s"}


def _meant(cleaned: str) -> str | None:
    """What a duration missing its last unit most likely meant."""
    if _BARE.match(cleaned):
        return f"{int(cleaned)}h"
    if _TRAILING.match(cleaned):
        last = _PART.findall(cleaned)[-1][1]
        smaller = _NEXT_SMALLER.get(last)
        return f"{cleaned.replace(' ', '')}{smaller}" if smaller else None
    return None


class DurationError(ValueError):
    def __init__(
        self,
        text: str,
        *,
        too_long: bool = False,
        not_positive: bool = False,
        meant: str | None = None,
    ) -> None:
        shown = text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "…"
        if meant is not None:
            message = (
                f"'{shown}' is not a duration: its last number has no unit; did you mean "
                f"{meant}? (units: s, m, h, d, w, like 90m, 24h, 7d or 1d12h)"
            )
        elif too_long:
            message = f"'{shown}' is too long: a duration is at most {_MAX_SHOWN}"
        elif not_positive:
            message = (
                f"'{shown}' is not more than zero: a duration is positive, like 90m, 24h or 7d"
            )
        else:
            message = (
                f"'{shown}' is not a duration: use a number and a unit (s, m, h, d, w), "
                "like 90m, 24h, 7d or 1d12h"
            )
        super().__init__(message)
        self.text = text
        self.too_long = too_long
        self.not_positive = not_positive


def parse_duration(text: str) -> timedelta:
    """A positive duration of at most `MAX_DURATION`, or `DurationError`."""
    cleaned = text.strip().lower()
    if len(cleaned) > _MAX_TEXT:
        raise DurationError(text, too_long=bool(_WHOLE.match(cleaned)))
    if _NEGATIVE.match(cleaned):
        raise DurationError(text, not_positive=True)
    if not _WHOLE.match(cleaned):
        if _BARE.match(cleaned) and int(cleaned) == 0:
            raise DurationError(text, not_positive=True)
        raise DurationError(text, meant=_meant(cleaned))
    seconds = sum(int(n) * _UNITS[u] for n, u in _PART.findall(cleaned))
    if seconds <= 0:
        raise DurationError(text, not_positive=True)
    if seconds > MAX_DURATION.total_seconds():
        raise DurationError(text, too_long=True)
    return timedelta(seconds=seconds)


_SHOWN_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def format_duration(delta: timedelta) -> str:
    """A duration as a person reads it: its largest unit and the next one
    down, rounded to that (`3d 4h`, `2h 5m`, `45m`, `12s`), the second left
    out when it rounds to zero (`33d`, never `33d 11s`: a leftover of a unit
    two steps down is noise beside days); negative → `-…`. The one way the
    bot shows a duration."""
    total = abs(round(delta.total_seconds()))
    sign = "-" if total and delta.total_seconds() < 0 else ""
    if total < 60:
        return f"{sign}{total}s"
    i = next(i for i, (_, size) in enumerate(_SHOWN_UNITS) if total >= size)
    step = _SHOWN_UNITS[i + 1][1]
    # Rounded to the next unit down, half up. That may carry into the unit
    # above (23h 59m 40s is 1d), so the largest unit is found afresh; a
    # carry lands on a whole one, with nothing left for the second unit.
    rounded = (total + step // 2) // step * step
    j = next(j for j, (_, size) in enumerate(_SHOWN_UNITS) if rounded >= size)
    (unit, size), (small_unit, small_size) = _SHOWN_UNITS[j], _SHOWN_UNITS[j + 1]
    first, rest = divmod(rounded, size)
    second = rest // small_size
    return f"{sign}{first}{unit}" + (f" {second}{small_unit}" if second else "")
