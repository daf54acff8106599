"""Times in Slack text become Slack's date tokens, so each reader sees
their own time zone (https://api.slack.com/reference/surfaces/formatting#date-formatting).

The record keeps times as UTC text ("2026-12-04 17:00 UTC", what the CLI and
`audit export` show); a message for Slack carries the same instant as
`<!date^UNIX^{date_short_pretty} {time}|2026-12-04 17:00 UTC>`, whose
fallback is that UTC text for clients that cannot format it. A time inside
a token's fallback is left alone, and a text that would outgrow its Block
Kit limit keeps its UTC times (the token is longer than the text).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

# What `short_time` (templates/__init__.py) and the service write: minutes, UTC.
_UTC_TIME = re.compile(r"(?<![|\d])(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})(?::\d{2})? UTC\b")
DATE_FORMAT = "{date_short_pretty} {time}"
# A token may not push a text past the smallest limit it can sit under
# (a field or a context element: 2,000 characters, see templates/blocks.py).
MAX_TEXT = 2000


def date_token(at: datetime, fallback: str, fmt: str = DATE_FORMAT) -> str:
    """`at` as Slack's date token with `fallback` for clients that cannot format it."""
    instant = at if at.tzinfo else at.replace(tzinfo=UTC)
    return f"<!date^{int(instant.timestamp())}^{fmt}|{fallback}>"


def localize_times(text: str) -> str:
    """Every "YYYY-MM-DD HH:MM UTC" in `text` as a date token (pure)."""

    def token(m: re.Match[str]) -> str:
        year, month, day, hour, minute = (int(g) for g in m.groups())
        try:
            at = datetime(year, month, day, hour, minute, tzinfo=UTC)
        except ValueError:
            return m.group(0)  # not a date after all (month 13): leave the text
        return date_token(at, m.group(0))

    changed = _UTC_TIME.sub(token, text)
    return changed if len(changed) <= max(MAX_TEXT, len(text)) else text


def localize_blocks(node: Any) -> Any:
    """A copy of a Block Kit tree with every mrkdwn text's UTC times as tokens
    (plain_text cannot format dates, so it is left as it is)."""
    if isinstance(node, list):
        return [localize_blocks(item) for item in node]
    if not isinstance(node, dict):
        return node
    if node.get("type") == "mrkdwn" and isinstance(node.get("text"), str):
        return {**node, "text": localize_times(node["text"])}
    return {key: localize_blocks(value) for key, value in node.items()}
