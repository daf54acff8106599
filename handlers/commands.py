"""`/checkpoint`: acknowledged at once, then parsed, handed to one service
function, and answered to the requester alone (ephemeral, via response_url).
What changes a change is told to the channel by the change's thread, which
the service's notifier keeps up to date."""

from __future__ import annotations

import logging
import time
from typing import Any

from slack_bolt import Ack, Respond
from slack_sdk import WebClient

from bot.service import (
    Ambiguous,
    Principal,
    ServiceError,
    Target,
    WindowNotices,
    approve,
    change_settings,
    committed_writes,
    explain,
    extend,
    list_changes,
    list_checkpoints,
    lookups,
    merge,
    reject,
    request_checkpoint,
    rollback,
    scheduled_runs,
    show_batch,
    show_change,
    show_settings,
    withdraw,
    withdraw_batch,
)
from handlers import messages, outage
from handlers.create_form import open_create_form
from handlers.deps import SlackDeps, ephemeral
from handlers.grammar import (
    SLASH,
    ApproveRequest,
    BatchRequest,
    ChangesRequest,
    CreateRequest,
    ExtendRequest,
    GrammarError,
    HelpRequest,
    ListRequest,
    MergeRequest,
    OpenCreateModal,
    PolicyRequest,
    RejectRequest,
    RollbackRequest,
    SettingsRequest,
    StatusRequest,
    WaveRequest,
    WindowsRequest,
    WithdrawRequest,
    help_sections,
    parse,
)
from handlers.status import status_payload
from handlers.waves import Waves
from templates.blocks import slack_date

log = logging.getLogger(__name__)

Payload = dict[str, Any]
# `/checkpoint status` alone: the newest open changes a message shows (each
# is a few lines; the message's blocks and text are budgeted by the template).
OPEN_CHANGES_SHOWN = 40


class Commands:
    def __init__(self, deps: SlackDeps) -> None:
        self.deps = deps

    def __call__(
        self, ack: Ack, command: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        # Slack gives three seconds; nothing may come before the ack.
        ack()
        self.deps.later("/checkpoint", self.reply, command, respond, client)

    def reply(self, command: dict[str, Any], respond: Respond, client: WebClient) -> None:
        writes = committed_writes()
        try:
            payload = self.answer(command, client)
        except GrammarError as exc:
            # The grammar escaped the input it echoes: escape nothing twice.
            payload = self.deps.error(exc.message, exc.hint or None, escaped=True)
        except Ambiguous as exc:
            how = f"{SLASH} {exc.verb} {exc.ref}"
            payload = self.deps.error(exc.message, messages.say_which(exc, how))
        except ServiceError as exc:
            payload = self.deps.refusal(exc)
        except Exception as exc:
            payload = outage.failure(self.deps, exc, writes, "/checkpoint")
        if payload is not None:
            ephemeral(respond, payload)

    def answer(self, command: dict[str, Any], client: WebClient) -> Payload | None:
        user, channel = str(command["user_id"]), command.get("channel_id")
        deps, ctx = self.deps, self.deps.ctx
        # (workspace, user), before anything else: a slash command does not
        # say the user's own team, so it is asked for (an external member of
        # a shared channel is refused here, whatever they asked).
        team = command.get("team_id")
        started = time.monotonic()
        deps.admit(user, team, verify_home=True)
        request = parse(str(command.get("text") or ""))
        if isinstance(request, OpenCreateModal):
            # The form first: its trigger lasts 3 s, and the person's groups
            # (for the picker's marks) may take Slack longer.
            open_create_form(
                deps,
                client,
                str(command["trigger_id"]),
                channel,
                lambda: lookups.refused_vms(ctx, deps.principal(user, channel, team)),
                started,
            )
            return None
        principal = deps.principal(user, channel, team)

        def who() -> Principal:
            return principal

        match request:
            case HelpRequest(topic=topic):
                title = f"/checkpoint {topic}" if topic else None
                values = {"title": title} if title else {}
                return deps.payload("help", sections=help_sections(topic), **values)
            case CreateRequest():
                return self._create(request, who())
            case ListRequest(target=target):
                return deps.payload("checkpoint_list", listing=self._list(target), scope=target)
            case ChangesRequest():
                listing = list_changes(ctx, limit=OPEN_CHANGES_SHOWN)
                return deps.payload("change_list", listing=listing, now=ctx.clock())
            case StatusRequest(change_ref=ref):
                # As the thread's root shows it, then its history.
                return status_payload(deps, show_change(ctx, ref))
            case WaveRequest():
                return Waves(deps).preview(request, who())
            case BatchRequest(batch_ref=ref):
                # Answered to `user` alone: no Approve all of what they asked for.
                return deps.payload(
                    "batch_card",
                    b=show_batch(ctx, ref),
                    start_after_restore=deps.start_after_restore,
                    viewer=user,
                )
            case PolicyRequest(vm=vm, action=action):
                # A host that could not be asked leaves it undecided: said
                # as such, never as a refusal (bot/service/explaining.py).
                explanation = explain(ctx, vm, action, who())
                return deps.payload(
                    "policy_explain",
                    action=action,
                    vm=vm,
                    who=user,
                    decision=explanation.decision,
                    rows=explanation.rows,
                    rule_notes=explanation.notes,
                    undecided=explanation.undecided,
                    unanswered=explanation.unanswered,
                )
            # A VM's name means its one change the action fits
            # (bot/service/vm_target.py).
            case RollbackRequest():
                outcome = rollback(ctx, request.target, requester=who())
                return self._acted("rollback", outcome)
            case MergeRequest():
                outcome = merge(ctx, request.target, requester=who())
                return self._acted("merge", outcome)
            case ExtendRequest(duration_text=by):
                outcome = extend(ctx, request.target, by, requester=who())
                if outcome.refused:
                    return deps.payload("denied_ephemeral", outcome=outcome, action="extend")
                return deps.notice(*messages.extended(outcome))
            case ApproveRequest(change_ref=ref, action=action):
                # Approves what waits (or the named one) and says which it was.
                result = approve(ctx, ref, approver=who(), target=Target(action=action))
                return deps.notice(*messages.approval(result))
            case RejectRequest(change_ref=ref, action=action, reason=reason):
                result = reject(
                    ctx, ref, approver=who(), reason=reason, target=Target(action=action)
                )
                return deps.notice(*messages.approval(result))
            case WithdrawRequest(change_ref=ref, action=action) if ref.startswith("BAT-"):
                taken_back = withdraw_batch(ctx, ref, requester=who(), action=action)
                return deps.notice(*messages.wave_withdrawn(taken_back))
            case WithdrawRequest(change_ref=ref, action=action):
                result = withdraw(ctx, ref, requester=who(), target=Target(action=action))
                return deps.notice(*messages.approval(result))
            case WindowsRequest():
                return self._windows()
            case SettingsRequest():
                return self._settings(request, who())
        raise AssertionError(f"unhandled request {request!r}")  # pragma: no cover

    def _create(self, request: CreateRequest, who: Any) -> Payload:
        at = self.deps.at_of(who.id, request.at_text) if request.at_text else None
        outcome = request_checkpoint(
            self.deps.ctx,
            request.vm,
            reason=request.reason,
            requester=who,
            checkpoint_type=request.checkpoint_type,
            ttl=request.ttl_text,
            source="slack",
            channel=who.channel,
            at=at,
        )
        if outcome.refused:
            # Recorded by the service; shown to the requester alone.
            return self.deps.payload("denied_ephemeral", outcome=outcome, action="create")
        return self.deps.notice(*messages.created(outcome))

    def _acted(self, verb: str, outcome: Any) -> Payload:
        if outcome.refused:
            return self.deps.payload("denied_ephemeral", outcome=outcome, action=verb)
        return self.deps.notice(*messages.acted(verb, outcome))

    def _list(self, target: str | None) -> Any:
        return list_checkpoints(self.deps.ctx, target=target)

    def _windows(self) -> Payload:
        ctx = self.deps.ctx
        windows = {w.name: w for w in ctx.policy.windows}
        notices = WindowNotices(ctx)
        lines = []
        for w in lookups.upcoming_windows(ctx):
            # Only what still waits: a create that ran when it opened is no
            # longer "scheduled" (what counts: bot/service/window_notices.py).
            waiting = notices.waiting_for(windows[w.name], w.opens_at)
            approvals = len(waiting.awaiting_approval)
            # window_line has no slot for these; they read before the definition.
            extra = [f"{approvals} waiting for approval"] if approvals else []
            lines.append(
                messages.window_line(
                    w.name,
                    slack_date(w.opens_at),
                    slack_date(w.closes_at),
                    f"applies to {windows[w.name].applies_to}",
                    len(waiting.scheduled),
                    open_now=w.open_now,
                    defined=" · ".join([*extra, w.defined] if w.defined else extra),
                )
            )
        timed = [messages.scheduled_line(t) for t in scheduled_runs(ctx)]
        if not lines and not timed:
            return self.deps.notice(
                "Change windows", messages.NO_WINDOWS, hint=messages.NO_WINDOWS_HINT
            )
        return self.deps.notice("Change windows", *(lines or [messages.NO_WINDOWS]), *timed)

    def _settings(self, request: SettingsRequest, who: Principal) -> Payload:
        ctx = self.deps.ctx
        if not request.is_change:
            shown = show_settings(ctx, request.vm)
            return self.deps.payload("vm_settings", vm=shown.vm, disagreement=shown.disagreement)
        # For admins, checked by the policy; Forbidden / BadRequest carry the
        # words the requester sees.
        result = change_settings(
            ctx,
            request.vm,
            who,
            checkpoint_type=request.checkpoint_type,
            automatic=request.automatic,
            reason=request.reason or "",
        )
        return self.deps.payload(
            "vm_settings",
            vm=result.vm,
            changed=list(result.changed),
            changed_by=who.id,
            requested=True,
            disagreement=result.disagreement,
            read_back=result.read_back_note,
        )
