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
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_bolt import Ack, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError

from bot.domain import plain_mentions
from bot.durations import DurationError, parse_duration
from bot.reasons import REJECT_EXAMPLE, ReasonError, check_reason
from bot.service import (
    AlreadyStarted,
    ApprovalOutcome,
    AtTime,
    BadRequest,
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
    may_reject,
    merge,
    reject,
    request_checkpoint,
    resolve,
    rollback,
    show_change,
    start_vm,
    withdraw,
    zone_of,
)
from handlers import messages, outage
from handlers.create_form import FORM_BUDGET, open_create_form
from handlers.deps import SlackDeps, answer_click
from handlers.grammar import SLASH
from handlers.workspace import request_team
from templates.blocks import CARD_PURPOSES, ActionValue, parse_action_value

log = logging.getLogger(__name__)

Payload = dict[str, Any]

# A button value that is not one this bot drew (garbled, meant for another
# button, or naming ids past any a database holds): refused in these words,
# as the service refuses one it can read but no card carried (`NotDrawn`).
NOT_DRAWN = "This button's value is not one this bot drew; nothing was done."


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
        # Told who opened their Home, so it is kept current (handlers/app.py).
        self.home_viewers: Callable[[str], None] = lambda _user: None

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
        raw = str(action.get("value", ""))
        try:
            value = parse_action_value(raw)
        except ValueError:
            log.warning("refused button %s: its value %r is not one this bot draws", verb, raw[:80])
            answer_click(body, respond, client, self.deps.error(NOT_DRAWN))
            return
        if not value.fits(action_id):
            # A value that does not say this button's purpose acts on nothing.
            log.warning(messages.log_mismatched_value(action_id, str(value)))
            answer_click(body, respond, client, self.deps.error(NOT_DRAWN))
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
            payload = self.deps.refusal(exc)
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
        if verb in ("approve", "reject", "withdraw"):
            # The version too: a value naming one the change never reached
            # was on no card, and acts on nothing (`bound_request`).
            target = (
                Target(version=value.version)
                if value.legacy
                else Target(
                    request_id=value.request_id, action=value.purpose, version=value.version
                )
            )
            if verb == "reject" and not value.legacy:
                # Ask why first (a modal); the rejection is recorded on submit.
                may_reject(ctx, ref, approver=who, target=target)
                view = deps.view(
                    "reject_modal", c=show_change(ctx, ref), action=value.purpose, value=str(value)
                )
                opened = client.views_open(trigger_id=body["trigger_id"], view=view)
                self.view_channels.remember(_view_id(opened.data), channel)
                return None
            if verb == "reject":
                # An old message's Reject has no form to ask why, and a
                # rejection needs one: the command says it, nothing is done.
                raise BadRequest(
                    f"a reason is required to reject: use {SLASH} reject {ref} "
                    f'--reason "{REJECT_EXAMPLE}" (this message is from an older version)'
                )
            if verb == "approve":
                result = approve(ctx, ref, approver=who, target=target)
            else:
                result = withdraw(ctx, ref, requester=who, target=target)
            return self._decided(result)
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
            try:
                started = start_vm(ctx, ref, requester=who)
            except AlreadyStarted as exc:
                # Its own notice (who, when, the VM's state now), not a refusal.
                return deps.notice(*messages.already_started(exc))
            return deps.notice(*messages.starting(started.change))
        if verb == "unschedule":
            # The requester takes back a checkpoint that waits for its time
            # or its window (bot/service/withdrawal.py); the card shows it.
            return self._decided(withdraw(ctx, ref, requester=who, target=Target(action="create")))
        act: Callable[..., Any] = {"rollback": rollback, "merge": merge}[verb]
        outcome = act(ctx, ref, requester=who)
        if outcome.refused:
            return deps.payload("denied_ephemeral", outcome=outcome, action=verb)
        if outcome.waits_for_queue or outcome.already_asked:
            # Not visible in the thread (it waits for the queue, or nothing
            # new was asked): only the clicker learns it.
            return deps.notice(*messages.acted(verb, outcome))
        return None  # the card and the thread show it started (or waits for approvers)

    def _decided(self, result: ApprovalOutcome) -> Payload | None:
        """The thread and the card show a decision to everyone: no private
        echo of it. Only what the thread does not show is told to the
        clicker alone: an approval that was recorded but waits for more,
        one the policy refused on re-check, or one whose job waits for the
        queue to come back."""
        if result.state in ("pending", "refused") or result.waits_for_queue:
            return self.deps.notice(*messages.approval(result))
        return None

    def stale(self, exc: Stale, control: str = "button") -> Payload:
        return self.deps.notice(*messages.stale(exc, control), hint=messages.STALE_HINT)

    def _conflict(self, value: ActionValue, exc: Conflict) -> Payload:
        now = lookups.change_version(self.deps.ctx, value.ref)
        seen = value.version
        hint = None
        if now is not None and now != seen:
            since = lookups.happened_since(self.deps.ctx, value.ref, seen) or ((), 0)
            hint = messages.outdated(*since)
        # A refusal like any other (its mentions kept when it names someone),
        # with what happened since the card was drawn under it.
        return self.deps.refusal(exc, hint)

    def open_create(self, ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        started = time.monotonic()
        user, team = str(body["user"]["id"]), request_team(body)
        open_create_form(
            self.deps,
            client,
            str(body["trigger_id"]),
            None,
            lambda: refused_marks(self.deps, user, None, team),
            started,
        )

    # --- modal submissions -----------------------------------------------------

    def submit_create(
        self, ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient
    ) -> None:
        """Answer the form within Slack's 3 seconds: what needs no Web API
        call is checked before the answer, under its field; the policy's
        refusals too when the person's groups are known in time
        (`FORM_BUDGET`). Otherwise the form closes and the request decides,
        as a slash command's does, and its outcome (a refusal too) is told
        in a message. Either way the checkpoint is asked for once: only
        after the form was answered without errors."""
        deadline = time.monotonic() + FORM_BUDGET
        values = _values(view)
        vm = _selected(values, "vm")
        ttl = _text(values, "ttl")
        reason = _text(values, "reason")
        errors: dict[str, str] = {}
        user = str(body["user"]["id"])
        instant = self._picked_instant(values, errors)
        if not vm:
            errors["vm"] = "Choose a VM."
        else:
            problem = lookups.vm_problem(self.deps.ctx, vm)
            if problem is not None:
                errors["vm"] = problem[:150]
        if ttl:
            try:
                parse_duration(ttl)
            except DurationError as exc:
                # Past a year: the bound that matters is the policy's, for
                # this VM, said as the policy says a TTL only past it.
                ctx = self.deps.ctx
                policy = lookups.ttl_refusal(ctx, vm, ttl) if exc.too_long and vm else None
                errors["ttl"] = field_error(policy) if policy else str(exc)[:_FIELD_ERROR]
        try:
            check_reason(reason)
        except ReasonError as exc:
            errors["reason"] = exc.message[:150]
        team = request_team(body)
        channel = str(view.get("private_metadata") or "") or None
        if "vm" not in errors and "ttl" not in errors:
            # What the policy refuses whatever the host says is said here,
            # under its field, not in a message after the modal closed, when
            # it is known in time; else the request says it (`_created`).
            lifetime = parse_duration(ttl) if ttl else None
            refused = self._in_time(
                deadline, refusals_of, self.deps, vm, lifetime, user, channel, team
            )
            for field, why in (refused or {}).items():
                errors.setdefault(field, why)
        if errors:
            ack(response_action="errors", errors=errors)
            return
        ack()

        def create() -> Payload:
            who = self.deps.principal(user, channel, team)
            return self._created(who, vm, ttl, reason, values, self._at_of(user, instant))

        self.deps.later("the create modal", self._tell, client, user, channel, create)

    def _in_time(
        self, deadline: float, fn: Callable[..., dict[str, str]], *args: Any
    ) -> dict[str, str] | None:
        """`fn(*args)` if it returns before `deadline` (time.monotonic), else
        None: the form's answer does not wait for Slack's. It runs on the
        work pool; one that has not started by then never does."""
        try:
            future = self.deps.work.submit(fn, *args)
        except RuntimeError:  # the pool was shut down: the process is stopping
            return None
        try:
            return future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            future.cancel()
            log.info("the create form was answered before the policy could be asked")
            return None

    def _picked_instant(self, values: dict[str, Any], errors: dict[str, str]) -> datetime | None:
        """The form's optional "Take it at": Slack sends the instant the
        person picked on their own clock (a UNIX time); a time already past
        is refused under the field. A closed change window is said after the
        form closes (deciding it asks the VM's host, slower than the 3
        seconds a form's answer has)."""
        picked = (values.get("at") or {}).get("at", {}).get("selected_date_time")
        if not isinstance(picked, int) or isinstance(picked, bool):
            return None
        instant = datetime.fromtimestamp(picked, UTC)
        if instant <= self.deps.ctx.clock():
            errors["at"] = "That time has passed: pick a later one, or leave it empty."
        return instant

    def _at_of(self, user: str, instant: datetime | None) -> AtTime | None:
        """The picked instant in the person's Slack time zone, for how it is
        said back; after the form's answer (asking Slack may take longer)."""
        if instant is None:
            return None
        at = AtTime(
            instant,
            self.deps.homes.tz_of(user) or self.deps.ctx.settings.defaults.timezone,
            "slack",
        )
        if zone_of(at.zone) is None:
            at = AtTime(at.instant, "UTC", "configured")
        return at

    def _created(
        self,
        who: Principal,
        vm: str,
        ttl: str,
        reason: str,
        values: dict[str, Any],
        at: AtTime | None = None,
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
            at=at,
        )
        if outcome.refused:
            return self.deps.payload("denied_ephemeral", outcome=outcome, action="create")
        # From the App Home the thread is in the changes channel, not here.
        where = None if who.channel else self.deps.ctx.settings.slack.changes_channel
        return self.deps.notice(*messages.created(outcome, where))

    def submit_reject(
        self, ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient
    ) -> None:
        reason = _text(_values(view), "reason")
        try:
            check_reason(reason, example=REJECT_EXAMPLE)
        except ReasonError as exc:
            ack(response_action="errors", errors={"reason": exc.message[:150]})
            return
        try:
            value = parse_action_value(str(view.get("private_metadata") or ""))
        except ValueError:
            value = None
        if value is None or not value.fits("checkpoint:reject") or value.legacy:
            ack(response_action="errors", errors={"reason": messages.UNEXPECTED[:150]})
            return
        ack()
        user = str(body["user"]["id"])
        team = request_team(body)
        channel = self.view_channels.pop(view.get("id"))

        def run() -> Payload | None:
            who = self.deps.principal(user, channel, team)
            target = Target(
                request_id=value.request_id, action=value.purpose, version=value.version
            )
            result = reject(self.deps.ctx, value.ref, approver=who, reason=reason, target=target)
            return self._decided(result)

        self.deps.later("the reject modal", self._tell, client, user, channel, run)

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
        self,
        client: WebClient,
        user: str,
        channel: str | None,
        work: Callable[[], Payload | None],
    ) -> None:
        """Run `work` and tell `user` the result: ephemeral in the channel the
        modal came from, else in the app's DM with them (nothing when the
        thread already shows it: `work` returned None)."""
        writes = committed_writes()
        try:
            payload = work()
        except Stale as exc:
            # The person submitted a form (Reject's reason, an extension), not a button.
            payload = self.stale(exc, "form")
        except ServiceError as exc:
            payload = self.deps.refusal(exc)
        except Exception as exc:
            payload = outage.failure(self.deps, exc, writes, "a modal submission")
        if payload is None:
            return
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
            self.home_viewers(str(event["user"]))
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

    def republish_home(self, user: str, client: WebClient) -> None:
        """Publish `user`'s Home again because a change moved (no event to
        say their team: ask Slack, as for a slash command)."""
        team, _grid = self.deps.homes.of(user)
        who = self.deps.principal(user, None, team, verify_home=True)
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
            scheduled=data.scheduled,
            waves_to_approve=data.waves_to_approve,
            waves=data.waves,
            start_after_restore=self.deps.start_after_restore,
        )
        client.views_publish(user_id=user, view=view)


# Slack shows an input's error under it, wrapped (its docs set no length
# for `response_action: errors`); a few lines there still read as a note on
# the field. Until 2026-12-06 it was 150, which cut a domain controller's
# refusal mid-word before its reason.
_FIELD_ERROR = 300


# A refusal of the lifetime asked for is said under the TTL field; any
# other (the VM, the person) under the VM field.
_FIELD_OF_RULE = {"ttl": "ttl"}


def refusals_of(
    deps: SlackDeps,
    vm: str,
    ttl: timedelta | None,
    user: str,
    channel: str | None,
    team: str | None,
) -> dict[str, str]:
    """Why the policy refuses a checkpoint of `vm` (for `ttl`) for `user`
    whatever the host says, by the modal field it concerns (plain text for
    a field error); {} when nothing does, or when the person or the policy
    cannot be asked now (the request then decides)."""
    try:
        who = deps.principal(user, channel, team)
        refusals = lookups.refused_at_once(deps.ctx, vm, who, ttl)
    except ServiceError:
        return {}
    errors: dict[str, str] = {}
    for refusal in refusals:
        field = _FIELD_OF_RULE.get(refusal.rule, "vm")
        if field not in errors:
            errors[field] = field_error(refusal, vm)
    return errors


# Shortened to make room for what to do instead, a refusal keeps at least
# this much: below it, the field says the refusal alone.
_SHORTEST_WHY = 80
_ASIDE = re.compile(r"\s*\([^()]*\)")


def field_error(refusal: lookups.Refusal, vm: str | None = None) -> str:
    """A rule's refusal under a form field (plain text): "Refused: why.",
    then what to do instead as a sentence of its own (the rules write both
    as clauses: seen "… not a backup. ask for at most 7d"). When both do
    not fit, the refusal is shortened first, never what to do instead
    (seen: a DC's refusal filled the field and the remediation was
    dropped): its asides in parentheses go, then its last words, and it
    says where all of it is (`/checkpoint policy VM`); never cut mid-word."""
    why = _sentence(plain_mentions(f"Refused: {refusal.message}"))
    instead = _sentence(plain_mentions(refusal.remediation)) if refusal.remediation else ""
    if instead and len(why) + 1 + len(instead) <= _FIELD_ERROR:
        return f"{why} {instead}"
    where = f" (/checkpoint policy {vm} says all of it)" if vm else ""
    if instead:
        short = _ASIDE.sub("", why).rstrip(".")
        kept = f"{short}{where}. {instead}"
        if len(kept) <= _FIELD_ERROR:
            return kept
        room = _FIELD_ERROR - len(f" …{where}. {instead}")
        if room >= _SHORTEST_WHY:
            return f"{_cut_words(short, room)} …{where}. {instead}"
    if len(why) <= _FIELD_ERROR:
        return why
    tail = f" …{where}"
    return _cut_words(why, _FIELD_ERROR - len(tail)) + tail


def _cut_words(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters between words."""
    cut = text[:limit]
    if len(text) > limit and " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:(")


def _sentence(clause: str) -> str:
    """`clause` begun with a capital and ended with a full stop, unless it
    already ends a sentence (a VM's name or a command first stays as it is)."""
    text = clause.strip()
    if text[:1].islower():
        text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else f"{text}."


def refused_marks(
    deps: SlackDeps, user: str, channel: str | None, team: str | None
) -> dict[str, str]:
    """VM name → the rule refusing it outright, for the create modal's picker
    ({} when the person or the policy cannot be asked now: no marks)."""
    try:
        return lookups.refused_vms(deps.ctx, deps.principal(user, channel, team))
    except ServiceError:
        return {}


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
