"""The shape of Slack's payloads, checked before Bolt or any listener reads
them: Bolt's own matching indexes `actions[0]["action_id"]` and compares it
to patterns, its context builders read `team`, `user` and `authorizations`
as objects, and the listeners read the fields below as the types Slack
documents. A payload of any other shape is refused, whoever signed it.

What Slack sends:
- interactions (https://api.slack.com/reference/interaction-payloads):
  `block_actions` carries `actions`, a non-empty list of action objects each
  with a string `action_id`; `view_submission` / `view_closed` carry a
  `view` whose `state.values` maps block ids to action ids to objects;
- block_suggestion (https://api.slack.com/reference/block-kit/block-elements#external_select):
  an `action_id` and the typed `value`;
- the Events API (https://api.slack.com/apis/events-api#callback-field):
  `event` an object, `authorizations` a list of objects.
Only types are checked, never the values' meaning: that is each listener's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Top-level fields that, when present, are objects or strings (a null is
# allowed where Slack sends one, e.g. `enterprise`).
_OBJECTS = ("team", "user", "enterprise", "channel", "container", "message", "view", "event")
_STRINGS = ("type", "response_url", "trigger_id", "api_app_id", "token", "team_id", "user_id")
_INTERACTIONS = ("block_actions", "view_submission", "view_closed", "block_suggestion")
_LEAF_STRINGS = ("value", "selected_date", "selected_time", "type")


def problem(payload: Mapping[str, Any]) -> str | None:
    """What is wrong with the payload's shape, or None."""
    for name in _OBJECTS:
        if payload.get(name) is not None and not isinstance(payload[name], dict):
            return f"`{name}` is not an object"
    for name in _STRINGS:
        if payload.get(name) is not None and not isinstance(payload[name], str):
            return f"`{name}` is not a string"
    for name in ("team", "user", "enterprise", "channel"):
        found = _ids(payload.get(name))
        if found:
            return f"`{name}.{found}` is not a string"
    authorizations = payload.get("authorizations")
    if authorizations is not None and not _list_of_objects(authorizations):
        return "`authorizations` is not a list of objects"
    kind = payload.get("type")
    if kind in _INTERACTIONS and not isinstance((payload.get("user") or {}).get("id"), str):
        return "`user.id` is missing"
    if kind == "block_actions":
        return _actions(payload.get("actions"))
    if kind in ("view_submission", "view_closed"):
        return _view(payload.get("view"))
    if kind == "block_suggestion":
        if not isinstance(payload.get("action_id"), str):
            return "`action_id` is not a string"
        if not isinstance(payload.get("value", ""), str):
            return "`value` is not a string"
    return None


def _ids(found: Any) -> str | None:
    if not isinstance(found, dict):
        return None
    for key in ("id", "team_id", "enterprise_id", "name"):
        if found.get(key) is not None and not isinstance(found[key], str):
            return key
    return None


def _list_of_objects(found: Any) -> bool:
    return isinstance(found, list) and all(isinstance(item, dict) for item in found)


def _actions(actions: Any) -> str | None:
    if not isinstance(actions, list) or not actions:
        return "`actions` is not a non-empty list"
    for action in actions:
        if not isinstance(action, dict):
            return "an action is not an object"
        if not isinstance(action.get("action_id"), str) or not action["action_id"]:
            return "an action has no `action_id` string"
        for key in ("block_id", "value", "action_ts", "type"):
            if action.get(key) is not None and not isinstance(action[key], str):
                return f"an action's `{key}` is not a string"
        option = action.get("selected_option")
        if option is not None and not _option(option):
            return "an action's `selected_option` is not an option"
    return None


def _view(view: Any) -> str | None:
    if not isinstance(view, dict):
        return "`view` is not an object"
    for key in ("id", "callback_id", "private_metadata", "hash", "type"):
        if view.get(key) is not None and not isinstance(view[key], str):
            return f"`view.{key}` is not a string"
    state = view.get("state")
    if state is None:
        return None
    if not isinstance(state, dict):
        return "`view.state` is not an object"
    values = state.get("values")
    if values is None:
        return None
    if not isinstance(values, dict):
        return "`view.state.values` is not an object"
    for block in values.values():
        if not isinstance(block, dict):
            return "a block in `view.state.values` is not an object"
        for element in block.values():
            if not isinstance(element, dict):
                return "an element in `view.state.values` is not an object"
            for key in _LEAF_STRINGS:
                if element.get(key) is not None and not isinstance(element[key], str):
                    return f"an element's `{key}` is not a string"
            option = element.get("selected_option")
            if option is not None and not _option(option):
                return "an element's `selected_option` is not an option"
            options = element.get("selected_options")
            if options is not None and not (
                isinstance(options, list) and all(_option(o) for o in options)
            ):
                return "an element's `selected_options` is not a list of options"
    return None


def _option(option: Any) -> bool:
    return isinstance(option, dict) and isinstance(option.get("value", ""), str)
