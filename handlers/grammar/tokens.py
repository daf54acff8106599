"""Splitting slash-command text into words the way people type it into Slack.

Slack clients "smarten" what people type: straight quotes become typographic
ones (U+201C/U+201D, U+2018/U+2019), and `--` becomes an em dash (U+2014) or,
on some keyboards, an en dash (U+2013). Slack also
sends `&`, `<` and `>` as HTML entities. All of that is undone here, so the
parser only ever sees plain words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Token", "Unterminated", "option_parts", "tokenize", "unescape_slack"]

_DOUBLE = frozenset('"\u201c\u201d\u201e\u201f')
_SINGLE = frozenset("'\u2018\u2019\u201a\u201b")
# `--name`, or an em/en dash (alone or with one hyphen) then the name; optional `=value`.
_OPTION = re.compile(
    r"(?:--|-?[\u2013\u2014]-?)(?P<name>[^\W\d_][^\s=]*)(?:=(?P<value>.*))?", re.DOTALL
)


@dataclass(frozen=True)
class Token:
    text: str
    quoted: bool = False  # began with a quote: a value, never an option


class Unterminated(ValueError):
    def __init__(self, opener: str, fragment: str) -> None:
        super().__init__(f"unterminated {opener}")
        self.opener = opener
        self.fragment = fragment


def unescape_slack(text: str) -> str:
    """Undo Slack's escaping of `&`, `<` and `>` (`&amp;` last, so `&amp;lt;` stays `&lt;`)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def tokenize(text: str) -> list[Token]:
    """Words separated by any whitespace; quotes group words and are removed.

    Double quotes open anywhere (`--reason="a b"`). Single quotes open only at the
    start of a word or after `=`, and close only before a non-letter, so that the
    apostrophes in `don't` (straight or typographic) stay text. Raises Unterminated.
    """
    tokens: list[Token] = []
    buf: list[str] = []
    started = quoted = False
    closers: frozenset[str] | None = None
    opener, opened_at = "", 0
    for i, ch in enumerate(text):
        if closers is not None:
            at_word_end = i + 1 >= len(text) or not text[i + 1].isalnum()
            if ch in closers and (closers is _DOUBLE or at_word_end):
                closers = None
            else:
                buf.append(ch)
        elif ch.isspace():
            if started:
                tokens.append(Token("".join(buf), quoted))
            buf, started, quoted = [], False, False
        elif ch in _DOUBLE or (ch in _SINGLE and (not buf or buf[-1] == "=")):
            quoted = quoted or not started
            started = True
            closers = _DOUBLE if ch in _DOUBLE else _SINGLE
            opener, opened_at = ch, i
        else:
            started = True
            buf.append(ch)
    if closers is not None:
        raise Unterminated(opener, text[opened_at + 1 :].strip())
    if started:
        tokens.append(Token("".join(buf), quoted))
    return tokens


def option_parts(token: Token) -> tuple[str, str | None] | None:
    """`--ttl=4h` → ("ttl", "4h"); `—ttl` → ("ttl", None); a non-option → None.

    Only dashes followed by a letter make an option: a lone `--` or `—` is text
    (people write "patch — round 2"), and so is anything that began with a quote.
    """
    if token.quoted:
        return None
    match = _OPTION.fullmatch(token.text)
    if match is None:
        return None
    return match.group("name"), match.group("value")
