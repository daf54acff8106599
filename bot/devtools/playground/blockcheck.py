"""What Slack would reject in posted blocks or a view, worded like Slack's
`invalid_blocks` answer: one `[ERROR] … [json-pointer:/blocks/N]` line per
problem, as Slack puts them in `response_metadata.messages`.

slack_sdk's Block Kit models check the documented limits (text lengths,
element counts, required fields) when a block is serialised; the few
limits they leave out (block counts, duplicate ids) are checked here.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

MESSAGE_BLOCKS, VIEW_BLOCKS = 50, 100
MESSAGE_TEXT = 40_000  # Slack truncates `text` beyond this (msg_too_long)


def _block_errors(blocks: Any, limit: int, pointer: str) -> list[str]:
    if not isinstance(blocks, list):
        return [f"[ERROR] must be an array [json-pointer:{pointer}]"]
    if len(blocks) > limit:
        return [f"[ERROR] no more than {limit} items allowed [json-pointer:{pointer}]"]
    errors: list[str] = []
    block_ids: set[str] = set()
    for index, raw in enumerate(blocks):
        where = f"{pointer}/{index}"
        if not isinstance(raw, dict):
            errors.append(f"[ERROR] must be an object [json-pointer:{where}]")
            continue
        try:
            parsed = Block.parse(raw)
            if parsed is None:
                errors.append(f"[ERROR] unsupported type: {raw.get('type')} [json-pointer:{where}]")
                continue
            parsed.to_dict()
        except (SlackObjectFormationError, TypeError, ValueError, KeyError) as exc:
            errors.append(f"[ERROR] {exc} [json-pointer:{where}]")
            continue
        block_id = raw.get("block_id")
        if block_id is not None:
            if block_id in block_ids:
                errors.append(f"[ERROR] duplicate block_id [json-pointer:{where}/block_id]")
            block_ids.add(str(block_id))
        action_ids = [
            e.get("action_id") for e in _elements(raw) if isinstance(e, dict) and e.get("action_id")
        ]
        if len(action_ids) != len(set(action_ids)):
            errors.append(f"[ERROR] duplicate action_id [json-pointer:{where}/elements]")
    return errors


def _elements(raw: dict[str, Any]) -> list[Any]:
    elements = list(raw.get("elements") or [])
    for key in ("accessory", "element"):
        if isinstance(raw.get(key), dict):
            elements.append(raw[key])
    return elements


def message_errors(body: dict[str, Any]) -> list[str]:
    """Problems with a message's `blocks` ([] when Slack would take it)."""
    if "blocks" not in body or body["blocks"] in (None, ""):
        return []
    return _block_errors(body["blocks"], MESSAGE_BLOCKS, "/blocks")


def view_errors(view: Any) -> list[str]:
    """Problems with a modal or App Home view ([] when Slack would take it)."""
    if not isinstance(view, dict):
        return ["[ERROR] must be an object [json-pointer:/view]"]
    if view.get("type") not in ("modal", "home"):
        return ["[ERROR] must be one of modal, home [json-pointer:/view/type]"]
    errors = _block_errors(view.get("blocks"), VIEW_BLOCKS, "/view/blocks")
    if view["type"] == "modal" and not view.get("title"):
        errors.append("[ERROR] missing required field: title [json-pointer:/view]")
    try:
        View(**view).to_dict()
    except (SlackObjectFormationError, TypeError, ValueError) as exc:
        errors.append(f"[ERROR] {exc} [json-pointer:/view]")
    return errors
