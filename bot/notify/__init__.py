"""Telling people: the Slack thread of each change (and, later, windows and digests)."""

from bot.notify.base import ChangeNotifier, NullNotifier
from bot.notify.pacing import ChannelPacer
from bot.notify.thread import ThreadNotifier

__all__ = ["ChangeNotifier", "ChannelPacer", "NullNotifier", "ThreadNotifier"]
