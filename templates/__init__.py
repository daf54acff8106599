"""User-facing text: Jinja2 templates and the filters they share.

Templates live beside this module (`cli/` for terminal output; Slack's
Block Kit templates join them with the Slack issue). Values are never
rendered into PowerShell: only people read what comes out of here.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.domain import plain_mentions
from bot.durations import format_duration
from bot.reasons import one_line

if TYPE_CHECKING:
    from jinja2 import Environment


def human_bytes(value: int | float | None) -> str:
    if value is None:
        return "?"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def human_duration(value: int | float | timedelta | None) -> str:
    if value is None:
        return "-"
    delta = value if isinstance(value, timedelta) else timedelta(seconds=value)
    return format_duration(delta)


def short_time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "-"


def mrkdwn_escape(value: object) -> str:
    """Slack mrkdwn control characters, escaped as Slack documents."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """ "1 checkpoint", "2 checkpoints" (`plural` for the irregular)."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"


def action_verb(value: object) -> str:
    """An action as a verb in a sentence: "waiting for approval to roll
    back" (the record's word is `rollback`, a noun)."""
    text = str(value)
    return "roll back" if text == "rollback" else text.replace("_", " ")


def widest(values: Iterable[object], at_least: int) -> int:
    """A table column's width: its longest value, and never narrower than
    `at_least` (what the header and the demo's names need), so that real
    estates' longer VM and host names keep the columns aligned."""
    return max([at_least, *(len(str(v)) for v in values)])


def state_label(value: str | None) -> str:
    return (value or "-").replace("_", " ")


# A change's steps as a thread says them: what happened, not the command's
# name (seen: "*reject* by @bob", "*schedule* by policy", "*ttl expired* by
# checkpoint-bot"). Any other step reads as its state does.
EVENT_WORDS = {
    "deny": "refused",
    "request_approval": "approval asked for",
    "adopt": "adopted",
    "approve": "approved",
    "approval": "approval given",
    "reject": "rejected",
    "expire": "expired",
    "schedule": "scheduled",
    "start_create": "checkpoint started",
    "start_merge": "merge started",
    "start_rollback": "rollback started",
    "resume": "resumed",
    "interrupt": "interrupted",
    "vanish": "vanished",
    "withdraw": "withdrawn",
    "take_back": "taken back",
    "rollback_awaits_approval": "rollback waits for approval",
    "merge_awaits_approval": "merge waits for approval",
    "extend_awaits_approval": "extension waits for approval",
    "create_awaits_approval": "checkpoint waits for approval with its wave",
    "awaits_approval": "waits for approval",
    "ttl_reminder": "TTL reminder",
    "ttl_expired": "TTL ended",
    "reconcile_active": "settled: active",
    "reconcile_failed": "settled: failed",
    "reconcile_merged": "settled: merged",
    "reconcile_rolled_back": "settled: rolled back",
}
# Steps the bot saw happen rather than did: said without "by checkpoint-bot".
SEEN_NOT_DONE = frozenset({"ttl_reminder", "ttl_expired", "vanish", "moved"})


def event_label(kind: str | None) -> str:
    """A change event's kind in words (`EVENT_WORDS`)."""
    return EVENT_WORDS.get(kind or "", state_label(kind))


class Renderer:
    """One Jinja environment per process, passed to whoever renders."""

    def __init__(self) -> None:
        # Jinja2 loads with the first Renderer, not with this package: the
        # filters above are imported by code that renders nothing
        # (`checkpoint list --json`, bench/cli_start.py).
        from jinja2 import Environment, PackageLoader, StrictUndefined

        self.env: Environment = Environment(
            loader=PackageLoader("templates", "."),
            undefined=StrictUndefined,
            autoescape=False,  # noqa: S701 (terminal text; Slack output escapes with `mrkdwn`)
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self.env.filters.update(
            bytes=human_bytes,
            duration=human_duration,
            time=short_time,
            mrkdwn=mrkdwn_escape,
            state=state_label,
            event=event_label,
            # Mention tokens (`<@U…>`) the bot wrote, as words a terminal shows.
            people=plain_mentions,
            # A person's text where one line is needed (a table's cell).
            one_line=one_line,
            verb=action_verb,
            count=counted,
            widest=widest,
        )
        # `{% if e.kind is seen %}`: a step the bot saw rather than did.
        self.env.tests["seen"] = SEEN_NOT_DONE.__contains__

    def render(self, name: str, **values: Any) -> str:
        return self.env.get_template(name).render(**values)


__all__ = ["Renderer", "human_bytes", "human_duration", "mrkdwn_escape"]
