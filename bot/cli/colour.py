"""Colour for a person at a terminal, never for a pipe, a file or a script.

On a terminal the verdict marks (✗ fired, ! warning, ✓ passed) and the
words that end badly (REFUSED, FAILED, an error) are coloured; the text is
the same either way. `NO_COLOR` set to anything but the empty string turns
colour off (https://no-color.org), as does `TERM=dumb`; output that is not a
terminal never gets an escape code, whatever the environment says.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import click

# (pattern, colour): the mark at a line's start, the verdict words anywhere.
_PAINT: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^(\s*)(✗)", re.MULTILINE), "red"),
    (re.compile(r"^(\s*)(!)", re.MULTILINE), "yellow"),
    (re.compile(r"^(\s*)(✓)", re.MULTILINE), "green"),
    (re.compile(r"()\b(REFUSED|FAILED|DENIED|WAITING FOR APPROVAL|NEEDS APPROVAL)\b"), "red"),
)


def wants_colour(env: Mapping[str, str], is_tty: bool) -> bool:
    """Colour only on a terminal, and never when NO_COLOR or TERM=dumb says not."""
    if env.get("NO_COLOR", "") != "":
        return False
    if env.get("TERM") == "dumb":
        return False
    return is_tty


def paint(text: str) -> str:
    """`text` with its marks and verdict words coloured (ANSI escapes)."""
    for pattern, colour in _PAINT:
        text = pattern.sub(_styler(colour), text)
    return text


def _styler(colour: str) -> Callable[[re.Match[str]], str]:
    def style(m: re.Match[str]) -> str:
        return m.group(1) + click.style(m.group(2), fg=colour, bold=True)

    return style
