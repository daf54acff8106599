"""A wave member an approver rejects is told as a rejection, on the wave's
card and once in its thread (docs/batches.md, "In Slack").

Seen in the playground: a wave of a prod VM that needs an approval and a
staging VM that needs none. Bob rejected the prod member, once with
`/checkpoint reject CHG-n --reason …` and once with the Reject… form. The
card said ":x: *WEB02* on HV02 · rejected" followed by "create of WEB02 needs
1 approval (env=prod)", the policy's reason for asking, not the rejection,
and its progress line counted the member "1 refused"; the wave's thread
said nothing of it. Now the card's line says who rejected it (a mention) and
why (the rejecter's words, escaped), the progress line counts it rejected,
and one reply in the wave's thread says the same, however many syncs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.changes import Command
from bot.changes.batch_milestones import note_finished
from bot.changes.batch_record import batch_note, get_batch
from bot.changes.record import get_change, note, transition
from bot.notify import ThreadNotifier
from bot.service import show_batch
from bot.store.db import session_scope
from bot.store.models import BatchEvent
from bot.store.tables import change_ref
from tests.slack_support import Call, RunningBot
from tests.test_batch_milestones import T0, _wave
from tests.test_slack_flow import (
    button,
    card_button,
    checked_bot,
    command,
    roots,
    shown,
    wave_replies,
)
from tests.test_slack_http import wait_state
from tests.test_slack_modals import opened_view, submitted

# Creating a prod VM needs one approval; a staging VM, none.
PROD_CREATE_APPROVED = """
rules:
  approvals:
    overrides:
      - scope: {tags: {env: prod}}
        params: {count: 1, actions: [create]}
"""
# What Bob writes: a person's words, which must never ping anyone.
REASON = "freeze week, ask after Monday <!channel>"
ESCAPED = "freeze week, ask after Monday &lt;!channel&gt;"


def _wave_waiting(bot: RunningBot) -> str:
    """Alice's wave of WEB02 (prod) and STG-WEB01 (staging), waiting for its
    one approval, its thread posted; WEB02's change."""
    preview = command(bot, 'create WEB02 STG-WEB01 --reason "KB5044284"')
    take = button(preview, "checkpoint:wave_take")
    assert take is not None
    bot.slack.click("checkpoint:wave_take", take, user="U0ALICE")
    bot.api.wait_for(
        lambda cs: any("Approval needed for the wave" in r for r in wave_replies(cs)), 30
    )
    wave = show_batch(bot.ctx, "BAT-1")
    assert wave.state.value == "awaiting_approval", wave.members
    return next(m.change for m in wave.members if m.vm_name == "WEB02")


def _rejections(calls: list[Call]) -> list[str]:
    """The wave's replies that tell WEB02's rejection."""
    return [r for r in wave_replies(calls) if ":x: *Checkpoint of WEB02 rejected*" in r]


def _card_when(bot: RunningBot, ok: Callable[[str], bool]) -> str:
    """The wave's root as last posted or updated, once `ok` holds of it."""

    def latest(calls: list[Call]) -> str:
        found = roots(calls, "BAT-0001")
        return shown(found[-1].body) if found else ""

    return latest(bot.api.wait_for(lambda cs: ok(latest(cs)), 30))


def _told_once_on_the_card_and_in_the_thread(bot: RunningBot, ref: str) -> None:
    wait_state(bot, "WEB02", "rejected")
    card = _card_when(bot, lambda text: "rejected by" in text)
    # The member's line: who rejected it (a mention) and why (escaped).
    assert f"*WEB02* on HV02 · rejected · {ref}\\n\u2003rejected by <@U0BOB>: {ESCAPED}" in card
    assert "needs 1 approval" not in card  # the policy's reason for asking is not why
    assert "<!channel>" not in card
    # Counted as rejected: a refusal is the policy's.
    assert "0 of 1 done, 1 rejected" in card and "refused" not in card

    said = _rejections(bot.api.wait_for(lambda cs: bool(_rejections(cs)), 30))
    assert len(said) == 1, said
    # Which member, who rejected it (a mention) and why (escaped).
    assert f"*WEB02* on HV02 · {ref}: rejected by <@U0BOB>: {ESCAPED}" in said[0], said[0]
    assert "<!channel>" not in said[0]

    # More syncs (the outbox's timer, the other member's approval and its
    # end) tell it no second time; the wave's end counts it rejected.
    notifier = bot.ctx.notifier
    assert isinstance(notifier, ThreadNotifier)
    for m in show_batch(bot.ctx, "BAT-1").members:
        notifier.changed(m.change_id)
    notifier.drain()
    notifier.flush()
    approve = card_button(bot, "BAT-0001", "checkpoint:wave_approve", "U0CAROL")
    bot.slack.click("checkpoint:wave_approve", approve, user="U0CAROL")
    wait_state(bot, "STG-WEB01", "active", timeout=30)
    calls = bot.api.wait_for(lambda cs: any("finished*" in r for r in wave_replies(cs)), 30)
    ended = next(r for r in wave_replies(calls) if "finished*" in r)
    assert "1 of 1 taken, 1 rejected (asked by <@U0ALICE>)" in ended, ended
    notifier.drain()
    notifier.flush()
    time.sleep(0.5)
    assert len(_rejections(bot.api.calls)) == 1, _rejections(bot.api.calls)
    assert "1 of 1 done, 1 rejected" in _card_when(bot, lambda text: "active" in text)


def test_a_member_rejected_by_command_is_told_on_the_card_and_once_in_the_thread(
    tmp_path: Path,
) -> None:
    with checked_bot(tmp_path, PROD_CREATE_APPROVED) as bot:
        ref = _wave_waiting(bot)
        answer = command(bot, f'reject {ref} --reason "{REASON}"', user="U0BOB")
        assert "reject" in shown(answer).lower()
        _told_once_on_the_card_and_in_the_thread(bot, ref)


def test_a_member_rejected_with_the_reject_form_is_told_on_the_card_and_once_in_the_thread(
    tmp_path: Path,
) -> None:
    with checked_bot(tmp_path, PROD_CREATE_APPROVED) as bot:
        ref = _wave_waiting(bot)
        # The member's own card (`/checkpoint status CHG-n`) offers Bob its
        # Approve / Reject…; Reject… asks why in a form.
        status = command(bot, f"status {ref}", user="U0BOB")
        reject = button(status, "checkpoint:reject")
        assert reject is not None, shown(status)
        reply, key = bot.slack.click("checkpoint:reject", reject, user="U0BOB")
        assert reply.status == 200
        view = opened_view(bot, "trigger." + key.rsplit(":", 1)[1])
        values: dict[str, Any] = {
            "reason": {"reason": {"type": "plain_text_input", "value": REASON}}
        }
        done = bot.slack.submit_view(submitted(view, "V0REJECT", values), user="U0BOB")
        assert done.status == 200
        _told_once_on_the_card_and_in_the_thread(bot, ref)


# --- the record: one `member_rejected` event each, once, never late ----------------


def _kinds(engine: Engine, batch_id: int) -> list[BatchEvent]:
    with session_scope(engine) as s:
        return list(
            s.exec(
                select(BatchEvent)
                .where(col(BatchEvent.batch_id) == batch_id)
                .order_by(col(BatchEvent.seq))
            ).all()
        )


def test_each_rejection_is_one_event_of_the_wave_before_the_end_that_counts_it(
    engine: Engine,
) -> None:
    batch_id, m = _wave(
        engine, {"WEB01": "active", "WEB02": "awaiting_approval", "APP01": "active"}
    )
    with session_scope(engine) as s:
        batch_note(s, get_batch(s, batch_id), kind="members_recorded", actor="bot", now=T0,
                   message="3", details={"targets": [c.id for c in m.values()]})  # fmt: skip
        transition(s, get_change(s, m["WEB02"].id or 0), Command.REJECT, actor="U0BOB",
                   now=T0 + timedelta(minutes=1), message="create rejected by <@U0BOB>",
                   details={"request": 1, "action": "create", "reason": REASON})  # fmt: skip
        # APP01's own rollback, rejected without a reason.
        note(s, get_change(s, m["APP01"].id or 0), kind="rollback_rejected", actor="cli:carol",
             now=T0 + timedelta(minutes=2), message="rollback rejected by @cli:carol",
             details={"request": 2, "action": "rollback"})  # fmt: skip
    with session_scope(engine) as s:
        assert note_finished(s, batch_id)
    with session_scope(engine) as s:
        assert not note_finished(s, batch_id)  # each told once, the end too
    events = _kinds(engine, batch_id)
    assert [e.kind for e in events] == [
        "requested",
        "members_recorded",
        "member_rejected",
        "member_rejected",
        "create_finished",
    ]
    web02, app01, end = events[2:]
    assert (web02.actor, web02.at) == ("U0BOB", T0 + timedelta(minutes=1))
    assert web02.details["reason"] == REASON and web02.details["action"] == "create"
    # The bot's words name the rejecter; the reason is kept apart from them.
    ref = change_ref(m["WEB02"].id or 0)
    assert web02.message == f"{ref} (WEB02 on HV01): create rejected by <@U0BOB>"
    assert app01.details["action"] == "rollback" and "reason" not in app01.details
    assert app01.message.endswith("rollback rejected by @cli:carol")
    assert end.message == "2 of 2 taken, 1 rejected (asked by <@U0ALICE>)"
    assert end.details["rejected"] == 1 and end.details["refused"] == 0


def test_a_rejection_long_before_the_waves_last_step_is_not_told_late(engine: Engine) -> None:
    """A wave rejected before its thread told rejections, synced again days
    later (another member merged): its thread is not told it now."""
    batch_id, m = _wave(engine, {"WEB01": "active", "WEB02": "awaiting_approval"})
    with session_scope(engine) as s:
        transition(s, get_change(s, m["WEB02"].id or 0), Command.REJECT, actor="U0BOB",
                   now=T0, message="create rejected by <@U0BOB>",
                   details={"action": "create"})  # fmt: skip
        note(s, get_change(s, m["WEB01"].id or 0), kind="ttl_reminder", actor="bot",
             now=T0 + timedelta(days=2), message="expires soon")  # fmt: skip
    with session_scope(engine) as s:
        note_finished(s, batch_id)
    assert "member_rejected" not in [e.kind for e in _kinds(engine, batch_id)]
