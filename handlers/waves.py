"""Patch waves in Slack: `/checkpoint create WEB01 WEB02 …` or with
`--group` / `--host` / `--tag` answers with an ephemeral preview (the
policy's word per VM) and **Take N checkpoints** / Cancel; Take records the
batch (docs/batches.md).

The buttons carry what was typed and a token: the click resolves and
decides everything again (nothing shown is trusted), and the token makes a
second click on the same preview find the batch the first one made.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any

from slack_bolt import Ack, Respond
from slack_sdk import WebClient

from bot.changes.batch_views import BatchView
from bot.service import (
    WHY_THE_WAVE_ASKS,
    BatchAction,
    CardOutOfDate,
    Principal,
    Selection,
    ServiceError,
    approve_batch,
    batch_of_preview,
    create_batch,
    merge_batch,
    preview_batch,
    rollback_batch,
    show_batch,
    withdraw_batch,
)
from bot.wave_keys import WaveClick
from handlers import messages
from handlers.deps import SlackDeps, answer_click
from handlers.grammar import WaveRequest
from handlers.workspace import request_team
from templates import counted
from templates.blocks import channel_mention, mention, people
from templates.waves import still_scheduled

log = logging.getLogger(__name__)

TAKE = "checkpoint:wave_take"
CANCEL = "checkpoint:wave_cancel"
# The batch card's buttons; their value is the batch's ref, the verb and
# the key of what the button was drawn for (bot/wave_keys.py).
CARD_VERBS = ("rollback", "merge", "approve", "withdraw")
# The App Home's "Show the wave": the card itself, so an approver sees each
# VM and its state before approving all.
SHOW = "checkpoint:wave_show"
# Slack's limit on a button's value (Block Kit reference, button element:
# https://api.slack.com/reference/block-kit/block-elements#button).
VALUE_LIMIT = 2000
# What Cancel carried before it carried the preview's token: such a
# preview cannot be matched to the wave its Take may have recorded.
_OLD_CANCEL = "cancel"
# How long a second Take on a preview waits for the first to finish
# recording the wave before it shows the card (the clicks run after their ack).
RECORDING_WAIT = 20.0

Payload = dict[str, Any]


@dataclass(frozen=True)
class WaveValue:
    """What a Take button carries: the request as typed, and its token."""

    names: tuple[str, ...]
    reason: str
    group: str | None
    host: str | None
    tag: str | None
    checkpoint_type: str | None
    ttl_text: str | None
    token: str
    # `--at` as typed: read again in the clicker's Slack time zone on Take.
    at_text: str | None = None
    cluster: str | None = None

    def encode(self) -> str:
        # Slack counts a value's characters: a reason in any script costs
        # its length, not six characters an accented letter (`\u00e9`).
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True, ensure_ascii=False)

    @classmethod
    def decode(cls, text: str) -> WaveValue:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        return cls(
            names=tuple(str(n) for n in data["names"]),
            reason=str(data["reason"]),
            group=_opt(data.get("group")),
            host=_opt(data.get("host")),
            tag=_opt(data.get("tag")),
            checkpoint_type=_opt(data.get("checkpoint_type")),
            ttl_text=_opt(data.get("ttl_text")),
            token=str(data["token"]),
            at_text=_opt(data.get("at_text")),
            cluster=_opt(data.get("cluster")),
        )

    @property
    def selection(self) -> Selection:
        return Selection.of(
            self.names,
            groups=[self.group] if self.group else [],
            hosts=[self.host] if self.host else [],
            tags=[self.tag] if self.tag else [],
            clusters=[self.cluster] if self.cluster else [],
        )


def _opt(value: object) -> str | None:
    return None if value is None else str(value)


class Waves:
    def __init__(self, deps: SlackDeps) -> None:
        self.deps = deps

    def _card(self, view: BatchView, viewer: str | None = None) -> Payload:
        """The wave's card; `viewer` when only they see it (an answer to
        their click): its Approve all leaves out what they asked for, which
        would only refuse them."""
        return self.deps.payload(
            "batch_card", b=view, start_after_restore=self.deps.start_after_restore, viewer=viewer
        )

    def preview(self, request: WaveRequest, who: Principal) -> Payload:
        value = WaveValue(
            names=request.names,
            reason=request.reason,
            group=request.group,
            host=request.host,
            tag=request.tag,
            checkpoint_type=request.checkpoint_type,
            ttl_text=request.ttl_text,
            token=secrets.token_hex(12),
            at_text=request.at_text,
            cluster=request.cluster,
        )
        encoded = value.encode()
        if len(encoded) > VALUE_LIMIT:
            return self.deps.error(_too_long(value, len(encoded)))
        shown = preview_batch(
            self.deps.ctx,
            value.selection,
            requester=who,
            reason=request.reason,
            checkpoint_type=request.checkpoint_type,
            ttl=request.ttl_text,
            at=self.deps.at_of(who.id, request.at_text) if request.at_text else None,
        )
        return self.deps.payload("wave_preview", p=shown, value=encoded, token=value.token)

    def button(self, ack: Ack, body: dict[str, Any], respond: Respond, client: WebClient) -> None:
        ack()
        self.deps.later("a wave button", self.clicked, body, respond, client)

    def clicked(self, body: dict[str, Any], respond: Respond, client: WebClient) -> None:
        action = body["actions"][0]
        verb = str(action["action_id"]).removeprefix("checkpoint:wave_")
        if verb in CARD_VERBS:
            self._on_card(verb, body, respond, client)
            return
        if action["action_id"] == SHOW:
            try:
                shown = show_batch(self.deps.ctx, str(action.get("value", "")))
                card = self._card(shown, viewer=str(body["user"]["id"]))
            except ServiceError as exc:
                card = self.deps.refusal(exc)
            answer_click(body, respond, client, card)
            return
        if action["action_id"] == CANCEL:
            self._cancel(str(action.get("value", "")), body, respond, client)
            return
        try:
            value = WaveValue.decode(str(action.get("value", "")))
        except (ValueError, KeyError, TypeError):
            answer_click(body, respond, client, self.deps.error(messages.UNEXPECTED))
            return
        user = str(body["user"]["id"])
        channel = (body.get("channel") or {}).get("id")
        try:
            who = self.deps.principal(user, channel, request_team(body))
            at = self.deps.at_of(user, value.at_text) if value.at_text else None
            out = create_batch(
                self.deps.ctx,
                value.selection,
                reason=value.reason,
                requester=who,
                checkpoint_type=value.checkpoint_type,
                ttl=value.ttl_text,
                source="slack",
                channel=channel,
                token=value.token,
                at=at,
            )
        except ServiceError as exc:
            answer_click(body, respond, client, self.deps.refusal(exc))
            return
        shown = out.batch
        if out.existing and not shown.recorded:
            # Another click on this preview is recording the wave: its card
            # lists only the members recorded so far until that ends.
            shown = self._once_recorded(shown)
        # The requester's own copy: they are never an approver of their wave.
        _replace(respond, self._card(shown, viewer=who.id))

    def _once_recorded(self, view: BatchView) -> BatchView:
        deadline = time.monotonic() + RECORDING_WAIT
        while not view.recorded and time.monotonic() < deadline:
            time.sleep(0.2)
            view = show_batch(self.deps.ctx, view.ref)
        return view

    def _cancel(
        self, token: str, body: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        """Cancel on a preview: nothing to undo while nothing was taken from
        it; once Take recorded the wave (a second window, a slow client),
        Cancel says so and shows the wave's card, which can stop what has
        not run (Withdraw) and decide the rest."""
        try:
            taken = batch_of_preview(self.deps.ctx, token) if token != _OLD_CANCEL else None
        except ServiceError as exc:
            answer_click(body, respond, client, self.deps.refusal(exc))
            return
        if taken is None:
            done = self.deps.notice("Cancelled", "Nothing was recorded and no host was asked.")
            _replace(respond, done)
            return
        user = str(body["user"]["id"])
        said = self.deps.notice(
            f"Not cancelled: {taken.ref} was already taken from this preview",
            f"Cancel does nothing once Take has recorded the wave. On its card, "
            f"*Withdraw* stops what has not run yet; *Roll back all* or *Keep & merge all* "
            f"decides the rest (`/checkpoint batch {taken.ref}`).",
        )
        answer_click(body, respond, client, said)
        _replace(respond, self._card(taken, viewer=user))

    def _on_card(
        self, verb: str, body: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        """Roll back all, Keep & merge all, Approve all, Withdraw: one
        service call for the whole wave, bound to what the button was drawn
        for (bot/wave_keys.py); the answer is the card as it stands after it.

        A refusal is `deps.refusal`'s: a Forbidden names who may act as a
        mention (`<@U…>`), which `deps.error` would show escaped."""
        click = WaveClick.parse(str(body["actions"][0].get("value", "")))
        ref = click.ref
        # A value that names no key (a card drawn before buttons were bound,
        # or one not drawn by this bot) is out of date whatever the wave is.
        drawn = click.key if click.verb == verb and click.key is not None else ""
        user = str(body["user"]["id"])
        channel = (body.get("channel") or {}).get("id")
        ctx = self.deps.ctx
        # Where the wave's card and thread are: known for an approval
        # (`BatchApproval.channel`), said to a click outside them.
        where: str | None = None
        try:
            who = self.deps.principal(user, channel, request_team(body))
            if verb == "approve":
                approved = approve_batch(ctx, ref, approver=who, drawn=drawn)
                lines = [messages.member_line(vm, why) for vm, why in approved.problems]
                title = (
                    f"Approved {len(approved.outcomes)} of {ref}"
                    if approved.outcomes
                    else f"Nothing of {ref} was approved"
                )
                view = approved.batch
                where = approved.channel
                done = bool(approved.outcomes)
            elif verb == "withdraw":
                taken_back = withdraw_batch(ctx, ref, requester=who, drawn=drawn)
                lines = [messages.member_line(vm, why) for vm, why in taken_back.problems]
                title = f"Withdrew {len(taken_back.withdrawn)} of {ref}: nothing runs for them"
                view = taken_back.batch
                done = bool(taken_back.withdrawn)
            else:
                call = rollback_batch if verb == "rollback" else merge_batch
                acted = call(ctx, ref, requester=who, drawn=drawn)
                view = acted.batch
                title, lines = _acted(verb, acted)
                done = bool(acted.job_ids)
        except CardOutOfDate as exc:
            # Nothing was done: the card as it is now is what to decide on
            # again (from the App Home too, as its "Show the wave" answers).
            answer_click(body, respond, client, self.deps.refusal(exc))
            answer_click(body, respond, client, self._card(exc.batch, viewer=user))
            return
        except ServiceError as exc:
            answer_click(body, respond, client, self.deps.refusal(exc))
            return
        if not body.get("response_url"):
            # Clicked in the App Home: the answer goes to the clicker's DM
            # (answer_click), where a copy of the card would never be
            # updated (it showed "active" and its buttons after the wave
            # was merged). The Home is published again as the wave moves
            # (the notifier's listeners); the answer says where the card is.
            answer_click(body, respond, client, self.deps.notice(title, *lines, _where(ref, where)))
            return
        if (body.get("container") or {}).get("is_ephemeral"):
            # A card only the clicker sees (`/checkpoint batch`'s answer):
            # nobody redraws it but this answer, so it is redrawn in place
            # (only the clicker sees it: what they asked for offers them no
            # Approve all), and no copy whose buttons no longer fit stays.
            answer_click(body, respond, client, self.deps.notice(title, *lines))
            _replace(respond, self._card(view, viewer=user))
            return
        # The wave's own card: the notifier redraws it for everyone as the
        # wave moves (docs/slack-setup.md, "A quiet thread": a click whose
        # effect the card shows gets no private "done"). Said privately only
        # what the card cannot show: members left out, or nothing done.
        if lines or not done:
            answer_click(body, respond, client, self.deps.notice(title, *lines))


def _acted(verb: str, acted: BatchAction) -> tuple[str, list[str]]:
    word = "Rollback" if verb == "rollback" else "Merge"
    decision = acted.decision
    lines = [
        messages.member_line(m.vm, m.detail)
        for m in acted.members
        if m.result.value == "not_started"
    ]
    if acted.already_asked:
        # The single change's words (handlers/messages.py, `acted`): its
        # approvers were asked once, when it was first asked for.
        return f"{word} already waits for approval", [
            f"*{acted.batch.ref}*: its {verb} already waits for approval, asked by "
            f"{_joined([mention(p) for p in acted.asked_by])}; nothing new was asked.",
            *lines,
            *_still_scheduled(verb, acted),
        ]
    if acted.refused:
        return f"{word} refused: nothing was started", [people(r) for r in decision.reasons]
    if decision.approval is not None and not acted.job_ids:
        need = people(decision.approval.describe())
        return f"{word} waits for approval", [
            f"It needs {need}: {WHY_THE_WAVE_ASKS}.",
            # Members left out (their host could not be asked) are said too.
            *lines,
            *_still_scheduled(verb, acted),
        ]
    started = counted(len(acted.job_ids), "VM")
    return f"{word} of {started} started", lines + _still_scheduled(verb, acted)


def _still_scheduled(verb: str, acted: BatchAction) -> list[str]:
    """A member still waiting for its window is taken after the rest of the
    wave was rolled back or merged: said to whoever asked, with how to stop it."""
    past = "rolled back" if verb == "rollback" else "merged"
    batch = acted.batch
    return [
        f"{w.words(mrkdwn=True)}, after the rest of the wave is {past}: "
        f"{mention(batch.requester)} stops it with "
        f"`/checkpoint withdraw {batch.ref} create`"
        for w in still_scheduled(batch)
    ]


def _joined(items: list[str]) -> str:
    """`a`, `a and b`, `a, b and c`."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _where(ref: str, channel: str | None) -> str:
    """Where the wave's card and its thread are, for an answer outside
    them (mrkdwn). A channel id becomes a link; a DM or no channel at all
    (a wave asked for on the CLI) cannot be linked to, so the command that
    shows the card is named instead."""
    shows = f"`/checkpoint batch {ref}` shows its card as it is now"
    linked = channel_mention(channel) if channel else ""
    if linked.startswith("<#"):
        return (
            f"*{ref}*: its card and its thread are in {linked}, where each VM's "
            f"progress is kept up to date; {shows}."
        )
    return f"*{ref}*: {shows}."


def _too_long(value: WaveValue, length: int) -> str:
    """What made a wave's Take value too long for a button, in words."""
    names = len(json.dumps(value.names, ensure_ascii=False))
    if names >= len(json.dumps(value.reason, ensure_ascii=False)):
        return (
            f"this wave names {counted(len(value.names), 'VM')} one by one, too many to carry "
            f"on a button ({length} characters, Slack's limit is {VALUE_LIMIT}): select them "
            "with `--group`, `--host`, `--cluster` or `--tag`, or use `checkpoint-bot "
            "checkpoint create` on the CLI"
        )
    return (
        f"the reason is too long to carry on a button with the wave ({length} characters, "
        f"Slack's limit is {VALUE_LIMIT}): shorten it, or use `checkpoint-bot checkpoint "
        "create` on the CLI"
    )


def _replace(respond: Respond, payload: Payload) -> None:
    """The preview becomes the answer: its buttons cannot be clicked again."""
    respond(
        text=payload["text"],
        blocks=payload.get("blocks"),
        response_type="ephemeral",
        replace_original=True,
    )
