"""Telling people: the Slack thread of each change (and, later, windows and digests)."""

from typing import TYPE_CHECKING, Any

from bot.notify.base import ChangeNotifier, NullNotifier
from bot.notify.pacing import ChannelPacer

if TYPE_CHECKING:
    from bot.notify.thread import ThreadNotifier

__all__ = ["ChangeNotifier", "ChannelPacer", "NullNotifier", "ThreadNotifier"]


def __getattr__(name: str) -> Any:
    # PEP 562: the Slack thread notifier (and the Slack SDK and templates
    # under it) loads when asked for, not with the package: every service
    # path imports `bot.notify`, and most never talk to Slack.
    if name == "ThreadNotifier":
        from bot.notify.thread import ThreadNotifier

        return ThreadNotifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
