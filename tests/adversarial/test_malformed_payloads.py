"""Issue #13 item 10: signed but malformed payloads. Hypothesis builds
block_actions and view_submission payloads around the shapes Slack sends,
with fields missing, emptied or of the wrong type, and posts them signed to
the running bot: never a 5xx, never an error or traceback in the log (also
from the work done after the ack)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.adversarial.conftest import Tally
from tests.slack_support import TEAM_ID, RunningBot, running_bot

FORM = "application/x-www-form-urlencoded"
BUTTONS = [
    "checkpoint:approve",
    "checkpoint:reject",
    "checkpoint:rollback",
    "checkpoint:merge",
    "checkpoint:extend",
    "checkpoint:open_create",
    "sweep:adopt",
    "sweep:merge",
]

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


def maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The well-formed value, or any junk in its place (or missing: None)."""
    return st.one_of(value, junk)


action = st.fixed_dictionaries(
    {
        "type": maybe(st.just("button")),
        "action_id": maybe(st.sampled_from(BUTTONS)),
        "block_id": maybe(st.just("b1")),
        "value": maybe(st.sampled_from(["CHG-0001:v1", "CHG-0001:approve#1:v2", "HV01|x|y", ""])),
    }
)
block_actions = st.fixed_dictionaries(
    {
        "type": st.just("block_actions"),
        "team": maybe(st.just({"id": TEAM_ID, "domain": "test"})),
        "user": maybe(st.just({"id": "U0BOB", "team_id": TEAM_ID})),
        "api_app_id": st.just("A0TEST"),
        "container": maybe(st.just({"type": "message", "channel_id": "C0OPS"})),
        "channel": maybe(st.just({"id": "C0OPS"})),
        "message": maybe(st.just({"ts": "1.0", "text": "x", "blocks": []})),
        "response_url": maybe(st.just("RESPONSE_URL")),
        "trigger_id": maybe(st.just("trigger.fuzz")),
        "actions": st.one_of(st.lists(st.one_of(action, junk), max_size=2), junk),
    }
)
element = st.one_of(
    st.fixed_dictionaries({"type": st.just("plain_text_input"), "value": maybe(st.text())}),
    st.fixed_dictionaries(
        {"selected_option": maybe(st.fixed_dictionaries({"value": maybe(st.just("WEB01"))}))}
    ),
    junk,
)
values = st.one_of(
    st.dictionaries(
        st.sampled_from(["vm", "ttl", "reason", "checkpoint_type", "until"]),
        st.one_of(st.dictionaries(st.sampled_from(["vm", "ttl", "reason"]), element), junk),
        max_size=4,
    ),
    junk,
)
view_submission = st.fixed_dictionaries(
    {
        "type": st.just("view_submission"),
        "team": maybe(st.just({"id": TEAM_ID, "domain": "test"})),
        "user": maybe(st.just({"id": "U0ALICE", "team_id": TEAM_ID})),
        "api_app_id": st.just("A0TEST"),
        "trigger_id": maybe(st.just("trigger.fuzz")),
        "view": st.one_of(
            st.fixed_dictionaries(
                {
                    "id": st.just("V1"),
                    "type": st.just("modal"),
                    "callback_id": maybe(
                        st.sampled_from(["checkpoint:create", "checkpoint:extend"])
                    ),
                    "private_metadata": maybe(st.sampled_from(["C0OPS", "CHG-0001:extend:v1"])),
                    "state": st.one_of(st.fixed_dictionaries({"values": values}), junk),
                }
            ),
            junk,
        ),
    }
)


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBot]:
    with running_bot(tmp_path_factory.mktemp("fuzz")) as running:
        yield running


def _post(bot: RunningBot, payload: dict[str, Any]) -> int:
    if payload.get("response_url") == "RESPONSE_URL":
        payload["response_url"] = bot.slack.response_url()[1]
    if payload.get("trigger_id") == "trigger.fuzz":
        payload["trigger_id"] = f"trigger.fuzz.{time.monotonic_ns()}"
    body = urlencode({"payload": json.dumps(payload)})
    return bot.slack.post(body, FORM).status


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.levelno >= logging.ERROR or r.exc_info is not None
    ]


def _settle(bot: RunningBot) -> None:
    """Let the work after the acks finish: the Web API goes quiet."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        time.sleep(0.5)
        before = len(bot.api.calls)
        time.sleep(0.5)
        if len(bot.api.calls) == before:
            return


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(payload=st.one_of(block_actions, view_submission))
def test_fuzzed_interactions_never_answer_5xx(
    bot: RunningBot, hostile: Tally, caplog: pytest.LogCaptureFixture, payload: dict[str, Any]
) -> None:
    caplog.set_level(logging.WARNING)
    status = _post(bot, payload)
    assert status < 500, (status, payload)
    # Errors of the work after an ack show up here by the next examples.
    assert _errors(caplog) == [], payload
    # "Accepted" here: a 5xx, or an error logged while handling it.
    hostile.record("malformed interaction", status >= 500, json.dumps(payload)[:200])


def test_the_payloads_bolt_failed_on_are_400_with_a_warning(
    bot: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    for payload in (
        {"type": "block_actions", "user": {"id": "U0BOB"}, "actions": []},
        {"type": "block_actions", "user": {"id": "U0BOB"}, "actions": "checkpoint:approve"},
        {"type": "block_actions", "user": {"id": "U0BOB"}, "actions": [{"value": "x"}]},
        {"type": "block_actions", "user": {"id": "U0BOB"}, "actions": [{"action_id": 7}]},
        {
            "type": "view_submission",
            "user": {"id": "U0ALICE"},
            "view": {"callback_id": "checkpoint:create", "state": {"values": {"vm": ["WEB01"]}}},
        },
        {
            "type": "view_submission",
            "user": {"id": "U0ALICE"},
            "view": {
                "callback_id": "checkpoint:create",
                "state": {"values": {"reason": {"reason": {"value": 5}}}},
            },
        },
    ):
        payload = {"team": {"id": TEAM_ID}, "api_app_id": "A0TEST", **payload}
        assert _post(bot, payload) == 400
    _settle(bot)
    assert _errors(caplog) == []
    warned = [r for r in caplog.records if "malformed payload" in r.getMessage()]
    assert len(warned) == 6 and all(r.levelno == logging.WARNING for r in warned)


def test_a_sweep_button_without_a_response_url_is_answered_by_dm(
    bot: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    """A digest in the App Home: no response_url. `respond()` used to raise
    in the background; the clicker now gets a DM."""
    caplog.set_level(logging.WARNING)
    reply = bot.slack.home_click("sweep:adopt", "not-an-orphan-value", user="U0CAROL")
    assert reply.status == 200
    bot.api.wait_for(
        lambda cs: any(
            c.method == "chat.postMessage" and c.body.get("channel") == "U0CAROL" for c in cs
        )
    )
    _settle(bot)
    assert _errors(caplog) == []
