"""Refuse a payload whose shape is not Slack's before any other middleware
or listener reads it (`bot.slack_shapes`). Over HTTP the front has already
refused such a body with a 400; this covers Socket Mode, where the same
listeners run on what the socket delivered."""

from __future__ import annotations

import logging
from collections.abc import Callable

from slack_bolt.middleware import Middleware
from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse

from bot import slack_shapes
from handlers import messages

log = logging.getLogger(__name__)


class CheckShape(Middleware):
    def process(
        self,
        *,
        req: BoltRequest,
        resp: BoltResponse,
        next: Callable[[], BoltResponse],  # Bolt passes it by this name
    ) -> BoltResponse | None:
        wrong = slack_shapes.problem(req.body or {})
        if wrong is not None:
            log.warning(messages.log_malformed_payload(wrong))
            return BoltResponse(status=400, body=f"malformed payload: {wrong}")
        return next()
