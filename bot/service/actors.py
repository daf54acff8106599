"""Who a filter names: a Slack user id, as typed or as Slack writes a
mention, or `cli:NAME`, `policy`, `bot` as the record keeps them."""

from __future__ import annotations

import re

from bot.service.errors import BadRequest

# `<@U0123ABCD>` (or `<@U0123ABCD|name>`) as Slack writes a person.
_MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")


def actor_id(text: str, *, option: str, what: str, forms: str) -> str:
    """The id the record keeps for whoever `text` names; BadRequest naming
    `option` and the `forms` it takes otherwise."""
    who = text.strip()
    mention = _MENTION.match(who)
    if mention:
        who = mention.group(1)
    if not who or any(c.isspace() for c in who):
        raise BadRequest(f"{option} {text!r} is not {what}: use {forms}")
    return who
