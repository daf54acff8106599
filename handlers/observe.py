"""Counts and times what Slack sends, and binds the log context of each
request (a request id and the Slack user) for everything done on its
behalf.

Bolt's listener runner returns from `App.dispatch` once the listener has
called `ack()` (it runs the rest of the listener in its pool), so the time
of `dispatch` is the time to ack: what Slack's three seconds measure
(https://api.slack.com/interactivity/handling#acknowledgment_response).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from slack_bolt import App
from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse

from bot.observe import Metrics, bound
from handlers.grammar import COMMANDS

log = logging.getLogger("checkpoint_bot.slack")

_WORDS = {c.name: c.name for c in COMMANDS} | {s: c.name for c in COMMANDS for s in c.synonyms}
# Action ids and callback ids are ours (handlers/app.py); anything else
# signed by Slack still must not grow the label set without bound.
_OUR_ID = re.compile(r"^[a-z][a-z0-9_:.-]{0,63}$")


def command_kind(text: str) -> str:
    """The subcommand a /checkpoint text asks for: a known word, `help`
    for nothing, `other` for anything else (never the user's text)."""
    first = text.strip().split(maxsplit=1)[0].casefold() if text.strip() else "help"
    return _WORDS.get(first, "other")


def _bounded(name: object) -> str:
    return name if isinstance(name, str) and _OUR_ID.match(name) else "other"


def classify(body: dict[str, Any]) -> tuple[str, str]:
    """(request type, kind): ("command", "create"), ("block_actions",
    "checkpoint:rollback"), ("view_submission", "checkpoint:create"), ..."""
    if "command" in body:
        return "command", command_kind(str(body.get("text") or ""))
    kind = str(body.get("type") or "other")
    if kind == "block_actions":
        actions = body.get("actions") or [{}]
        return kind, _bounded(actions[0].get("action_id"))
    if kind in ("view_submission", "view_closed"):
        return kind, _bounded((body.get("view") or {}).get("callback_id"))
    if kind == "block_suggestion":
        return kind, _bounded(body.get("action_id"))
    if kind == "event_callback":
        return "event", _bounded((body.get("event") or {}).get("type"))
    return _bounded(kind), "other"


def slack_user(body: dict[str, Any]) -> str | None:
    user = body.get("user_id") or (body.get("user") or {}).get("id")
    if user is None:
        user = (body.get("event") or {}).get("user")
    return user if isinstance(user, str) and _OUR_ID.match(user.casefold()) else None


class ObservedApp(App):
    """Bolt's App, with each request counted, timed to its ack and given its
    log context (a request id and the Slack user).

    Bolt's middleware is not a chain (its `next()` only marks the request
    as passed on; the listener runs after every middleware returned), so
    the measuring wraps `dispatch`, which returns once the listener acked.
    Listeners run in a `ContextThreadPool`, so the binding follows them."""

    def __init__(
        self,
        *args: Any,
        metrics: Metrics,
        monotonic: Callable[[], float] = time.perf_counter,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.metrics, self._monotonic = metrics, monotonic

    def dispatch(self, req: BoltRequest) -> BoltResponse:
        body = req.body or {}
        rtype, kind = classify(body)
        started = self._monotonic()
        response: BoltResponse | None = None
        with bound(request_id=uuid.uuid4().hex[:12], slack_user=slack_user(body)):
            try:
                response = super().dispatch(req)
            finally:
                seconds = self._monotonic() - started
                self.metrics.ack_seconds.labels(rtype).observe(seconds)
                ok = response is not None and response.status < 400
                outcome = "ok" if ok else "error"
                if rtype == "command":
                    self.metrics.slack_commands.labels(kind, outcome).inc()
                elif rtype != "event":
                    self.metrics.slack_actions.labels(kind, outcome).inc()
                # One line per request, as an access log: kind and outcome
                # only, never the text or the payload.
                log.info("slack %s %s: %s, acked in %.3fs", rtype, kind, outcome, seconds)
        return response
