"""The Slack Web API methods the bot calls, answered the way Slack answers
them, over the playground's in-memory workspace.

Every answer is `{"ok": true, ...}` or `{"ok": false, "error": code}`, with
HTTP 200 either way, as Slack does; malformed blocks are `invalid_blocks`
with Slack's `response_metadata.messages`. The bot's token is checked on
every call (`Authorization: Bearer …`, or a `token` field).

`respond()` serves the `response_url`s the playground hands out with slash
commands and clicks (`response_type`, `replace_original`, `delete_original`).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from bot.devtools.playground.blockcheck import MESSAGE_TEXT, message_errors, view_errors
from bot.devtools.playground.workspace import (
    BOT_ID,
    BOT_NAME,
    BOT_USER_ID,
    TEAM_DOMAIN,
    TEAM_ID,
    SlackError,
    Workspace,
)

Params = dict[str, Any]
# Form-encoded calls carry nested values as JSON text.
_JSON_FIELDS = ("blocks", "view", "attachments", "metadata")


def parse_params(raw: bytes, content_type: str, query: str) -> Params:
    """A call's arguments from its query string and its form or JSON body."""
    params: Params = dict(parse_qsl(query))
    if raw:
        if "json" in content_type:
            loaded = json.loads(raw)
            if not isinstance(loaded, dict):
                raise SlackError("invalid_json")
            params.update(loaded)
        else:
            params.update(parse_qsl(raw.decode("utf-8")))
    for key in _JSON_FIELDS:
        if isinstance(params.get(key), str) and params[key]:
            try:
                params[key] = json.loads(params[key])
            except json.JSONDecodeError:
                raise SlackError(f"invalid_{key}") from None
    return params


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1")


def _text_and_blocks(params: Params) -> tuple[str, list[dict[str, Any]] | None]:
    blocks = params.get("blocks")
    text = str(params.get("text") or "")
    if not text and not blocks:
        raise SlackError("no_text")
    if len(text) > MESSAGE_TEXT:
        raise SlackError("msg_too_long")
    problems = message_errors(params)
    if problems:
        raise SlackError("invalid_blocks", problems)
    return text, blocks if isinstance(blocks, list) else None


class WebApi:
    def __init__(self, workspace: Workspace, bot_token: str) -> None:
        self.ws = workspace
        self._token = bot_token
        self._methods: dict[str, Callable[[Params], Params]] = {
            "api.test": lambda p: {"args": {k: v for k, v in p.items() if k != "token"}},
            "auth.test": self.auth_test,
            "chat.postMessage": self.post_message,
            "chat.update": self.update,
            "chat.delete": self.delete,
            "chat.postEphemeral": self.post_ephemeral,
            "views.open": self.views_open,
            "views.push": self.views_push,
            "views.update": self.views_update,
            "views.publish": self.views_publish,
            "users.info": self.users_info,
            "usergroups.list": self.usergroups_list,
            "usergroups.users.list": self.usergroups_users,
            "conversations.info": self.conversations_info,
        }

    def call(self, method: str, params: Params, authorization: str | None) -> Params:
        """One Web API call; never raises for Slack-level errors."""
        try:
            if method != "api.test":
                self._authenticate(params, authorization)
            handler = self._methods.get(method)
            if handler is None:
                raise SlackError("unknown_method")
            answer = {"ok": True, **handler(params)}
        except SlackError as exc:
            answer = {"ok": False, "error": exc.code}
            if exc.messages:
                answer["response_metadata"] = {"messages": exc.messages}
        self.ws.log_call(method, bool(answer["ok"]), answer.get("error"))
        return answer

    def _authenticate(self, params: Params, authorization: str | None) -> None:
        given = None
        if authorization and authorization.startswith("Bearer "):
            given = authorization.removeprefix("Bearer ").strip()
        given = given or params.pop("token", None)
        if not given:
            raise SlackError("not_authed")
        # Constant time, like any secret comparison.
        if not hmac.compare_digest(str(given).encode(), self._token.encode()):
            raise SlackError("invalid_auth")

    @staticmethod
    def _need(params: Params, name: str) -> str:
        value = params.get(name)
        if value in (None, ""):
            raise SlackError("invalid_arguments", [f"[ERROR] missing required field: {name}"])
        return str(value)

    # --- methods ------------------------------------------------------------------

    def auth_test(self, _: Params) -> Params:
        return {
            "url": f"https://{TEAM_DOMAIN}.slack.com/",
            "team": "Checkpoint demo",
            "user": BOT_NAME,
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def post_message(self, p: Params) -> Params:
        channel = self.ws.channel(self._need(p, "channel"))
        text, blocks = _text_and_blocks(p)
        thread = str(p["thread_ts"]) if p.get("thread_ts") else None
        msg = self.ws.post(channel.id, text, blocks or [], thread_ts=thread)
        return {"channel": msg.channel, "ts": msg.ts, "message": msg.as_slack()}

    def update(self, p: Params) -> Params:
        channel = self.ws.channel(self._need(p, "channel"))
        text, blocks = _text_and_blocks(p)
        msg = self.ws.message(channel.id, self._need(p, "ts"))
        if msg.user != BOT_USER_ID:
            raise SlackError("cant_update_message")
        msg = self.ws.update(channel.id, msg.ts, text, blocks, viewer=BOT_USER_ID)
        return {"channel": msg.channel, "ts": msg.ts, "text": msg.text, "message": msg.as_slack()}

    def delete(self, p: Params) -> Params:
        channel = self.ws.channel(self._need(p, "channel"))
        ts = self._need(p, "ts")
        if self.ws.message(channel.id, ts).user != BOT_USER_ID:
            raise SlackError("cant_delete_message")
        self.ws.delete(channel.id, ts)
        return {"channel": channel.id, "ts": ts}

    def post_ephemeral(self, p: Params) -> Params:
        channel = self.ws.channel(self._need(p, "channel"))
        user = self.ws.user(self._need(p, "user"))
        if channel.im_user not in (None, user.id):
            raise SlackError("user_not_in_channel")
        text, blocks = _text_and_blocks(p)
        thread = str(p["thread_ts"]) if p.get("thread_ts") else None
        msg = self.ws.post(channel.id, text, blocks or [], thread_ts=thread, ephemeral_for=user.id)
        return {"message_ts": msg.ts}

    def _view(self, p: Params) -> dict[str, Any]:
        view = p.get("view")
        problems = view_errors(view)
        if problems:
            raise SlackError("invalid_arguments", problems)
        assert isinstance(view, dict)
        return view

    def views_open(self, p: Params) -> Params:
        view = self._view(p)
        user = self.ws.take_trigger(self._need(p, "trigger_id"))
        return {"view": self.ws.open_modal(user, view)}

    def views_push(self, p: Params) -> Params:
        view = self._view(p)
        user = self.ws.take_trigger(self._need(p, "trigger_id"))
        if self.ws.modal(user) is None:
            raise SlackError("not_found")
        return {"view": self.ws.open_modal(user, view, push=True)}

    def views_update(self, p: Params) -> Params:
        view = self._view(p)
        if not p.get("view_id") and not p.get("external_id"):
            raise SlackError("invalid_arguments", ["[ERROR] view_id or external_id required"])
        stored = self.ws.update_view(p.get("view_id"), p.get("external_id"), view, p.get("hash"))
        return {"view": stored}

    def views_publish(self, p: Params) -> Params:
        view = self._view(p)
        if view.get("type") != "home":
            raise SlackError(
                "invalid_arguments", ["[ERROR] must be home [json-pointer:/view/type]"]
            )
        return {"view": self.ws.publish_home(self._need(p, "user_id"), view)}

    def users_info(self, p: Params) -> Params:
        user = self.ws.user(self._need(p, "user"))
        return {
            "user": {
                "id": user.id,
                "team_id": TEAM_ID,
                "name": user.name,
                "real_name": user.real_name,
                "tz": "Europe/Berlin",
                "tz_offset": 3600,
                "is_admin": user.role == "admin",
                "is_bot": False,
                "profile": {"real_name": user.real_name, "display_name": user.name},
            }
        }

    def usergroups_list(self, p: Params) -> Params:
        with_users = _flag(p.get("include_users"))
        groups = [
            {k: v for k, v in g.items() if with_users or k != "users"}
            | {"team_id": TEAM_ID, "date_delete": 0, "user_count": len(g.get("users", []))}
            for g in self.ws.usergroups
        ]
        return {"usergroups": groups}

    def usergroups_users(self, p: Params) -> Params:
        wanted = self._need(p, "usergroup")
        for group in self.ws.usergroups:
            if group["id"] == wanted:
                return {"users": list(group.get("users", []))}
        raise SlackError("no_such_subteam")

    def conversations_info(self, p: Params) -> Params:
        channel = self.ws.channel(self._need(p, "channel"))
        info: Params = {"id": channel.id, "name": channel.name}
        if channel.im_user:
            info.update(is_im=True, user=channel.im_user)
        else:
            info.update(is_channel=True, is_private=False, is_member=True)
        return {"channel": info}

    # --- response_url -------------------------------------------------------------

    def respond(self, key: str, body: Mapping[str, Any]) -> tuple[int, str]:
        """A post to a handed-out response_url: (HTTP status, body text)."""
        try:
            target = self.ws.use_response_target(key)
            params = dict(body)
            if _flag(params.get("delete_original")):
                if target.source_ts is None:
                    raise SlackError("message_not_found")
                self.ws.delete(target.channel, target.source_ts, viewer=target.user)
                return self._responded(200, "ok")
            text, blocks = _text_and_blocks(params)
            if _flag(params.get("replace_original")) and target.source_ts is not None:
                self.ws.update(target.channel, target.source_ts, text, blocks, target.user)
            elif params.get("response_type") == "in_channel":
                thread = str(params["thread_ts"]) if params.get("thread_ts") else None
                self.ws.post(target.channel, text, blocks or [], thread_ts=thread)
            else:
                # Ephemeral is the default; it lands where the interaction happened.
                self.ws.post(
                    target.channel,
                    text,
                    blocks or [],
                    thread_ts=target.thread_ts,
                    ephemeral_for=target.user,
                    note=target.note,
                )
        except SlackError as exc:
            status = 404 if exc.code in ("no_service", "expired_url", "used_url") else 400
            return self._responded(status, exc.code)
        return self._responded(200, "ok")

    def _responded(self, status: int, text: str) -> tuple[int, str]:
        self.ws.log_call("response_url", status == 200, None if status == 200 else text)
        return status, text
