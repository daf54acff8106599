"""`/checkpoint status CHG-n`: the change's card as its thread shows it,
then its history (what the help promises: "state, owner, reason, deadline,
history"), as one message checked against Slack's limits as a whole."""

from __future__ import annotations

from typing import Any

from bot.changes.views import ChangeView
from bot.service import lookups
from handlers.deps import SlackDeps


def status_payload(deps: SlackDeps, change: ChangeView) -> dict[str, Any]:
    card = deps.renderer.payload(
        "change_root",
        demo=False,  # the footer goes once, at the end of the history
        c=change,
        pending=lookups.waiting(deps.ctx, change),
        start_after_restore=deps.start_after_restore,
    )
    history = deps.renderer.payload("change_history", demo=deps.demo, c=change)
    return deps.renderer.joined(card, history)
