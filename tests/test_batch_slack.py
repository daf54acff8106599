"""`/checkpoint batch BAT-n` through Bolt: a signed slash command to the
running bot answers with the wave's compact card, Block Kit checked against
slack_sdk's models and Slack's limits (tests/slack_support.py)."""

from __future__ import annotations

from pathlib import Path

from bot.service import Selection, create_batch
from handlers.grammar import BatchRequest, GrammarError, parse
from tests.test_slack_flow import checked_bot, command, shown


def test_the_grammar_takes_a_batch_id() -> None:
    assert parse("batch bat-7") == BatchRequest("BAT-0007")
    try:
        parse("batch CHG-1")
    except GrammarError as exc:
        assert "'CHG-1' is not a batch id" in exc.message and "BAT-0007" in exc.message
    else:
        raise AssertionError("CHG-1 is not a batch")


def test_the_batch_card_shows_each_vm_its_state_and_why_one_was_refused(tmp_path: Path) -> None:
    with checked_bot(tmp_path, "") as bot:
        out = create_batch(
            bot.ctx,
            Selection.of(["CORP-DC01"], groups=["web-tier"]),
            reason="KB5044284 web wave",
            requester="U0ALICE",
        )
        for o in out.outcomes:
            if o.job_id is not None:
                assert bot.ctx.ledger.wait(o.job_id, timeout=30).state == "succeeded"
        card = command(bot, "batch BAT-1")
        text = shown(card)
        assert "BAT-0001 — active" in text
        assert "3 of 3 done, 1 refused" in text
        assert "<@U0ALICE>" in text  # a person is a mention, not a bare id
        for vm in ("WEB01", "WEB02", "APP01"):
            assert f"*{vm}*" in text
        assert "USN rollback" in text  # CORP-DC01's refusal, in the policy's words
        assert "production taken" in text

        missing = command(bot, "batch BAT-9")
        assert "no batch BAT-0009" in shown(missing)
