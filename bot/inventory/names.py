"""Which names are safe to resolve, and close matches for the ones that do not resolve.

Hyper-V cmdlets treat `-Name` as a wildcard pattern, and a name that ever ends up in a
shell or a PowerShell string could become code. So names are checked here, before any
lookup, and only a VMId resolved from the inventory ever travels to a host.
"""

from __future__ import annotations

from collections.abc import Iterable
from difflib import SequenceMatcher

from bot.inventory.errors import InvalidName

__all__ = ["FORBIDDEN_CHARACTERS", "MAX_NAME_LENGTH", "check_name", "name_problem", "suggest"]

MAX_NAME_LENGTH = 64

# Wildcards, shell and PowerShell metacharacters. The typographic quotes are there
# because PowerShell treats them as ordinary quotes, and Slack likes to "smarten" text.
FORBIDDEN_CHARACTERS = frozenset("*?[];|$`&<>'\"" + "\u2018\u2019\u201a\u201b\u201c\u201d\u201e")

_ALLOWED_HINT = "use letters, digits, spaces, '-', '_' or '.'"
_SUGGESTION_CUTOFF = 0.65
# Typing part of a name ("dc01" for CORP-DC01) is the commonest near miss.
_SUBSTRING_SCORE = 0.8
# Keep only suggestions nearly as good as the best one, so "WEB1" offers WEB01 and
# WEB02 but not STG-WEB01.
_SUGGESTION_SPREAD = 0.25


def name_problem(name: str) -> str | None:
    """Why `name` is not acceptable as a VM or host name, or None if it is."""
    if not name:
        return "is empty"
    for char in name:
        if char in FORBIDDEN_CHARACTERS:
            return (
                f"contains {char!r}, a wildcard or shell/PowerShell metacharacter; {_ALLOWED_HINT}"
            )
        # Not printable covers newlines, control characters, Unicode line separators
        # and invisible formatting characters that could disguise a name.
        if not char.isprintable():
            what = "a newline" if char in "\n\r\x0b\x0c\x85\u2028\u2029" else "a control character"
            return f"contains {what} (U+{ord(char):04X}); {_ALLOWED_HINT}"
    if len(name) > MAX_NAME_LENGTH:
        return f"is {len(name)} characters long; at most {MAX_NAME_LENGTH} are allowed"
    return None


def check_name(name: str, *, kind: str = "VM") -> str:
    """Return `name` unchanged, or raise InvalidName saying what is wrong with it."""
    problem = name_problem(name)
    if problem is not None:
        raise InvalidName(name, problem, kind=kind)
    return name


def suggest(name: str, candidates: Iterable[str], limit: int = 3) -> list[str]:
    """Up to `limit` candidates that look like `name`, best first."""
    wanted = name.casefold()

    def score(candidate: str) -> float:
        folded = candidate.casefold()
        ratio = SequenceMatcher(None, wanted, folded).ratio()
        return max(ratio, _SUBSTRING_SCORE) if wanted and wanted in folded else ratio

    scored = sorted(((score(c), c) for c in candidates), key=lambda pair: (-pair[0], pair[1]))
    if not scored or scored[0][0] < _SUGGESTION_CUTOFF:
        return []
    floor = max(_SUGGESTION_CUTOFF, scored[0][0] - _SUGGESTION_SPREAD)
    # Names ignore case, and an inventory refused for a duplicate name still
    # has it twice: one name is offered once ("did you mean WEB01, WEB01?").
    offered: dict[str, str] = {}
    for value, candidate in scored:
        if value >= floor:
            offered.setdefault(candidate.casefold(), candidate)
    return list(offered.values())[:limit]
