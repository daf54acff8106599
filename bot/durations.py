"""Human durations: `90m`, `24h`, `7d`, `1d12h`, `2w`."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d{1,6})\s*([smhdw])")
_WHOLE = re.compile(r"^(?:\d{1,6}\s*[smhdw]\s*)+$")


class DurationError(ValueError):
    def __init__(self, text: str) -> None:
        super().__init__(
            f"'{text}' is not a duration: use a number and a unit (s, m, h, d, w), "
            "like 90m, 24h, 7d or 1d12h"
        )
        self.text = text


def parse_duration(text: str) -> timedelta:
    cleaned = text.strip().lower()
    if not _WHOLE.match(cleaned):
        raise DurationError(text)
    seconds = sum(int(n) * _UNITS[u] for n, u in _PART.findall(cleaned))
    if seconds <= 0:
        raise DurationError(text)
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """Two most significant units: `3d 4h`, `45m`, `12s`; negative → `-…`."""
    total = int(delta.total_seconds())
    sign = "-" if total < 0 else ""
    total = abs(total)
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if total >= size or (unit == "s" and not parts):
            parts.append(f"{total // size}{unit}")
            total %= size
        if len(parts) == 2:
            break
    return sign + " ".join(parts)
