"""The sweep digest's buttons: Adopt and Adopt & merge on an orphan.

The digest's Keep & merge and Extend on a stale change are the thread's own
`checkpoint:merge` / `checkpoint:extend` buttons (values CHG-n:vN), so
`handlers.actions` answers them. Here, as there: ack first, then one
service call in the work pool, then an ephemeral answer to whoever clicked.
A double click or a click by a second person is one adoption; the service's
Conflict says who won.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt import Ack, App, Respond

from bot.service import ServiceError
from bot.service.adopt import adopt_checkpoint
from bot.service.sweep_views import parse_orphan_value
from handlers import messages, sweep_messages
from handlers.deps import SlackDeps, ephemeral

log = logging.getLogger(__name__)

ADOPT, MERGE = "sweep:adopt", "sweep:merge"
ORPHAN_BUTTONS = re.compile(r"^sweep:(adopt|merge)$")


def clicked(deps: SlackDeps, body: dict[str, Any], respond: Respond) -> None:
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
        ephemeral(respond, deps.error(messages.UNEXPECTED))
        return
    try:
        result = adopt_checkpoint(
            deps.ctx,
            host,
            vm_id,
            checkpoint_id,
            deps.principal(user, channel),
            then_merge=action.get("action_id") == MERGE,
        )
        title, *lines = sweep_messages.adopted(result)
        payload = deps.notice(title, *lines)
    except ServiceError as exc:
        payload = deps.error(exc.message)
    except Exception:
        log.exception(messages.log_unexpected(f"button {action.get('action_id')}"))
        payload = deps.error(messages.UNEXPECTED)
    ephemeral(respond, payload)


def register(app: App, deps: SlackDeps) -> None:
    """Attach the sweep digest's listeners to `app`."""

    @app.action(ORPHAN_BUTTONS)
    def on_orphan_button(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        deps.later("a sweep button", clicked, deps, body, respond)
