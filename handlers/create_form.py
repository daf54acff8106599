"""Opening the create form in time (`/checkpoint create` alone, the App
Home's New checkpoint), and the time budget of its answers."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.service import lookups
from handlers.deps import SlackDeps

log = logging.getLogger(__name__)

# Slack wants a form's answer within 3 seconds
# (https://api.slack.com/surfaces/modals#interactions), however long its own
# Web API takes meanwhile. What needs a Web API call before the answer (the
# person's user groups, for the policy's refusals under the fields) is waited
# for until this long after the submission arrived; past it the form closes
# and the request itself decides, its outcome told in a message.
FORM_BUDGET = 1.5


def open_create_form(
    deps: SlackDeps,
    client: WebClient,
    trigger_id: str,
    channel: str | None,
    marks: Callable[[], dict[str, str]],
    started: float,
) -> None:
    """Open the create form within its trigger's 3 seconds
    (https://api.slack.com/interactivity/handling#modal_responses). The VM
    picker marks what the policy refuses outright, which needs the person's
    groups, a Web API call: with them when they are known `FORM_BUDGET`
    after `started` (time.monotonic), else at once without them, and the
    form is updated in place (views.update) once they are. The marks only
    guide the pick: the submission decides again."""
    vms = lookups.vms_by_host(deps.ctx)

    def form(refused: dict[str, str]) -> dict[str, Any]:
        return deps.view("create_modal", vms_by_host=vms, metadata=channel, refused=refused)

    try:
        pending = deps.work.submit(marks)
    except RuntimeError:  # the pool was shut down: the process is stopping
        client.views_open(trigger_id=trigger_id, view=form({}))
        return
    try:
        refused = pending.result(timeout=max(0.0, started + FORM_BUDGET - time.monotonic()))
    except FutureTimeout:
        opened = client.views_open(trigger_id=trigger_id, view=form({}))
        shown = (opened.get("view") or {}) if opened is not None else {}
        pending.add_done_callback(lambda done: _mark_later(client, shown, done, form))
        return
    client.views_open(trigger_id=trigger_id, view=form(refused))


def _mark_later(
    client: WebClient,
    shown: dict[str, Any],
    done: Future[dict[str, str]],
    form: Callable[[dict[str, str]], dict[str, Any]],
) -> None:
    """The form opened without its marks, given them now. A form the person
    already changed (its hash moved on) or closed is left as it is."""
    if done.cancelled() or done.exception() is not None or not shown.get("id"):
        return
    refused = done.result()
    if not refused:
        return
    try:
        client.views_update(view_id=shown["id"], hash=shown.get("hash"), view=form(refused))
    except SlackApiError as exc:
        log.info("the create form's marks were not added: %s", exc.response.get("error"))
