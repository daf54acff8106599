"""What Slack sends an app, built and signed exactly like Slack does it.

Slack signs every request with the app's signing secret: HMAC-SHA256 over
`v0:{X-Slack-Request-Timestamp}:{raw body}`, sent as `X-Slack-Signature:
v0=<hex>` (docs.slack.dev/authentication/verifying-requests-from-slack).
Slash commands are form fields; interactions are one form field `payload`
holding JSON; events are JSON.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from bot.devtools.playground.workspace import BOT_USER_ID, TEAM_DOMAIN, TEAM_ID

API_APP_ID = "A0CHECKBOT"
FORM = "application/x-www-form-urlencoded"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(secret: str, body: bytes, content_type: str, now: float) -> dict[str, str]:
    timestamp = str(int(now))
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature(secret, timestamp, body),
    }


# --- what Slack sends ---------------------------------------------------------------

_TEAM = {"id": TEAM_ID, "domain": TEAM_DOMAIN}


def _user(user_id: str, name: str) -> dict[str, str]:
    return {"id": user_id, "username": name, "name": name, "team_id": TEAM_ID}


def slash_command(
    *,
    command: str,
    text: str,
    user_id: str,
    user_name: str,
    channel_id: str,
    channel_name: str,
    response_url: str,
    trigger_id: str,
) -> bytes:
    return urlencode(
        {
            "token": "demo-verification-token",  # legacy field; Bolt checks the signature
            "team_id": TEAM_ID,
            "team_domain": TEAM_DOMAIN,
            "channel_id": channel_id,
            "channel_name": channel_name,
            "user_id": user_id,
            "user_name": user_name,
            "command": command,
            "text": text,
            "api_app_id": API_APP_ID,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": trigger_id,
        }
    ).encode()


def _interaction(payload: dict[str, Any]) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


def block_actions(
    *,
    user_id: str,
    user_name: str,
    action: dict[str, Any],
    trigger_id: str,
    message: dict[str, Any] | None = None,
    channel: dict[str, str] | None = None,
    response_url: str | None = None,
    view: dict[str, Any] | None = None,
    is_ephemeral: bool = False,
) -> bytes:
    """A click on an element of a message (`message`, `channel`, and a
    response_url) or of a view (`view`; Slack sends no response_url then)."""
    payload: dict[str, Any] = {
        "type": "block_actions",
        "team": _TEAM,
        "user": _user(user_id, user_name),
        "api_app_id": API_APP_ID,
        "token": "demo-verification-token",
        "trigger_id": trigger_id,
        "actions": [{**action, "action_ts": f"{time.time():.6f}"}],
    }
    if view is not None:
        payload["container"] = {"type": "view", "view_id": view["id"]}
        payload["view"] = view
    elif message is not None and channel is not None:
        payload["container"] = {
            "type": "message",
            "message_ts": message["ts"],
            "channel_id": channel["id"],
            "is_ephemeral": is_ephemeral,
        }
        payload["channel"] = channel
        payload["message"] = message
        payload["response_url"] = response_url
        payload["state"] = {"values": {}}
    return _interaction(payload)


def view_submission(
    *, user_id: str, user_name: str, view: dict[str, Any], trigger_id: str
) -> bytes:
    return _interaction(
        {
            "type": "view_submission",
            "team": _TEAM,
            "user": _user(user_id, user_name),
            "api_app_id": API_APP_ID,
            "token": "demo-verification-token",
            "trigger_id": trigger_id,
            "view": view,
            "response_urls": [],
        }
    )


def view_closed(*, user_id: str, user_name: str, view: dict[str, Any]) -> bytes:
    return _interaction(
        {
            "type": "view_closed",
            "team": _TEAM,
            "user": _user(user_id, user_name),
            "api_app_id": API_APP_ID,
            "view": view,
            "is_cleared": False,
        }
    )


def block_suggestion(
    *, user_id: str, user_name: str, view: dict[str, Any], action_id: str, block_id: str, value: str
) -> bytes:
    """An external_select asking for its options as the person types."""
    return _interaction(
        {
            "type": "block_suggestion",
            "team": _TEAM,
            "user": _user(user_id, user_name),
            "api_app_id": API_APP_ID,
            "token": "demo-verification-token",
            "container": {"type": "view", "view_id": view["id"]},
            "view": view,
            "action_id": action_id,
            "block_id": block_id,
            "value": value,
        }
    )


def event_callback(event: dict[str, Any], event_id: str) -> bytes:
    return json.dumps(
        {
            "token": "demo-verification-token",
            "team_id": TEAM_ID,
            "api_app_id": API_APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "authorizations": [
                {"team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True},
            ],
        }
    ).encode()


# --- sending ------------------------------------------------------------------------


@dataclass(frozen=True)
class AppAnswer:
    """The app's HTTP answer: its ack, which may carry a body."""

    status: int
    body: str
    content_type: str

    def json(self) -> Any:
        """The ack's JSON body, or None when it is empty or plain text."""
        if not self.body.strip() or "json" not in self.content_type:
            return None
        return json.loads(self.body)


class AppLink:
    """Posts signed requests to the app's Request URL (`/slack/events`)."""

    def __init__(
        self,
        request_url: str,
        signing_secret: str,
        *,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        parts = urlsplit(request_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the playground only talks to an app on http://, not {request_url}")
        self.host, self.port, self.path = parts.hostname, parts.port or 80, parts.path or "/"
        self._secret = signing_secret
        self.timeout = timeout
        self._clock = clock

    def __repr__(self) -> str:  # never the secret
        return f"AppLink(http://{self.host}:{self.port}{self.path})"

    def send(self, body: bytes, content_type: str = FORM) -> AppAnswer:
        """Slack waits 3 s for an ack; the playground waits `timeout` and
        reports a slow ack as Slack would (`operation_timeout`)."""
        headers = signed_headers(self._secret, body, content_type, self._clock())
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request("POST", self.path, body=body, headers=headers)
            answer = conn.getresponse()
            text = answer.read().decode("utf-8", "replace")
            return AppAnswer(answer.status, text, answer.getheader("Content-Type") or "")
        except (OSError, http.client.HTTPException) as exc:
            return AppAnswer(599, type(exc).__name__, "text/plain")
        finally:
            conn.close()
