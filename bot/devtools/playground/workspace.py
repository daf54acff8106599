"""The playground's Slack workspace, in memory: people, channels, messages
with their threads, ephemeral messages, modals, App Home tabs, and the
short-lived `trigger_id`s and `response_url`s Slack hands out.

Every change bumps `version` and wakes the browser's long poll
(`wait_changed`); `snapshot(user)` is what one person sees.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

# Slack's limits on what it hands out (docs.slack.dev/interactivity):
TRIGGER_SECONDS = 3.0  # a trigger_id opens one modal within 3 s
RESPONSE_URL_USES = 5  # a response_url takes 5 posts within 30 minutes
RESPONSE_URL_SECONDS = 30 * 60
KEEP_MESSAGES = 500  # per channel; older ones drop out of the playground


@dataclass(frozen=True)
class DemoUser:
    id: str
    name: str
    real_name: str
    role: str  # what the playground's user switcher says they are for


@dataclass(frozen=True)
class Channel:
    id: str
    name: str
    # A DM between the app and one person (`chat.postMessage(channel=U...)`).
    im_user: str | None = None


BOT_USER_ID, BOT_ID, BOT_NAME = "U0CHECKBOT", "B0CHECKBOT", "checkpoint-bot"
TEAM_ID, TEAM_DOMAIN = "T0DEMO", "checkpoint-demo"

DEMO_USERS = (
    DemoUser("U0ALICE", "alice", "Alice Ahmed", "requester"),
    DemoUser("U0BOB", "bob", "Bob Becker", "approver"),
    DemoUser("U0CAROL", "carol", "Carol Chen", "admin"),
)
DEMO_CHANNELS = (Channel("C0OPS", "ops"), Channel("C0GENERAL", "general"))
# Bob approves because he is in this group (deploy/examples/demo-policy.yaml).
DEMO_USERGROUPS = ({"id": "S0APPROVERS", "handle": "hyperv-approvers", "users": ["U0BOB"]},)


class SlackError(Exception):
    """A Web API refusal: `code` is Slack's error string."""

    def __init__(self, code: str, messages: list[str] | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.messages = messages or []


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    user: str  # BOT_USER_ID for the app's messages
    thread_ts: str | None = None
    ephemeral_for: str | None = None  # only this user sees it
    edited: bool = False
    note: str | None = None  # the playground's own label, e.g. the command it answers

    def as_slack(self) -> dict[str, Any]:
        """The message as Slack puts it in an interaction payload."""
        out: dict[str, Any] = {"type": "message", "ts": self.ts, "text": self.text}
        out["blocks"] = self.blocks
        if self.user == BOT_USER_ID:
            out.update(bot_id=BOT_ID, user=BOT_USER_ID, app_id="A0CHECKBOT")
        else:
            out["user"] = self.user
        if self.thread_ts:
            out["thread_ts"] = self.thread_ts
        return out


@dataclass
class ResponseTarget:
    """Where a `response_url` answers: the person, the channel, and the
    message the interaction came from (None for a slash command)."""

    user: str
    channel: str
    source_ts: str | None
    thread_ts: str | None
    note: str | None
    created: float = field(default_factory=time.monotonic)
    uses: int = 0


@dataclass
class Trigger:
    user: str
    created: float = field(default_factory=time.monotonic)
    used: bool = False


class Workspace:
    def __init__(
        self,
        users: tuple[DemoUser, ...] = DEMO_USERS,
        channels: tuple[Channel, ...] = DEMO_CHANNELS,
        usergroups: tuple[dict[str, Any], ...] = DEMO_USERGROUPS,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.users = {u.id: u for u in users}
        ims = tuple(Channel(f"D{u.id[1:]}", BOT_NAME, im_user=u.id) for u in users)
        self.channels = {c.id: c for c in channels + ims}
        self.usergroups = [dict(g) for g in usergroups]
        self.version = 0
        self._monotonic = monotonic
        self._messages: dict[str, list[Message]] = {c: [] for c in self.channels}
        self._modals: dict[str, list[dict[str, Any]]] = {}  # user -> stack of views
        self._homes: dict[str, dict[str, Any]] = {}
        self._triggers: dict[str, Trigger] = {}
        self._responses: dict[str, ResponseTarget] = {}
        self._log: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._last_ts = 0.0
        self._changed = threading.Condition()

    # --- bookkeeping ------------------------------------------------------------

    @contextmanager
    def _changing(self) -> Iterator[None]:
        with self._changed:
            yield
            self.version += 1
            self._changed.notify_all()

    def wait_changed(self, since: int, timeout: float) -> int:
        """Block until `version` passes `since` (or `timeout`); the version."""
        with self._changed:
            self._changed.wait_for(lambda: self.version > since, timeout)
            return self.version

    def _next_ts(self) -> str:
        # Slack's ts: epoch seconds and six digits, unique and increasing per channel.
        now = max(time.time(), self._last_ts + 0.000001)
        self._last_ts = now
        return f"{now:.6f}"

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):08d}"

    def log_call(self, method: str, ok: bool, error: str | None = None) -> None:
        """The Web API calls the bot made, newest last, for the UI's log."""
        with self._changing():
            self._log.append({"at": time.time(), "method": method, "ok": ok, "error": error})
            del self._log[:-200]

    # --- lookups ------------------------------------------------------------------

    def user(self, user_id: str) -> DemoUser:
        found = self.users.get(user_id)
        if found is None:
            raise SlackError("user_not_found")
        return found

    def channel(self, ref: str) -> Channel:
        """A channel id, a `#name`, or a user id (the app's DM with them)."""
        if ref in self.users:
            ref = f"D{ref[1:]}"
        by_name = {f"#{c.name}": c for c in self.channels.values() if c.im_user is None}
        found = self.channels.get(ref) or by_name.get(ref)
        if found is None:
            raise SlackError("channel_not_found")
        return found

    def message(self, channel: str, ts: str, viewer: str | None = None) -> Message:
        with self._changed:
            for msg in self._messages[self.channel(channel).id]:
                if msg.ts == ts and msg.ephemeral_for in (None, viewer):
                    return msg
        raise SlackError("message_not_found")

    # --- messages -----------------------------------------------------------------

    def post(
        self,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]],
        *,
        user: str = BOT_USER_ID,
        thread_ts: str | None = None,
        ephemeral_for: str | None = None,
        note: str | None = None,
    ) -> Message:
        target = self.channel(channel)
        with self._changing():
            messages = self._messages[target.id]
            if thread_ts and not any(m.ts == thread_ts for m in messages):
                raise SlackError("thread_not_found")
            msg = Message(target.id, self._next_ts(), text, blocks, user, thread_ts, ephemeral_for)
            msg.note = note
            messages.append(msg)
            del messages[:-KEEP_MESSAGES]
            return msg

    def update(
        self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]] | None, viewer: str
    ) -> Message:
        msg = self.message(channel, ts, viewer)
        with self._changing():
            msg.text = text
            if blocks is not None:
                msg.blocks = blocks
            msg.edited = msg.ephemeral_for is None
            return msg

    def delete(self, channel: str, ts: str, viewer: str | None = None) -> None:
        msg = self.message(channel, ts, viewer)
        with self._changing():
            self._messages[msg.channel].remove(msg)

    # --- views --------------------------------------------------------------------

    def new_trigger(self, user: str) -> str:
        trigger = f"{next(self._ids)}.{int(time.time())}.demo"
        with self._changed:
            self._triggers[trigger] = Trigger(user, self._monotonic())
        return trigger

    def take_trigger(self, trigger_id: str) -> str:
        """The user a trigger belongs to; each opens one view, within 3 s."""
        with self._changed:
            trigger = self._triggers.get(trigger_id)
            if trigger is None:
                raise SlackError("invalid_trigger_id")
            if trigger.used:
                raise SlackError("exchanged_trigger_id")
            if self._monotonic() - trigger.created > TRIGGER_SECONDS:
                raise SlackError("expired_trigger_id")
            trigger.used = True
            return trigger.user

    def _stored(self, view: dict[str, Any], view_id: str | None = None) -> dict[str, Any]:
        return {
            **view,
            "id": view_id or self.new_id("V"),
            "hash": self.new_id("h"),
            "state": {"values": {}},
            "team_id": TEAM_ID,
            "app_id": "A0CHECKBOT",
            "bot_id": BOT_ID,
        }

    def open_modal(self, user: str, view: dict[str, Any], *, push: bool = False) -> dict[str, Any]:
        with self._changing():
            stack = self._modals.setdefault(user, [])
            if not push:
                stack.clear()
            stored = self._stored(view)
            stack.append(stored)
            return stored

    def find_view(self, view_id: str | None, external_id: str | None = None) -> dict[str, Any]:
        with self._changed:
            views = [v for stack in self._modals.values() for v in stack]
            views += list(self._homes.values())
            for view in views:
                if (view_id and view["id"] == view_id) or (
                    external_id and view.get("external_id") == external_id
                ):
                    return view
        raise SlackError("not_found")

    def update_view(
        self, view_id: str | None, external_id: str | None, view: dict[str, Any], hash_: str | None
    ) -> dict[str, Any]:
        old = self.find_view(view_id, external_id)
        if hash_ and hash_ != old["hash"]:
            raise SlackError("hash_conflict")
        with self._changing():
            stored = self._stored(view, old["id"])
            for stack in self._modals.values():
                stack[:] = [stored if v is old else v for v in stack]
            for user, home in list(self._homes.items()):
                if home is old:
                    self._homes[user] = stored
            return stored

    def close_modal(self, user: str, view_id: str | None = None, *, all_: bool = False) -> None:
        with self._changing():
            stack = self._modals.get(user, [])
            if all_:
                stack.clear()
            elif stack and (view_id is None or stack[-1]["id"] == view_id):
                stack.pop()

    def modal(self, user: str) -> dict[str, Any] | None:
        with self._changed:
            stack = self._modals.get(user) or []
            return stack[-1] if stack else None

    def publish_home(self, user: str, view: dict[str, Any]) -> dict[str, Any]:
        self.user(user)
        with self._changing():
            old = self._homes.get(user)
            stored = self._stored(view, old["id"] if old else None)
            self._homes[user] = stored
            return stored

    # --- response_url ---------------------------------------------------------------

    def new_response_target(self, target: ResponseTarget) -> str:
        key = self.new_id("R")
        with self._changed:
            target.created = self._monotonic()
            self._responses[key] = target
        return key

    def use_response_target(self, key: str) -> ResponseTarget:
        with self._changed:
            target = self._responses.get(key)
            if target is None:
                raise SlackError("no_service")
            if self._monotonic() - target.created > RESPONSE_URL_SECONDS:
                raise SlackError("expired_url")
            if target.uses >= RESPONSE_URL_USES:
                raise SlackError("used_url")
            target.uses += 1
            return target

    # --- what one person sees ---------------------------------------------------------

    def snapshot(self, viewer: str) -> dict[str, Any]:
        with self._changed:
            seen = [c for c in self.channels.values() if c.im_user in (None, viewer)]
            channels = [{"id": c.id, "name": c.name, "is_im": c.im_user is not None} for c in seen]
            messages = {
                c.id: [
                    _ui_message(m)
                    for m in self._messages[c.id]
                    if m.ephemeral_for in (None, viewer)
                ]
                for c in seen
            }
            stack = self._modals.get(viewer) or []
            return {
                "version": self.version,
                "me": viewer,
                "users": [u.__dict__ for u in self.users.values()],
                "bot": {"id": BOT_USER_ID, "name": BOT_NAME},
                "channels": channels,
                # For rendering `<!subteam^S…>` as Slack does: the handle,
                # highlighted for its members.
                "usergroups": [
                    {"id": g["id"], "handle": g.get("handle", g["id"]), "users": g.get("users", [])}
                    for g in self.usergroups
                ],
                "messages": messages,
                "modal": stack[-1] if stack else None,
                "home": self._homes.get(viewer),
                "log": list(self._log[-50:]),
            }


def _ui_message(m: Message) -> dict[str, Any]:
    return {
        "ts": m.ts,
        "thread_ts": m.thread_ts,
        "user": m.user,
        "text": m.text,
        "blocks": m.blocks,
        "ephemeral": m.ephemeral_for is not None,
        "edited": m.edited,
        "note": m.note,
    }
