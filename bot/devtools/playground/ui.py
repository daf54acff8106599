"""What a person does in the playground's browser UI, turned into what
Slack would send the app: a typed `/checkpoint …` becomes a signed slash
command, a click a signed `block_actions`, a modal's submit a signed
`view_submission`, opening the Home tab an `app_home_opened` event.

The app's ack decides what the person sees next, as in Slack: an error
status shows Slack's "didn't respond" notice, a modal submission's ack may
carry `response_action` (errors, update, push, clear).
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

from bot.devtools.playground import signing
from bot.devtools.playground.console import CONSOLE, HyperVConsole
from bot.devtools.playground.signing import AppAnswer, AppLink
from bot.devtools.playground.workspace import ResponseTarget, SlackError, Workspace

COMMAND = "/checkpoint"
SLACKBOT = "USLACKBOT"


class UiError(Exception):
    """A request the UI should not have made (unknown user, view, message)."""


class PlaygroundUi:
    def __init__(self, workspace: Workspace, response_base: str) -> None:
        self.ws = workspace
        self.response_base = response_base.rstrip("/")
        self.app: AppLink | None = None  # set once the bot listens
        # `/hyperv`: the emulated estate's console (set once the hosts run).
        self.console: HyperVConsole | None = None
        self._events = itertools.count(1)

    # --- helpers ------------------------------------------------------------------

    def _who(self, user: Any) -> tuple[str, str]:
        try:
            found = self.ws.user(str(user))
        except SlackError:
            raise UiError(f"no such demo user: {user!r}") from None
        return found.id, found.name

    def _send(self, body: bytes, content_type: str = signing.FORM) -> AppAnswer:
        if self.app is None:
            return AppAnswer(503, "the bot is still starting", "text/plain")
        return self.app.send(body, content_type)

    def _slackbot(self, user: str, channel: str, text: str, thread_ts: str | None = None) -> None:
        """What Slack itself tells one person (a failed command, a slow app)."""
        self.ws.post(
            channel, text, [], user=SLACKBOT, ephemeral_for=user, thread_ts=thread_ts, note=None
        )

    def _response_url(self, target: ResponseTarget) -> str:
        return f"{self.response_base}/{self.ws.new_response_target(target)}"

    # --- the composer ----------------------------------------------------------------

    def command(self, user: Any, channel: Any, text: Any) -> dict[str, Any]:
        user_id, name = self._who(user)
        chan = self.ws.channel(str(channel))
        line = str(text or "").strip()
        if not line:
            return {"ok": True}
        if not line.startswith("/"):
            self.ws.post(chan.id, line, [], user=user_id)  # just chat
            return {"ok": True}
        command, _, args = line.partition(" ")
        if command == CONSOLE and self.console is not None:
            self.ws.post(chan.id, line, [], user=user_id)
            self._slackbot(user_id, chan.id, self.console.run(args))
            return {"ok": True}
        if command != COMMAND:
            self._slackbot(user_id, chan.id, f"`{command}` is not a valid command.")
            return {"ok": True}
        note = f"{COMMAND} {args.strip()}".strip()
        body = signing.slash_command(
            command=COMMAND,
            text=args.strip(),
            user_id=user_id,
            user_name=name,
            channel_id=chan.id,
            channel_name=chan.name,
            response_url=self._response_url(ResponseTarget(user_id, chan.id, None, None, note)),
            trigger_id=self.ws.new_trigger(user_id),
        )
        answer = self._send(body)
        if answer.status != 200:
            self._slackbot(
                user_id, chan.id, f"{COMMAND} failed with the error \"dispatch_failed\" "
                f"(the app answered {answer.status})."
            )  # fmt: skip
        elif answer.body.strip():
            # An ack with a body is the command's immediate answer.
            reply = answer.json() or {"text": answer.body}
            self.ws.post(
                chan.id,
                str(reply.get("text") or ""),
                list(reply.get("blocks") or []),
                ephemeral_for=None if reply.get("response_type") == "in_channel" else user_id,
                note=note,
            )
        return {"ok": answer.status == 200, "status": answer.status}

    # --- clicks ---------------------------------------------------------------------

    def action(self, user: Any, data: dict[str, Any]) -> dict[str, Any]:
        """A click on a button or a choice in a select, in a message or a view."""
        user_id, name = self._who(user)
        action = _action(data.get("action") or {})
        trigger = self.ws.new_trigger(user_id)
        if data.get("view_id"):
            view = self._with_state(self.ws.find_view(str(data["view_id"])), data.get("values"))
            body = signing.block_actions(
                user_id=user_id, user_name=name, action=action, trigger_id=trigger, view=view
            )
            channel, thread = None, None
        else:
            chan = self.ws.channel(str(data.get("channel")))
            msg = self.ws.message(chan.id, str(data.get("ts")), viewer=user_id)
            thread = msg.thread_ts
            target = ResponseTarget(user_id, chan.id, msg.ts, msg.thread_ts, None)
            body = signing.block_actions(
                user_id=user_id,
                user_name=name,
                action=action,
                trigger_id=trigger,
                message=msg.as_slack(),
                channel={"id": chan.id, "name": chan.name},
                response_url=self._response_url(target),
                is_ephemeral=msg.ephemeral_for is not None,
            )
            channel = chan.id
        answer = self._send(body)
        if answer.status != 200 and channel is not None:
            self._slackbot(user_id, channel, "checkpoint-bot didn't respond to that click.", thread)
        return {"ok": answer.status == 200, "status": answer.status}

    # --- modals ---------------------------------------------------------------------

    @staticmethod
    def _with_state(view: dict[str, Any], values: Any) -> dict[str, Any]:
        sent = copy.deepcopy(view)
        sent["state"] = {"values": values if isinstance(values, dict) else {}}
        return sent

    def submit(self, user: Any, view_id: Any, values: Any) -> dict[str, Any]:
        """Submit the open modal; the answer says what the UI shows next."""
        user_id, name = self._who(user)
        view = self._with_state(self.ws.find_view(str(view_id)), values)
        body = signing.view_submission(
            user_id=user_id, user_name=name, view=view, trigger_id=self.ws.new_trigger(user_id)
        )
        answer = self._send(body)
        if answer.status != 200:
            return {
                "ok": False,
                "status": answer.status,
                "error": "We had some trouble connecting.",
            }
        try:
            ack = answer.json() or {}
        except ValueError:
            ack = {}
        what = ack.get("response_action")
        if what == "errors":
            return {"ok": False, "errors": ack.get("errors") or {}}
        if what in ("update", "push") and isinstance(ack.get("view"), dict):
            if what == "update":
                self.ws.update_view(view["id"], None, ack["view"], None)
            else:
                self.ws.open_modal(user_id, ack["view"], push=True)
            return {"ok": True}
        self.ws.close_modal(user_id, all_=what == "clear")
        return {"ok": True}

    def close(self, user: Any, view_id: Any) -> dict[str, Any]:
        user_id, name = self._who(user)
        view = self.ws.find_view(str(view_id))
        self.ws.close_modal(user_id, view["id"])
        if view.get("notify_on_close"):
            self._send(signing.view_closed(user_id=user_id, user_name=name, view=view))
        return {"ok": True}

    def options(self, user: Any, data: dict[str, Any]) -> dict[str, Any]:
        """An external_select's options for what the person typed."""
        user_id, name = self._who(user)
        view = self._with_state(self.ws.find_view(str(data.get("view_id"))), data.get("values"))
        answer = self._send(
            signing.block_suggestion(
                user_id=user_id,
                user_name=name,
                view=view,
                action_id=str(data.get("action_id") or ""),
                block_id=str(data.get("block_id") or ""),
                value=str(data.get("value") or ""),
            )
        )
        try:
            found = answer.json() or {}
        except ValueError:
            found = {}
        return {"ok": answer.status == 200, "options": found.get("options") or []}

    # --- App Home and ephemeral messages ------------------------------------------------

    def open_home(self, user: Any) -> dict[str, Any]:
        user_id, _ = self._who(user)
        home = self.ws.snapshot(user_id)["home"]
        event: dict[str, Any] = {
            "type": "app_home_opened",
            "user": user_id,
            "channel": f"D{user_id[1:]}",
            "tab": "home",
            "event_ts": f"{next(self._events)}.000000",
        }
        if home:
            event["view"] = home
        answer = self._send(
            signing.event_callback(event, f"Ev{next(self._events):010d}"), "application/json"
        )
        return {"ok": answer.status == 200, "status": answer.status}

    def dismiss(self, user: Any, channel: Any, ts: Any) -> dict[str, Any]:
        user_id, _ = self._who(user)
        msg = self.ws.message(str(channel), str(ts), viewer=user_id)
        if msg.ephemeral_for != user_id:
            raise UiError("only ephemeral messages can be dismissed")
        self.ws.delete(msg.channel, msg.ts, viewer=user_id)
        return {"ok": True}


def _action(raw: dict[str, Any]) -> dict[str, Any]:
    """The action element as Slack reports it (only the keys it sends)."""
    keep = ("type", "action_id", "block_id", "value", "text", "style", "selected_option")
    return {k: raw[k] for k in keep if k in raw}
