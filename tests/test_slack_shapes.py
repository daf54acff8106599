"""The payload shape check (`bot.slack_shapes`): total over any JSON, and
silent on the shapes Slack documents and our tests send."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bot.slack_shapes import problem

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=20,
)
keys = st.sampled_from(
    ["type", "user", "team", "actions", "view", "event", "authorizations", "action_id", "value"]
)


@given(
    st.dictionaries(keys, json_values, max_size=6),
    st.sampled_from(
        ["block_actions", "view_submission", "view_closed", "block_suggestion", "event_callback"]
    ),
)
def test_any_json_object_gets_an_answer_never_an_exception(
    payload: dict[str, Any], kind: str
) -> None:
    found = problem({**payload, "type": kind})
    assert found is None or isinstance(found, str)


def test_slacks_own_shapes_pass() -> None:
    click = {
        "type": "block_actions",
        "team": {"id": "T0TEST", "domain": "test"},
        "user": {"id": "U0BOB", "team_id": "T0TEST"},
        "enterprise": None,
        "container": {"type": "message", "channel_id": "C0OPS", "message_ts": "1.0"},
        "response_url": "https://hooks.slack.com/actions/T/1/x",
        "actions": [{"type": "button", "action_id": "checkpoint:approve", "value": "CHG-0001:v1"}],
    }
    submission = {
        "type": "view_submission",
        "team": {"id": "T0TEST"},
        "user": {"id": "U0ALICE"},
        "view": {
            "id": "V1",
            "callback_id": "checkpoint:create",
            "private_metadata": "C0OPS",
            "state": {
                "values": {
                    "vm": {"vm": {"type": "static_select", "selected_option": {"value": "WEB01"}}},
                    "reason": {"reason": {"type": "plain_text_input", "value": None}},
                }
            },
        },
    }
    event = json.loads(
        '{"type": "event_callback", "event": {"type": "app_home_opened", "user": "U0BOB"},'
        ' "authorizations": [{"team_id": "T0TEST", "is_bot": true}], "team_id": "T0TEST"}'
    )
    assert [problem(p) for p in (click, submission, event)] == [None, None, None]


def test_what_bolt_failed_on_is_named() -> None:
    base = {"type": "block_actions", "user": {"id": "U0BOB"}}
    assert problem({**base, "actions": []}) == "`actions` is not a non-empty list"
    assert problem({**base, "actions": "x"}) == "`actions` is not a non-empty list"
    assert problem({**base, "actions": [{"action_id": 3}]}) == "an action has no `action_id` string"
    assert problem({**base, "actions": [{}]}) == "an action has no `action_id` string"
    view = {"callback_id": "checkpoint:create", "state": {"values": {"vm": "WEB01"}}}
    assert problem({"type": "view_submission", "user": {"id": "U0A"}, "view": view}) == (
        "a block in `view.state.values` is not an object"
    )
