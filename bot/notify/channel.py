"""Messages to a channel (or a user's DM) that belong to no change's
thread: window notices, TTL notices, sweep digests.

Paced with the same `ChannelPacer` as the threads, since Slack's limit is
per channel whoever posts. Callers claim a tick slot before posting, so a
notice is posted once; a failed post is logged and not retried blindly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from bot.notify.pacing import ChannelPacer

if TYPE_CHECKING:
    # The Slack SDK and the Block Kit renderer come with the client and the
    # renderer a SlackChannelNotices is given; the context imports this
    # module for NullChannelNotices on every path, Slack or not.
    from slack_sdk import WebClient

    from templates.blocks import SlackRenderer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Posted:
    """Where a message landed, as Slack answered its post: a post to a user
    id lands in a `D…` conversation, the id chat.update needs."""

    channel: str
    ts: str


class ChannelNotices(Protocol):
    @property
    def enabled(self) -> bool:
        """False when no Slack is configured: callers may skip the work."""
        ...

    def post(self, channel: str, template: str, **values: Any) -> str | None:
        """Render `templates/slack/<template>.json.j2` and post it to
        `channel` (a channel id, or a user id for a DM); the message ts, or
        None if nothing was posted. Never raises for Slack's refusals."""
        ...

    def post_message(self, channel: str, template: str, **values: Any) -> Posted | None:
        """`post`, answering where the message landed (to update it later)."""
        ...


class NullChannelNotices:
    """No Slack configured: nothing to tell."""

    enabled = False

    def post(self, channel: str, template: str, **values: Any) -> str | None:
        return None

    def post_message(self, channel: str, template: str, **values: Any) -> Posted | None:
        return None


class SlackChannelNotices:
    enabled = True

    def __init__(
        self,
        client: WebClient,
        renderer: SlackRenderer,
        *,
        demo: bool,
        pacer: ChannelPacer,
    ) -> None:
        self.client, self.renderer, self.demo, self.pacer = client, renderer, demo, pacer

    def __repr__(self) -> str:
        return f"SlackChannelNotices(demo={self.demo})"

    def post(self, channel: str, template: str, **values: Any) -> str | None:
        posted = self.post_message(channel, template, **values)
        return posted.ts if posted is not None else None

    def post_message(self, channel: str, template: str, **values: Any) -> Posted | None:
        from slack_sdk.errors import SlackApiError

        payload = self.renderer.payload(template, demo=self.demo, **values)
        try:
            self.pacer.wait(channel)
            answer = self.client.chat_postMessage(channel=channel, **payload)
        except SlackApiError as exc:
            log.warning(
                "Slack refused the %s notice for %s: %s",
                template,
                channel,
                exc.response.get("error", "error"),
            )
            return None
        return Posted(str(answer.get("channel") or channel), str(answer["ts"]))
