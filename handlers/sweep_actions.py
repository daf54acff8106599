"""The sweep digest's buttons: Adopt and Adopt & merge on an orphan.

The digest's Keep & merge and Extend on a stale change are the thread's own
`checkpoint:merge` / `checkpoint:extend` buttons (values CHG-n:vN), so
`handlers.actions` answers them. Here, as there: ack first, then one
service call in the work pool, then an ephemeral answer to whoever clicked.
A double click or a click by a second person is one adoption; the service's
Conflict says who won. Once adopted, the digest itself is edited: the
orphan's buttons give way to a line saying who adopted it as which change,
so nobody else clicks a button that can no longer work.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError

from bot.service import ServiceError, adopt_checkpoint, committed_writes, parse_orphan_value
from handlers import messages, outage, sweep_messages
from handlers.deps import SlackDeps, answer_click, ephemeral
from handlers.workspace import request_team

log = logging.getLogger(__name__)

ADOPT, MERGE = "sweep:adopt", "sweep:merge"
ORPHAN_BUTTONS = re.compile(r"^sweep:(adopt|merge)$")


def settled(blocks: list[dict[str, Any]], value: str, note: str) -> list[dict[str, Any]] | None:
    """`blocks` with the actions block that carries `value` replaced by a
    context line `note` (mrkdwn); None if no block carries it."""
    out: list[dict[str, Any]] = []
    found = False
    for block in blocks:
        elements = block.get("elements", []) if block.get("type") == "actions" else []
        if any(el.get("value") == value for el in elements):
            out.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
            found = True
        else:
            out.append(block)
    return out if found else None


def _edit_digest(client: WebClient, body: dict[str, Any], value: str, note: str) -> None:
    message = body.get("message") or {}
    channel = (body.get("container") or {}).get("channel_id") or (body.get("channel") or {}).get(
        "id"
    )
    ts = message.get("ts") or (body.get("container") or {}).get("message_ts")
    blocks = settled(list(message.get("blocks") or []), value, note)
    if not (channel and ts and blocks):
        return
    try:
        client.chat_update(channel=channel, ts=ts, text=message.get("text", note), blocks=blocks)
    except SlackClientError:
        # The adoption stands and is in its thread; the digest is only stale.
        log.warning(messages.log_unexpected("editing the sweep digest"), exc_info=True)


def clicked(
    deps: SlackDeps, body: dict[str, Any], respond: Respond, client: WebClient | None = None
) -> None:
    action = body["actions"][0]
    value = str(action.get("value", ""))
    user = str(body["user"]["id"])
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
        "channel_id"
    )
    try:
        host, vm_id, checkpoint_id = parse_orphan_value(value)
    except ValueError:
        log.warning(sweep_messages.log_bad_value(value))
        _answer(body, respond, client, deps.error(messages.UNEXPECTED))
        return
    writes = committed_writes()
    try:
        result = adopt_checkpoint(
            deps.ctx,
            host,
            vm_id,
            checkpoint_id,
            deps.principal(user, channel, request_team(body)),
            then_merge=action.get("action_id") == MERGE,
        )
        title, *lines = sweep_messages.adopted(result)
        payload = deps.notice(title, *lines)
        if client is not None:
            _edit_digest(client, body, value, sweep_messages.adopted_line(result, user))
    except ServiceError as exc:
        payload = deps.refusal(exc)
    except Exception as exc:
        payload = outage.failure(deps, exc, writes, f"button {action.get('action_id')}")
    _answer(body, respond, client, payload)


def _answer(
    body: dict[str, Any], respond: Respond, client: WebClient | None, payload: dict[str, Any]
) -> None:
    """A digest in the App Home has no response_url: answer by DM there."""
    if client is None:
        ephemeral(respond, payload)
    else:
        answer_click(body, respond, client, payload)


def register(app: App, deps: SlackDeps) -> None:
    """Attach the sweep digest's listeners to `app`."""

    @app.action(ORPHAN_BUTTONS)
    def on_orphan_button(
        ack: Ack, body: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        ack()
        deps.later("a sweep button", clicked, deps, body, respond, client)
