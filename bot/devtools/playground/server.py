"""The playground's one WSGI app, both faces on one port:

/api/<method>           the Slack Web API subset (the bot's `api_url`)
/response_url/<key>     the response_urls handed out with commands and clicks
/                       the browser UI (static files, no build step)
GET  /ui/state          what one person sees; `since=N` long-polls for a change
POST /ui/command        typed text: chat, or a signed slash command
POST /ui/action         a click: a signed block_actions
POST /ui/submit         a modal's submit: a signed view_submission
POST /ui/close, /ui/options, /ui/home, /ui/dismiss
/healthz                200 while serving
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from bot.clock import Clock, system_clock
from bot.devtools.playground.ui import PlaygroundUi, UiError
from bot.devtools.playground.webapi import WebApi, parse_params
from bot.devtools.playground.workspace import SlackError, Workspace

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

log = logging.getLogger(__name__)

STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
LONG_POLL_SECONDS = 20.0
MAX_BODY = 1_000_000  # Slack takes nothing near this; a bigger body is a mistake


class PlaygroundApp:
    def __init__(
        self,
        workspace: Workspace,
        api: WebApi,
        ui: PlaygroundUi,
        *,
        clock: Clock = system_clock,
        speed: float = 1.0,
        poll_seconds: float = 0,
    ) -> None:
        self.ws, self.api, self.ui = workspace, api, ui
        # The bot's clock, so the UI reads the bot's dates against its time.
        self.clock, self.speed = clock, speed
        self.poll_seconds = poll_seconds or LONG_POLL_SECONDS
        self._static = resources.files("bot.devtools.playground") / "static"
        self._ui_posts: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "command": lambda d: ui.command(d.get("user"), d.get("channel"), d.get("text")),
            "action": lambda d: ui.action(d.get("user"), d),
            "submit": lambda d: ui.submit(d.get("user"), d.get("view_id"), d.get("values")),
            "close": lambda d: ui.close(d.get("user"), d.get("view_id")),
            "options": lambda d: ui.options(d.get("user"), d),
            "home": lambda d: ui.open_home(d.get("user")),
            "dismiss": lambda d: ui.dismiss(d.get("user"), d.get("channel"), d.get("ts")),
        }

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO") or "/")
        method = str(environ.get("REQUEST_METHOD") or "GET")
        try:
            if path.startswith("/api/"):
                return self._web_api(environ, start_response, path.removeprefix("/api/"))
            if path.startswith("/response_url/") and method == "POST":
                return self._response_url(environ, start_response, path.rsplit("/", 1)[1])
            if path == "/ui/state":
                return self._state(environ, start_response)
            if path.startswith("/ui/") and method == "POST":
                return self._ui_post(environ, start_response, path.removeprefix("/ui/"))
            if path == "/healthz":
                return _send(start_response, "200 OK", b"ok\n", "text/plain")
            return self._file(start_response, "index.html" if path == "/" else path[1:])
        except (ValueError, SlackError) as exc:
            return _send(start_response, "400 Bad Request", f"{exc}\n".encode(), "text/plain")

    # --- the Slack face -------------------------------------------------------------

    def _web_api(self, environ: WSGIEnvironment, start: StartResponse, name: str) -> list[bytes]:
        try:
            params = parse_params(
                _body(environ),
                str(environ.get("CONTENT_TYPE") or ""),
                str(environ.get("QUERY_STRING") or ""),
            )
        except SlackError as exc:
            answer: dict[str, Any] = {"ok": False, "error": exc.code}
        else:
            answer = self.api.call(name, params, environ.get("HTTP_AUTHORIZATION"))
        return _json(start, answer)

    def _response_url(
        self, environ: WSGIEnvironment, start: StartResponse, key: str
    ) -> list[bytes]:
        raw = _body(environ)
        try:
            body = json.loads(raw) if raw else {}
            if isinstance(body, dict):
                for field in ("blocks", "attachments"):
                    if isinstance(body.get(field), str):
                        body[field] = json.loads(body[field])
        except json.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            return _send(start, "400 Bad Request", b"invalid_payload", "text/plain")
        status, text = self.api.respond(key, body)
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}[status]
        return _send(start, f"{status} {reason}", text.encode(), "text/plain")

    # --- the browser face -----------------------------------------------------------

    def _state(self, environ: WSGIEnvironment, start: StartResponse) -> list[bytes]:
        query = parse_qs(str(environ.get("QUERY_STRING") or ""))
        user = (query.get("user") or [""])[0]
        since = int((query.get("since") or ["-1"])[0])
        if user not in self.ws.users:
            return _json(start, {"ok": False, "error": "user_not_found"}, "404 Not Found")
        if since >= 0:
            self.ws.wait_changed(since, self.poll_seconds)
        clock = {"now": self.clock().timestamp(), "speed": self.speed}
        return _json(start, {"ok": True, **self.ws.snapshot(user), "clock": clock})

    def _ui_post(self, environ: WSGIEnvironment, start: StartResponse, verb: str) -> list[bytes]:
        handler = self._ui_posts.get(verb)
        if handler is None:
            return _json(start, {"ok": False, "error": "unknown"}, "404 Not Found")
        data = json.loads(_body(environ) or b"{}")
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        try:
            return _json(start, handler(data))
        except (UiError, SlackError) as exc:
            return _json(start, {"ok": False, "error": str(exc)}, "400 Bad Request")

    def _file(self, start: StartResponse, name: str) -> list[bytes]:
        suffix = name[name.rfind(".") :] if "." in name else ""
        # Only plain names of files shipped in static/: no paths, no dot files.
        if "/" in name or name.startswith(".") or suffix not in STATIC_TYPES:
            return _send(start, "404 Not Found", b"not found\n", "text/plain")
        target = self._static / name
        if not target.is_file():
            return _send(start, "404 Not Found", b"not found\n", "text/plain")
        return _send(start, "200 OK", target.read_bytes(), STATIC_TYPES[suffix])


def _body(environ: WSGIEnvironment) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length > MAX_BODY:
        raise ValueError("request body too large")
    stream: Any = environ["wsgi.input"]
    data: bytes = stream.read(length) if length else b""
    return data


def _json(start: StartResponse, data: Any, status: str = "200 OK") -> list[bytes]:
    return _send(start, status, json.dumps(data).encode(), "application/json; charset=utf-8")


def _send(start: StartResponse, status: str, data: bytes, content_type: str) -> list[bytes]:
    start(
        status,
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(data))),
            ("Cache-Control", "no-store"),
        ],
    )
    return [data]
