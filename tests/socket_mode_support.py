"""Slack's Socket Mode end, faked on 127.0.0.1 for tests.

`FakeSocketModeServer` is a WebSocket server (the `websockets` library's
threaded server, plain ws://) that does what Slack's Socket Mode endpoint
does, in the shapes Slack documents and slack_sdk's clients parse:

- on connect it sends `{"type": "hello", "num_connections", "debug_info",
  "connection_info": {"app_id"}}`;
- it delivers envelopes `{"envelope_id", "type", "payload",
  "accepts_response_payload"}`, plus `retry_attempt` / `retry_reason` for
  `events_api`, to the newest open connection;
- it records every acknowledgement the app sends back, `{"envelope_id"}` or
  `{"envelope_id", "payload"}`, with the seconds it took;
- it can ask the app to reconnect (`{"type": "disconnect", "reason":
  "refresh_requested"}`), as Slack does every few hours.

The app finds the server the way it finds Slack's: `apps.connections.open`
on the (fake) Web API answers with this server's `url`.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

APP_ID = "A0TEST"
TEAM_ID = "T0TEST"


@dataclass(frozen=True)
class Acked:
    """One acknowledgement: what came back for an envelope, and how fast."""

    envelope_id: str
    payload: dict[str, Any] | None
    seconds: float


class FakeSocketModeServer:
    def __init__(self, app_id: str = APP_ID) -> None:
        self.app_id = app_id
        self.connections: list[ServerConnection] = []
        self.paths: list[str] = []
        self.acks: dict[str, Acked] = {}
        self.unexpected: list[str] = []  # frames that are not an ack of a sent envelope
        self._sent: dict[str, float] = {}
        self._ids = itertools.count(1)
        self._changed = threading.Condition()
        # Slack's server pings; the client answers. The client's own pings
        # are answered by the library. Compression is never negotiated by
        # slack_sdk's built-in client, so none is offered.
        self._server: Server = serve(
            self._session, "127.0.0.1", 0, compression=None, ping_interval=5, open_timeout=5
        )
        port = self._server.socket.getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/link/?ticket=t-{app_id}&app_id={app_id}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-socket-mode", daemon=True
        )

    def __enter__(self) -> FakeSocketModeServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._thread.join(timeout=10)

    # --- the server side of one connection ---------------------------------------

    def _session(self, conn: ServerConnection) -> None:
        with self._changed:
            self.connections.append(conn)
            self.paths.append(conn.request.path if conn.request else "")
            n = len(self.connections)
            self._changed.notify_all()
        conn.send(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": n,
                    "debug_info": {
                        "host": "applink-fake",
                        "build_number": 1,
                        "approximate_connection_time": 18060,
                    },
                    "connection_info": {"app_id": self.app_id},
                }
            )
        )
        try:
            for frame in conn:
                self._received(frame if isinstance(frame, str) else frame.decode())
        except ConnectionClosed:
            pass  # slack_sdk's built-in client drops the socket without a close frame
        finally:
            with self._changed:
                self._changed.notify_all()

    def _received(self, frame: str) -> None:
        now = time.monotonic()
        try:
            message = json.loads(frame)
        except ValueError:
            message = None
        envelope_id = message.get("envelope_id") if isinstance(message, dict) else None
        with self._changed:
            sent = self._sent.get(envelope_id) if isinstance(envelope_id, str) else None
            if not isinstance(envelope_id, str) or sent is None or envelope_id in self.acks:
                self.unexpected.append(frame)
            else:
                payload = message.get("payload") if isinstance(message, dict) else None
                self.acks[envelope_id] = Acked(envelope_id, payload, now - sent)
            self._changed.notify_all()

    # --- what a test does ------------------------------------------------------

    def open_connections(self) -> list[ServerConnection]:
        with self._changed:
            return [c for c in self.connections if c.close_code is None]

    def wait_connections(self, n: int, timeout: float = 5.0) -> ServerConnection:
        """Block until `n` connections were made in all; the newest."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.connections) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self.connections)} connection(s), expected {n}")
                self._changed.wait(left)
            return self.connections[n - 1]

    def send(self, message: dict[str, Any]) -> None:
        """Send to the newest open connection."""
        live = self.open_connections()
        if not live:
            raise AssertionError("no open Socket Mode connection")
        live[-1].send(json.dumps(message))

    def deliver(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        accepts_response_payload: bool,
        retry_attempt: int | None = None,
        retry_reason: str | None = None,
    ) -> str:
        """Send one envelope; its envelope_id."""
        envelope_id = f"env-{next(self._ids):04d}"
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
        }
        if retry_attempt is not None:
            envelope["retry_attempt"] = retry_attempt
            envelope["retry_reason"] = retry_reason or ""
        with self._changed:
            self._sent[envelope_id] = time.monotonic()
        self.send(envelope)
        return envelope_id

    def slash_command(
        self,
        text: str,
        response_url: str,
        *,
        user: str = "U0ALICE",
        channel: str = "C0OPS",
        command: str = "/checkpoint",
    ) -> str:
        """A slash command, as Slack sends it over Socket Mode."""
        payload = {
            "token": "legacy",
            "team_id": TEAM_ID,
            "team_domain": "test",
            "channel_id": channel,
            "channel_name": "ops",
            "user_id": user,
            "user_name": user.lower(),
            "command": command,
            "text": text,
            "api_app_id": self.app_id,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": f"trigger.{next(self._ids)}",
        }
        return self.deliver("slash_commands", payload, accepts_response_payload=True)

    def event(
        self,
        event: dict[str, Any],
        event_id: str,
        *,
        retry_attempt: int = 0,
        retry_reason: str = "",
    ) -> str:
        """An Events API delivery (Slack numbers attempts from 0)."""
        payload = {
            "token": "legacy",
            "team_id": TEAM_ID,
            "api_app_id": self.app_id,
            "event": event,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "authorizations": [{"team_id": TEAM_ID, "user_id": "U0BOT", "is_bot": True}],
            "is_ext_shared_channel": False,
        }
        return self.deliver(
            "events_api",
            payload,
            accepts_response_payload=False,
            retry_attempt=retry_attempt,
            retry_reason=retry_reason,
        )

    def interactive(self, payload: dict[str, Any]) -> str:
        """A block action or view submission; a view submission's ack may carry a payload."""
        accepts = payload.get("type") in {"view_submission", "block_suggestion"}
        return self.deliver("interactive", payload, accepts_response_payload=accepts)

    def ask_to_reconnect(self) -> None:
        self.send(
            {
                "type": "disconnect",
                "reason": "refresh_requested",
                "debug_info": {"host": "applink-fake"},
            }
        )

    def wait_ack(self, envelope_id: str, timeout: float = 3.0) -> Acked:
        """The app's ack of `envelope_id`, which Slack wants within 3 seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while envelope_id not in self.acks:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no ack for {envelope_id} within {timeout}s")
                self._changed.wait(left)
            return self.acks[envelope_id]
