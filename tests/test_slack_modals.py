"""Modals and App Home over signed HTTP: opening them within the trigger's
life, validating submissions on the right block, and doing the work after
the ack."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.service import lookups
from handlers.actions import field_error
from tests.slack_support import RunningBot, running_bot
from tests.test_slack_http import ACK_LIMIT, change_of, create, old_value


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBot]:
    with running_bot(tmp_path_factory.mktemp("modals")) as running:
        yield running


def opened_view(bot: RunningBot, trigger: str) -> dict[str, Any]:
    calls = bot.api.wait_for(
        lambda cs: any(c.method == "views.open" and c.body["trigger_id"] == trigger for c in cs)
    )
    view: dict[str, Any] = next(
        c.body["view"]
        for c in calls
        if c.method == "views.open" and c.body["trigger_id"] == trigger
    )
    return view


def submitted(view: dict[str, Any], view_id: str, values: dict[str, Any]) -> dict[str, Any]:
    return {**view, "id": view_id, "state": {"values": values}}


def create_values(vm: str, ttl: str, reason: str) -> dict[str, Any]:
    return {
        "vm": {"vm": {"type": "static_select", "selected_option": {"value": vm}}},
        "checkpoint_type": {
            "checkpoint_type": {"type": "radio_buttons", "selected_option": {"value": "production"}}
        },
        "ttl": {"ttl": {"type": "plain_text_input", "value": ttl}},
        "reason": {"reason": {"type": "plain_text_input", "value": reason}},
    }


def test_create_alone_opens_the_modal_and_its_submission_is_validated(bot: RunningBot) -> None:
    reply, key = bot.slack.command("create", channel="C0MODAL")
    assert reply.status == 200 and reply.seconds < ACK_LIMIT
    view = opened_view(bot, "trigger." + key.rsplit(":", 1)[1])
    assert view["callback_id"] == "checkpoint:create" and view["private_metadata"] == "C0MODAL"
    assert "WEB02" in json.dumps(view["blocks"])

    bad = bot.slack.submit_view(submitted(view, "V1", create_values("WEB02", "soon", " ")))
    assert bad.status == 200 and bad.seconds < ACK_LIMIT
    errors = json.loads(bad.body)
    assert errors["response_action"] == "errors"
    assert set(errors["errors"]) == {"ttl", "reason"}

    good = bot.slack.submit_view(submitted(view, "V1", create_values("WEB02", "48h", "KB1")))
    assert good.status == 200 and good.body == ""
    calls = bot.api.wait_for(lambda cs: any(c.method == "chat.postEphemeral" for c in cs))
    told = next(c.body for c in calls if c.method == "chat.postEphemeral")
    assert (told["channel"], told["user"]) == ("C0MODAL", "U0ALICE")
    change = change_of(bot, "WEB02")
    assert change.ref in told["text"] and change.ttl_seconds == 48 * 3600


@pytest.mark.parametrize("ttl", ["999d", "30d"])
def test_a_ttl_past_the_policys_maximum_is_told_it_in_one_sentence_shape(
    bot: RunningBot, ttl: str
) -> None:
    # Seen: "'999d' is too long: a duration is at most 366d (a year)", then
    # 30d met "more than the maximum of 7d". Past a year (the parser's
    # bound) or only past the policy's, the field says the policy's bound
    # for that VM in the same words, each part a sentence (seen: "… not a
    # backup. ask for at most 7d").
    reply, key = bot.slack.command("create", channel="C0MODAL")
    assert reply.status == 200
    view = opened_view(bot, "trigger." + key.rsplit(":", 1)[1])
    bad = bot.slack.submit_view(submitted(view, "V2", create_values("WEB02", ttl, "KB1")))
    errors = json.loads(bad.body)["errors"]
    assert errors == {
        "ttl": f"Refused: a TTL of {ttl} is more than the maximum of 7d: a checkpoint is "
        "short-term protection, not a backup. Ask for at most 7d."
    }


@pytest.mark.parametrize(
    ("message", "remediation", "said"),
    [
        # A command or a name first is left as it is; a sentence ends once.
        (
            "x is off.",
            "`checkpoint-bot vm start X` first",
            "Refused: x is off. `checkpoint-bot vm start X` first.",
        ),
        ("a DC", "WEB01 is fine!", "Refused: a DC. WEB01 is fine!"),
        # What to do instead is left out when both do not fit the field.
        ("a DC", "y" * 300, "Refused: a DC."),
    ],
)
def test_a_field_error_is_whole_sentences(message: str, remediation: str, said: str) -> None:
    assert field_error(lookups.Refusal("rule", message, remediation)) == said


def test_a_long_refusal_under_a_field_is_whole_words_and_says_where_the_rest_is() -> None:
    """Seen: "Refused: CORP-DC02 is a domain controller and corp.example has 2
    domain controllers (CORP-DC01, CORP-DC02): restoring a checkpoint of one
    DC causes U…", cut mid-word, and without what to do instead."""
    dc = lookups.Refusal(
        "domain_controller",
        "CORP-DC02 is a domain controller and corp.example has 2 domain controllers "
        "(CORP-DC01, CORP-DC02): restoring a checkpoint of one DC causes USN rollback "
        "(replication diverges, lingering objects, the DC is quarantined)",
        "patch DCs one at a time and rely on AD replication; take a system-state backup "
        "instead of a checkpoint",
    )
    said = field_error(dc, "CORP-DC02")
    assert said.startswith("Refused: CORP-DC02 is a domain controller and corp.example has 2")
    assert "causes USN rollback" in said and len(said) <= 300
    long = lookups.Refusal("rule", "word " * 100, "")
    cut = field_error(long, "WEB01")
    assert cut.endswith(" … (/checkpoint policy WEB01 says all of it)") and len(cut) <= 300
    assert cut.split(" … ")[0].endswith("word")


def test_extend_button_opens_the_modal_and_extends(bot: RunningBot) -> None:
    active = create(bot, "APP01")
    reply, key = bot.slack.click("checkpoint:extend", old_value(active), user="U0ALICE")
    assert reply.seconds < ACK_LIMIT
    view = opened_view(bot, "trigger." + key.rsplit(":", 1)[1])
    # The modal carries what the Extend button was for, in the new form.
    assert view["private_metadata"] == f"{active.ref}:extend:v{active.version}"
    opened = bot.api.of("views.open")[-1]
    assert opened.body["view"]["callback_id"] == "checkpoint:extend"

    bad = bot.slack.submit_view(
        submitted(view, "V9", {"duration": {"duration": {"type": "x", "value": "forever"}}})
    )
    assert set(json.loads(bad.body)["errors"]) == {"duration"}
    good = bot.slack.submit_view(
        submitted(view, "V9", {"duration": {"duration": {"type": "x", "value": "24h"}}})
    )
    assert good.status == 200
    bot.api.wait_for(
        lambda cs: any(
            c.method == "chat.postMessage"
            and "thread_ts" in c.body
            and "extended" in c.body["text"]
            for c in cs
        )
    )
    extended = change_of(bot, "APP01")
    assert active.expires_at is not None and extended.expires_at is not None
    assert extended.expires_at > active.expires_at


def test_app_home_lists_what_needs_the_viewer(bot: RunningBot) -> None:
    mine = create(bot, "WEB01", user="U0DAVE")
    bot.slack.click("checkpoint:rollback", old_value(mine), user="U0DAVE")
    bot.api.wait_for(
        lambda _cs: any(
            e.kind == "rollback_awaits_approval" for e in change_of(bot, "WEB01").events
        )
    )
    for user in ("U0DAVE", "U0ERIN"):
        bot.slack.event({"type": "app_home_opened", "user": user, "tab": "home"}, f"Ev-{user}")
    # A change also re-publishes the Homes it concerns: wait for both viewers'.
    calls = bot.api.wait_for(
        lambda cs: (
            {"U0DAVE", "U0ERIN"} <= {c.body["user_id"] for c in cs if c.method == "views.publish"}
        )
    )
    home = {
        c.body["user_id"]: json.dumps(c.body["view"]) for c in calls if c.method == "views.publish"
    }
    # Dave sees his open change; Erin sees the rollback waiting for her approval.
    assert mine.ref in home["U0DAVE"] and "Awaiting your approval (0)" in home["U0DAVE"]
    assert "Awaiting your approval (1)" in home["U0ERIN"] and mine.ref in home["U0ERIN"]

    reply, key = bot.slack.click("checkpoint:open_create", "create", user="U0ERIN")
    assert reply.status == 200
    assert opened_view(bot, "trigger." + key.rsplit(":", 1)[1])["callback_id"] == (
        "checkpoint:create"
    )


def test_the_form_takes_a_time_on_the_persons_own_clock(bot: RunningBot) -> None:
    """The create form's optional "Take it at" is Slack's datetimepicker: it
    sends the instant picked (a UNIX time); a time already past is refused
    under the field, a later one schedules the checkpoint then."""
    _reply, key = bot.slack.command("create", channel="C0MODAL")
    view = opened_view(bot, "trigger." + key.rsplit(":", 1)[1])
    picker = next(b for b in view["blocks"] if b.get("block_id") == "at")
    assert picker["optional"] is True and picker["element"]["type"] == "datetimepicker"

    def at(instant: datetime) -> dict[str, Any]:
        values = create_values("STG-APP01", "48h", "KB1")
        stamp = int(instant.timestamp())
        return {**values, "at": {"at": {"type": "datetimepicker", "selected_date_time": stamp}}}

    past = bot.slack.submit_view(submitted(view, "V9", at(bot.ctx.clock() - timedelta(hours=1))))
    assert json.loads(past.body) == {
        "response_action": "errors",
        "errors": {"at": "That time has passed: pick a later one, or leave it empty."},
    }
    when = datetime(2026, 12, 24, 20, 0, tzinfo=UTC)
    good = bot.slack.submit_view(submitted(view, "V9", at(when)))
    assert good.status == 200 and good.body == ""
    told = bot.api.wait_for(
        lambda cs: any(c.method == "chat.postEphemeral" and "STG-APP01" in str(c.body) for c in cs)
    )
    text = next(
        str(c.body) for c in told if c.method == "chat.postEphemeral" and "STG-APP01" in str(c.body)
    )
    assert f"<!date^{int(when.timestamp())}^" in text and "as you asked" in text
    change = change_of(bot, "STG-APP01")
    assert change.state == "scheduled" and change.run_at == when


def test_a_request_from_the_app_home_says_where_its_thread_is(
    bot: RunningBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen: the App Home form's answer said "approvers are asked in its
    thread" to someone who asked from no channel: the thread is in the
    changes channel (`slack.changes_channel`), so the answer names it."""
    slack = bot.ctx.settings.slack.model_copy(update={"changes_channel": "C0OPS"})
    monkeypatch.setattr(bot.ctx, "settings", replace(bot.ctx.settings, slack=slack))
    _reply, key = bot.slack.click("checkpoint:open_create", "create", user="U0ERIN")
    view = opened_view(bot, "trigger." + key.rsplit(":", 1)[1])
    assert not view.get("private_metadata")  # asked from no channel
    good = bot.slack.submit_view(
        submitted(view, "V7", create_values("STG-WEB01", "48h", "KB1")), user="U0ERIN"
    )
    assert good.status == 200 and good.body == ""

    def answer(calls: list[Any]) -> str | None:
        # The form's answer, once the request is recorded (after the ack).
        return next(
            (
                str(c.body)
                for c in calls
                if c.method.startswith("chat.")
                and "STG-WEB01" in str(c.body)
                and "its thread" in str(c.body)
            ),
            None,
        )

    said = answer(bot.api.wait_for(answer))
    assert said is not None and change_of(bot, "STG-WEB01").ref in said
    assert "its thread in <#C0OPS>" in said, said
