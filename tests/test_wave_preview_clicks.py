"""A wave's preview answers for what happened to it (handlers/waves.py).

Seen (a tester's probes):
- Take, then Cancel on the same preview (a second window, a slow client):
  Cancel replaced the wave's card with "Cancelled · Nothing was recorded
  and no host was asked" while BAT-0001 was active and its checkpoints were
  taken.
- Two Take clicks at once on a five-VM preview: the second click's answer
  showed "BAT-0001: empty" or one VM, the members the first click had
  recorded so far.
- `create WEB01 WEB01 …` (300 names) with `--reason x` was told "this wave is
  too long to carry on a button (the reason, mostly)"; and a reason of 460
  Cyrillic letters, which the bot takes, did not fit on the button at all
  (each was written as six characters, `\u041e`).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from bot.service import list_batches, show_batch
from tests.slack_support import RunningBot
from tests.test_slack_flow import button, checked_bot, command, shown
from tests.test_slack_http import wait_state

FIVE = ("WEB01", "WEB02", "STG-WEB01", "STG-APP01", "APP01")


def _answers(bot: RunningBot, key: str, count: int) -> list[dict[str, Any]]:
    calls = bot.api.wait_for(lambda cs: sum(c.method == key for c in cs) >= count, 30)
    return [c.body for c in calls if c.method == key]


def test_cancel_after_take_says_the_wave_was_taken_and_shows_its_card(tmp_path: Path) -> None:
    with checked_bot(tmp_path, "") as bot:
        preview = command(bot, 'create WEB01 STG-WEB01 --reason "KB5044284"')
        take = button(preview, "checkpoint:wave_take")
        cancel = button(preview, "checkpoint:wave_cancel")
        assert take is not None and cancel is not None and cancel != "cancel"
        _reply, key = bot.slack.click("checkpoint:wave_take", take, user="U0ALICE")
        _answers(bot, key, 1)

        _reply, key = bot.slack.click("checkpoint:wave_cancel", cancel, user="U0ALICE")
        said, card = _answers(bot, key, 2)
        assert "Not cancelled: BAT-0001 was already taken from this preview" in shown(said)
        assert "Nothing was recorded" not in shown(said) + shown(card)
        assert card["replace_original"] is True and "BAT-0001" in card["text"]
        assert len(list_batches(bot.ctx)) == 1


def test_cancel_before_take_records_nothing(tmp_path: Path) -> None:
    with checked_bot(tmp_path, "") as bot:
        preview = command(bot, 'create WEB01 STG-WEB01 --reason "KB5044284"')
        cancel = button(preview, "checkpoint:wave_cancel")
        assert cancel is not None
        _reply, key = bot.slack.click("checkpoint:wave_cancel", cancel, user="U0ALICE")
        (said,) = _answers(bot, key, 1)
        assert "Nothing was recorded and no host was asked" in shown(said)
        assert list_batches(bot.ctx) == []


def test_two_takes_at_once_each_answer_with_every_member(tmp_path: Path) -> None:
    with checked_bot(tmp_path, "") as bot:
        preview = command(bot, f'create {" ".join(FIVE)} --reason "KB5044284"')
        take = button(preview, "checkpoint:wave_take")
        assert take is not None
        keys: list[str] = []

        def click() -> None:
            keys.append(bot.slack.click("checkpoint:wave_take", take, user="U0ALICE")[1])

        clicks = [threading.Thread(target=click) for _ in range(2)]
        for t in clicks:
            t.start()
        for t in clicks:
            t.join()
        cards = [_answers(bot, key, 1)[0] for key in keys]
        assert len(list_batches(bot.ctx)) == 1
        for card in cards:
            listed = [vm for vm in FIVE if f"*{vm}*" in json.dumps(card["blocks"])]
            assert listed == list(FIVE), card["text"]
        assert len(show_batch(bot.ctx, "BAT-1").members) == 5
        for vm in ("WEB01", "STG-WEB01"):
            wait_state(bot, vm, "active", timeout=30)


def test_a_wave_of_too_many_names_says_the_names_are_too_many(tmp_path: Path) -> None:
    with checked_bot(tmp_path, "") as bot:
        said = shown(command(bot, "create " + " ".join(["WEB01"] * 300) + " --reason x"))
        assert "names 300 VMs one by one" in said
        assert "`--group`" in said and "the reason" not in said
        # The longest reason the bot takes, in a script JSON would escape
        # (six characters a letter), still fits with the names it came with.
        reason = "Обновление и проверка " * 21
        fits = command(bot, f'create WEB01 WEB02 --reason "{reason.strip()}"')
        assert button(fits, "checkpoint:wave_take") is not None, shown(fits)
