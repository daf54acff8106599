"""A wave's buttons act only on what their card showed (bot/wave_keys.py,
docs/security.md "Buttons act on what they showed").

Seen: Bob drew the wave's card while its checkpoints waited for approval
(Approve all, its confirm "You approve: WEB01 (create), WEB02 (create)").
Carol approved the create; later Alice asked to Roll back all, which waited
for an approver; Bob clicked the Approve all of his old card and both VMs
were rolled back: a destructive rollback approved from a card that showed a
create. The same unbound value sat on Roll back all, Keep & merge all and
Withdraw. Now each value names what it was drawn for; the click acts only
while the wave still shows so, and otherwise does nothing and answers with
the wave's card as it is now.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bot.service import show_batch, show_change
from bot.wave_keys import WaveClick, key_of, value_of
from tests.slack_support import RunningBot
from tests.test_slack_flow import button, card_button, checked_bot, command, shown
from tests.test_slack_http import wait_state

# Production VMs need one approval to be checkpointed and to be rolled back;
# Carol is an admin.
CREATE_AND_ROLLBACK_APPROVED = """
admins: {users: [U0CAROL]}
rules:
  approvals:
    overrides:
      - scope: {tags: {env: prod}}
        params: {count: 1, actions: [create, rollback]}
"""


def _answers(bot: RunningBot, key: str, count: int) -> list[dict[str, Any]]:
    calls = bot.api.wait_for(lambda cs: sum(c.method == key for c in cs) >= count, 30)
    return [c.body for c in calls if c.method == key]


def _taken(bot: RunningBot) -> None:
    preview = command(bot, 'create WEB01 WEB02 --reason "KB5044284"')
    take = button(preview, "checkpoint:wave_take")
    assert take is not None
    _reply, key = bot.slack.click("checkpoint:wave_take", take, user="U0ALICE")
    _answers(bot, key, 1)


def _history(bot: RunningBot, vm: str) -> list[tuple[str, str]]:
    member = next(m for m in show_batch(bot.ctx, "BAT-1").members if m.vm_name == vm)
    return [(e.kind, e.actor) for e in show_change(bot.ctx, member.change).events]


def test_an_old_cards_approve_all_does_not_approve_a_later_rollback(tmp_path: Path) -> None:
    with checked_bot(tmp_path, CREATE_AND_ROLLBACK_APPROVED) as bot:
        _taken(bot)
        old = card_button(bot, "BAT-0001", "checkpoint:wave_approve", "U0BOB")
        approve = card_button(bot, "BAT-0001", "checkpoint:wave_approve", "U0CAROL")
        assert approve == old  # one wave, one key, whoever draws it
        bot.slack.click("checkpoint:wave_approve", approve, user="U0CAROL", ephemeral=True)
        for vm in ("WEB01", "WEB02"):
            wait_state(bot, vm, "active", timeout=30)
        rollback = card_button(bot, "BAT-0001", "checkpoint:wave_rollback", "U0ALICE")
        _reply, key = bot.slack.click(
            "checkpoint:wave_rollback", rollback, user="U0ALICE", ephemeral=True
        )
        assert "Rollback waits for approval" in " ".join(shown(a) for a in _answers(bot, key, 2))

        _reply, key = bot.slack.click("checkpoint:wave_approve", old, user="U0BOB", ephemeral=True)
        refused, card = _answers(bot, key, 2)
        said = shown(refused)
        assert "BAT-0001 changed since this card was drawn" in said, said
        assert "Approve all is out of date: nothing was done" in said
        # What is left to decide, on the card that now answers.
        fresh = button(card, "checkpoint:wave_approve")
        assert fresh is not None and fresh != old
        assert "You approve: WEB01 (rollback), WEB02 (rollback)" in json.dumps(card)
        for vm in ("WEB01", "WEB02"):
            assert ("approval", "U0BOB") not in _history(bot, vm)
        assert {m.state for m in show_batch(bot.ctx, "BAT-1").members} == {"active"}

        # The card's own button, drawn now, approves the rollback it shows.
        _reply, key = bot.slack.click(
            "checkpoint:wave_approve", fresh, user="U0BOB", ephemeral=True
        )
        assert "Approved 2 of BAT-0001" in shown(_answers(bot, key, 2)[0])
        for vm in ("WEB01", "WEB02"):
            wait_state(bot, vm, "rolled_back", timeout=30)


def test_roll_back_all_drawn_for_one_member_does_not_roll_back_two(tmp_path: Path) -> None:
    """Its confirm said "lost on WEB01"; WEB02 was taken since (its approval
    came later). The click restores nothing and shows the wave now."""
    with checked_bot(tmp_path, CREATE_AND_ROLLBACK_APPROVED) as bot:
        _taken(bot)
        web01 = next(m for m in show_batch(bot.ctx, "BAT-1").members if m.vm_name == "WEB01")
        command(bot, f"approve {web01.change}", user="U0CAROL")
        wait_state(bot, "WEB01", "active", timeout=30)
        card = command(bot, "batch BAT-1")
        old = button(card, "checkpoint:wave_rollback")
        assert old is not None and "Roll back all (1)" in shown(card)
        web02 = next(m for m in show_batch(bot.ctx, "BAT-1").members if m.vm_name == "WEB02")
        command(bot, f"approve {web02.change}", user="U0CAROL")
        wait_state(bot, "WEB02", "active", timeout=30)

        _reply, key = bot.slack.click(
            "checkpoint:wave_rollback", old, user="U0ALICE", ephemeral=True
        )
        refused, now = _answers(bot, key, 2)
        assert "Roll back all is out of date: nothing was done" in shown(refused)
        assert "Roll back all (2)" in shown(now)
        assert {m.state for m in show_batch(bot.ctx, "BAT-1").members} == {"active"}
        assert all(k != "rollback_awaits_approval" for k, _ in _history(bot, "WEB01"))


def test_a_bare_wave_id_from_an_older_card_acts_on_nothing(tmp_path: Path) -> None:
    """Cards drawn before buttons were bound carry `BAT-0001` alone: the
    click cannot tell what it was for, so it does nothing and shows the
    wave's card, whose buttons are bound."""
    with checked_bot(tmp_path, CREATE_AND_ROLLBACK_APPROVED) as bot:
        _taken(bot)
        for action_id in ("checkpoint:wave_approve", "checkpoint:wave_withdraw"):
            _reply, key = bot.slack.click(action_id, "BAT-0001", user="U0CAROL")
            refused, card = _answers(bot, key, 2)
            assert "is out of date: nothing was done" in shown(refused)
            assert button(card, action_id) is not None
        assert {m.state for m in show_batch(bot.ctx, "BAT-1").members} == {"awaiting_approval"}


def test_keep_and_merge_all_drawn_while_active_does_not_merge_after_a_roll_back(
    tmp_path: Path,
) -> None:
    """Its confirm said "Each VM keeps its changes" while WEB01 and WEB02
    were active; both were rolled back since. The same two members still
    hold a checkpoint, so a key over which members hold one was unchanged
    and the old click merged them both. The key covers their states now."""
    with checked_bot(tmp_path, "rules:\n  approvals: {enabled: false}\n") as bot:
        _taken(bot)
        for vm in ("WEB01", "WEB02"):
            wait_state(bot, vm, "active", timeout=30)
        old = card_button(bot, "BAT-0001", "checkpoint:wave_merge", "U0ALICE")
        rollback = card_button(bot, "BAT-0001", "checkpoint:wave_rollback", "U0ALICE")
        bot.slack.click("checkpoint:wave_rollback", rollback, user="U0ALICE", ephemeral=True)
        for vm in ("WEB01", "WEB02"):
            wait_state(bot, vm, "rolled_back", timeout=30)

        _reply, key = bot.slack.click("checkpoint:wave_merge", old, user="U0ALICE", ephemeral=True)
        refused, now = _answers(bot, key, 2)
        assert "Keep &amp; merge all is out of date: nothing was done" in shown(refused)
        fresh = button(now, "checkpoint:wave_merge")
        assert fresh is not None and fresh != old
        assert {m.state for m in show_batch(bot.ctx, "BAT-1").members} == {"rolled_back"}
        for vm in ("WEB01", "WEB02"):
            assert all(k != "start_merge" for k, _ in _history(bot, vm))


# --- the keys ----------------------------------------------------------------------


@given(st.lists(st.text(max_size=12), max_size=8), st.sampled_from(["rollback", "merge"]))
def test_a_key_is_the_same_in_any_order_and_names_its_verb(items: list[str], verb: str) -> None:
    assert key_of(verb, items) == key_of(verb, list(reversed(items)))
    other = "approve" if verb != "approve" else "withdraw"
    assert key_of(verb, items) != key_of(other, items)


@given(st.integers(min_value=1, max_value=999_999_999), st.lists(st.integers(), max_size=5))
def test_a_value_reads_back_as_drawn(batch: int, items: list[int]) -> None:
    ref = f"BAT-{batch:04d}"
    for verb in ("rollback", "merge", "approve", "withdraw"):
        click = WaveClick.parse(value_of(ref, verb, items))
        assert (click.ref, click.verb, click.key) == (ref, verb, key_of(verb, items))


@given(st.text(max_size=80))
def test_any_other_value_names_no_key(text: str) -> None:
    click = WaveClick.parse(text)
    assert click.key is None or click.ref.startswith("BAT-")
