"""Reasons: why a change is asked for, in the requester's words.

One normaliser for every way a reason arrives (the slash command's grammar,
the create modal's multi-line field, the CLI), so each says the same thing
about the same text and what one accepts the others accept:

- the record keeps the reason as written: new lines and tabs included,
  only the surrounding white space trimmed;
- a reason is refused when it is empty, longer than `MAX_REASON`, or holds
  a character that is neither printable nor white space (NUL, ESC, a
  bidirectional override): those are never part of what someone meant.
  The two joining controls are text, not control: ZERO WIDTH NON-JOINER
  (U+200C) is how Persian spells "به‌روزرسانی", and ZERO WIDTH JOINER
  (U+200D) makes one emoji of 👩 and 💻 (The Unicode Standard, 23.2
  "Layout Controls", https://www.unicode.org/versions/latest/core-spec/chapter-23/);
- where one line is needed (a Hyper-V checkpoint name, whose rules forbid
  control characters), `one_line` gives the single-line form.
"""

from __future__ import annotations

MAX_REASON = 500
EXAMPLE = "KB5044284 patch"
# Why someone rejects a request: the Reject… form's placeholder and the
# example its empty reason is told, so the two never disagree.
REJECT_EXAMPLE = "Not during the quarter-end close"
# Format characters that belong to the words they sit in (see above).
JOINERS = frozenset({"\u200c", "\u200d"})


def _is_text(c: str) -> bool:
    return c.isprintable() or c in JOINERS


class ReasonError(ValueError):
    """What is wrong with a reason, in words for the person who typed it."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.missing = missing


def check_reason(text: str | None, *, what: str = "reason", example: str = EXAMPLE) -> str:
    """The reason as it is recorded (trimmed, otherwise as written), or
    `ReasonError`. `what` names it in the message (`the reason`);
    `example` is what a missing one is told to look like: a request's by
    default, a rejection's (`REJECT_EXAMPLE`) where a request is rejected."""
    cleaned = (text or "").strip()
    if not cleaned:
        raise ReasonError(f"a {what} is required: say why, e.g. {example}", missing=True)
    if len(cleaned) > MAX_REASON:
        raise ReasonError(
            f"the {what} is {len(cleaned)} characters long; keep it under {MAX_REASON}"
        )
    bad = next((c for c in cleaned if not (_is_text(c) or c.isspace())), None)
    if bad is not None:
        raise ReasonError(
            f"the {what} contains a control character (U+{ord(bad):04X}); use plain text "
            "(new lines and tabs are fine)"
        )
    return cleaned


def one_line(text: object) -> str:
    """`text` on one line: every run of white space or other unprintable
    characters becomes one space (a record from before `check_reason`, or
    a reason with new lines, still makes a valid checkpoint name; a table's
    cell or a list's line keeps its place). What is not text is written as
    `str` does (a template's value)."""
    visible = "".join(c if _is_text(c) else " " for c in str(text))
    return " ".join(visible.split())
