"""Buttons, modal submissions and App Home.

Every click is acknowledged first, then handed to the service. A button's
value says what it is for (`templates.blocks.ActionValue`): Approve and
Reject act only on the approval request they were rendered for, any other
button only while the change is as its card showed it
(`bot.service.binding`); a click for something that no longer holds
changes nothing, says what happened since, and its card is refreshed. The
service's state checks and idempotency keys make a double click one effect,
and its Conflict message is the polite answer for the second.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError

from bot.durations import DurationError, parse_duration
from bot.inventory import InventoryLookupError
from bot.reasons import ReasonError, check_reason
from bot.service import (
    Card,
    Conflict,
    Forbidden,
    Principal,
    ServiceError,
    Stale,
    Target,
    Unavailable,
    approve,
    check_card,
    committed_writes,
    extend,
    lookups,
    merge,
    reject,
    request_checkpoint,
    resolve,
    rollback,
    show_change,
    start_vm,
)
from handlers import messages, outage
from handlers.commands import vms_by_host
from handlers.deps import SlackDeps, answer_click
from handlers.workspace import request_team
from templates.blocks import CARD_PURPOSES, ActionValue, parse_action_value

log = logging.getLogger(__name__)

Payload = dict[str, Any]


class ViewChannels:
    """Which channel a modal was opened from, by view id, so its result can
    be told there (a view_submission does not say). Small and forgetful."""

    def __init__(self, size: int = 1000) -> None:
        self._by_view: OrderedDict[str, str] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def remember(self, view_id: str | None, channel: str | None) -> None:
        if not view_id or not channel:
            return
        with self._lock:
            self._by_view[view_id] = channel
            while len(self._by_view) > self._size:
                self._by_view.popitem(last=False)

    def pop(self, view_id: str | None) -> str | None:
        with self._lock:
            return self._by_view.pop(view_id or "", None)


class Actions:
    def __init__(self, deps: SlackDeps) -> None:
        self.deps = deps
        self.view_channels = ViewChannels()

    # --- buttons ---------------------------------------------------------------

    def button(self, ack: Ack, body: dict[str, Any], respond: Respond, client: WebClient) -> None:
        ack()
        self.deps.later("a button", self.clicked, body, respond, client)

    def clicked(self, body: dict[str, Any], respond: Respond, client: WebClient) -> None:
        action = body["actions"][0]
        action_id = str(action["action_id"])
        verb = action_id.removeprefix("checkpoint:")
        user = str(body["user"]["id"])
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
            "channel_id"
        )
        try:
            value = parse_action_value(str(action.get("value", "")))
        except ValueError:
            answer_click(body, respond, client, self.deps.error(messages.UNEXPECTED))
            return
        if not value.fits(action_id):
            # A value that does not say this button's purpose acts on nothing.
            log.warning(messages.log_mismatched_value(action_id, str(value)))
            answer_click(body, respond, client, self.deps.error(messages.UNEXPECTED))
            return
        writes = committed_writes()
        try:
            who = self.deps.principal(user, channel, request_team(body))
            payload = self._click(verb, value, who, channel, body, client)
        except Stale as exc:
            payload = self.stale(exc)
            if _from_home(body):
                # The App Home card is the viewer's own: publish it afresh.
                self.deps.later("refreshing App Home", self.publish_home_of, user, who, client)
        except Conflict as exc:
            payload = self._conflict(value, exc)
        except ServiceError as exc:
            payload = self.deps.error(exc.message)
        except Exception as exc:
            payload = outage.failure(self.deps, exc, writes, f"button {verb}")
        if payload is not None:
            answer_click(body, respond, client, payload)

    def _click(
        self,
        verb: str,
        value: ActionValue,
        who: Principal,
        channel: str | None,
        body: dict[str, Any],
        client: WebClient,
    ) -> Payload | None:
        deps, ctx, ref = self.deps, self.deps.ctx, value.ref
        if verb in ("approve", "reject"):
            target = (
                Target(version=value.version)
                if value.legacy
                else Target(request_id=value.request_id, action=value.purpose)
            )
            if verb == "approve":
                result = approve(ctx, ref, approver=who, target=target)
            else:
                result = reject(ctx, ref, approver=who, target=target)
            return deps.notice(*messages.approval(result))
        # Any other button acts only on the change as its card showed it.
        purpose = CARD_PURPOSES[f"checkpoint:{verb}"]
        check_card(ctx, ref, Card(purpose, value.version, legacy=value.legacy))
        if verb == "extend":
            view = deps.view("extend_modal", c=show_change(ctx, ref))
            opened = client.views_open(trigger_id=body["trigger_id"], view=view)
            self.view_channels.remember(_view_id(opened.data), channel)
            return None
        if verb.startswith("resolve_"):
            resolved = resolve(ctx, ref, verb.removeprefix("resolve_"), who=who)
            return deps.notice(*messages.resolved(resolved))
        if verb == "start":
            started = start_vm(ctx, ref, requester=who)
            return deps.notice(*messages.starting(started.change))
        act: Callable[..., Any] = {"rollback": rollback, "merge": merge}[verb]
        outcome = act(ctx, ref, requester=who)
        if outcome.refused:
            return deps.payload("denied_ephemeral", outcome=outcome, action=verb)
        return deps.notice(*messages.acted(verb, outcome))

    def stale(self, exc: Stale) -> Payload:
        return self.deps.notice(*messages.stale(exc), hint=messages.STALE_HINT)

    def _conflict(self, value: ActionValue, exc: Conflict) -> Payload:
        now = lookups.change_version(self.deps.ctx, value.ref)
        seen = value.version
        hint = None
        if now is not None and now != seen:
            since = lookups.happened_since(self.deps.ctx, value.ref, seen) or ((), 0)
            hint = messages.outdated(*since)
        return self.deps.error(exc.message, hint)

    def open_create(self, ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        view = self.deps.view("create_modal", vms_by_host=vms_by_host(self.deps))
        client.views_open(trigger_id=body["trigger_id"], view=view)

    # --- modal submissions -----------------------------------------------------

    def submit_create(
        self, ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient
    ) -> None:
        values = _values(view)
        vm = _selected(values, "vm")
        ttl = _text(values, "ttl")
        reason = _text(values, "reason")
        errors: dict[str, str] = {}
        if not vm:
            errors["vm"] = "Choose a VM."
        else:
            try:
                self.deps.ctx.inventory.vm(vm)
            except InventoryLookupError as exc:
                errors["vm"] = str(exc)[:150]
        if ttl:
            try:
                parse_duration(ttl)
            except DurationError as exc:
                errors["ttl"] = str(exc)[:150]
        try:
            check_reason(reason)
        except ReasonError as exc:
            errors["reason"] = exc.message[:150]
        if errors:
            ack(response_action="errors", errors=errors)
            return
        ack()
        user = str(body["user"]["id"])
        team = request_team(body)
        channel = str(view.get("private_metadata") or "") or None
        self.deps.later(
            "the create modal",
            lambda: self._tell(
                client,
                user,
                channel,
                lambda: self._created(
                    self.deps.principal(user, channel, team), vm, ttl, reason, values
                ),
            ),
        )

    def _created(
        self, who: Principal, vm: str, ttl: str, reason: str, values: dict[str, Any]
    ) -> Payload:
        outcome = request_checkpoint(
            self.deps.ctx,
            vm,
            reason=reason,
            requester=who,
            checkpoint_type=_selected(values, "checkpoint_type") or None,
            ttl=ttl or None,
            source="slack",
            channel=who.channel,
        )
        if outcome.refused:
            return self.deps.payload("denied_ephemeral", outcome=outcome, action="create")
        return self.deps.notice(*messages.created(outcome))

    def submit_extend(
        self, ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient
    ) -> None:
        duration = _text(_values(view), "duration")
        try:
            parse_duration(duration)
        except DurationError as exc:
            ack(response_action="errors", errors={"duration": str(exc)[:150]})
            return
        try:
            card = parse_action_value(str(view.get("private_metadata") or ""))
        except ValueError:
            card = None
        if card is None or not card.fits("checkpoint:extend"):
            ack(response_action="errors", errors={"duration": messages.UNEXPECTED[:150]})
            return
        ack()
        user = str(body["user"]["id"])
        team = request_team(body)
        channel = self.view_channels.pop(view.get("id"))

        def run() -> Payload:
            who = self.deps.principal(user, channel, team)
            # The modal extends the change as its card showed it, or nothing.
            check_card(self.deps.ctx, card.ref, Card("extend", card.version, legacy=card.legacy))
            outcome = extend(self.deps.ctx, card.ref, duration, requester=who)
            if outcome.refused:
                return self.deps.payload("denied_ephemeral", outcome=outcome, action="extend")
            return self.deps.notice(*messages.extended(outcome))

        self.deps.later("the extend modal", self._tell, client, user, channel, run)

    def _tell(
        self, client: WebClient, user: str, channel: str | None, work: Callable[[], Payload]
    ) -> None:
        """Run `work` and tell `user` the result: ephemeral in the channel the
        modal came from, else in the app's DM with them."""
        writes = committed_writes()
        try:
            payload = work()
        except Stale as exc:
            payload = self.stale(exc)
        except ServiceError as exc:
            payload = self.deps.error(exc.message)
        except Exception as exc:
            payload = outage.failure(self.deps, exc, writes, "a modal submission")
        try:
            if channel:
                client.chat_postEphemeral(channel=channel, user=user, **payload)
            else:
                client.chat_postMessage(channel=user, **payload)
        except SlackClientError:
            log.warning(messages.log_unexpected("telling a modal's result"), exc_info=True)

    # --- App Home ----------------------------------------------------------------

    def home_opened(self, event: dict[str, Any], body: dict[str, Any], client: WebClient) -> None:
        if event.get("tab", "home") == "home":
            self.deps.later("app_home_opened", self.publish_home, event, body, client)

    def publish_home(self, event: dict[str, Any], body: dict[str, Any], client: WebClient) -> None:
        user = str(event["user"])
        # An event need not say the user's own team: ask, as for a command.
        try:
            who = self.deps.principal(user, None, request_team(body), verify_home=True)
        except Forbidden:
            return  # refused and logged; no Home for someone who is not ours
        except Unavailable as exc:
            # Their groups decide what they may approve there: show nothing
            # rather than too little; the next open tries again.
            log.warning("App Home of %s not published: %s", user, exc)
            return
        self.publish_home_of(user, who, client)

    def publish_home_of(self, user: str, who: Principal, client: WebClient) -> None:
        data = lookups.home(self.deps.ctx, who)
        view = self.deps.view(
            "app_home",
            user=user,
            mine=data.mine,
            to_approve=data.to_approve,
            windows=data.windows,
            overdue=data.overdue,
            start_after_restore=self.deps.start_after_restore,
        )
        client.views_publish(user_id=user, view=view)


def _from_home(body: dict[str, Any]) -> bool:
    return ((body.get("view") or {}).get("type")) == "home"


def _view_id(data: Any) -> str | None:
    if isinstance(data, dict):
        found = (data.get("view") or {}).get("id")
        return str(found) if found else None
    return None


def _values(view: dict[str, Any]) -> dict[str, Any]:
    values = (view.get("state") or {}).get("values") or {}
    return values if isinstance(values, dict) else {}


def _selected(values: dict[str, Any], block: str) -> str:
    option = (values.get(block) or {}).get(block, {}).get("selected_option") or {}
    return str(option.get("value") or "")


def _text(values: dict[str, Any], block: str) -> str:
    return str((values.get(block) or {}).get(block, {}).get("value") or "").strip()
