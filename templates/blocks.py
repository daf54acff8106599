"""Slack Block Kit from Jinja2 templates, validated before anything is sent.

Templates under `templates/slack/` render JSON text. Every interpolated value
goes through `json` (JSON-encoding) and, when it lands in mrkdwn, through
`mrkdwn` first, so `<!channel>` in a reason is shown, never acted on. Length
limits are applied in the templates (the macros in `slack/_blocks.json.j2`
truncate every text to its field's limit); this module checks the result,
because Slack rejects a whole message for one overlong field:

    render ─► json.loads ─► Block.parse_all / View(**…) ─► .to_dict() on each
           ─► keys the SDK model dropped (a typo in a template) ─► limits the
              SDK does not check (field / context text, block counts, total
              text, block_id uniqueness, button value convention)

Any failure raises `BlockKitError` naming the template, so a broken template
fails in tests, not as `invalid_blocks` from Slack in production.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.domain import MENTION_TOKEN, REF_WRITTEN_PATTERN
from bot.reasons import REJECT_EXAMPLE, one_line
from templates import Renderer, mrkdwn_escape, short_time
from templates.slack_times import date_token, localize_blocks
from templates.waves import (
    merge_items,
    not_recorded,
    not_recorded_count,
    still_scheduled,
    still_scheduled_summary,
    wave_value,
)

# Documented Block Kit limits (docs.slack.dev/reference/block-kit) that the
# slack_sdk models do not check themselves.
MESSAGE_BLOCKS = 50
VIEW_BLOCKS = 100
SECTION_TEXT = 3000
FIELD_TEXT = 2000
CONTEXT_TEXT = 2000
# Slack answers `msg_blocks_too_long` well below 50 blocks of 3000 characters; it was
# observed at ~13,200 characters of text in total (slackapi/bolt-js#2509), and
# the limit is undocumented, so messages stay under a conservative budget.
MESSAGE_TEXT_BUDGET = 12_000
# The `text` field is the notification fallback: short by design (Slack
# truncates at 40,000, but a notification shows a line or two).
FALLBACK_TEXT = 3000

DEMO_FOOTER = "Demo mode — simulated Hyper-V estate; nothing here touches a real host."
# A deployment whose config sets `hyperv.backend: simulator`, outside demo
# mode: its messages say so as its CLI does (seen: checkpoints "taken" in
# Slack with no word that no host was touched).
SIMULATED_FOOTER = (
    "Simulated Hyper-V hosts (hyperv.backend: simulator): nothing here touches a real host."
)

# The layout budgets the templates fill; they live here, next to the limits
# they are derived from, so a template holds text and no arithmetic.
#   help: a header, the "more topics" line and the demo footer beside the
#   sections, with 1,000 characters of the text budget left for them.
HELP_SECTIONS = MESSAGE_BLOCKS - 4
HELP_TEXT = MESSAGE_TEXT_BUDGET - 1000
#   sweep digest: at most DIGEST_ROWS checkpoints with their buttons (a
#   section and an actions block each, confirm dialogs included), then the
#   rest as text lines in at most DIGEST_TEXT_SECTIONS sections and
#   DIGEST_TEXT characters: header, summary, context, problems, divider,
#   2 x 8 rows, 12 sections, the "more" line and the footer stay under 50
#   blocks, and the rows at their longest leave DIGEST_TEXT of the budget.
DIGEST_ROWS = 8
DIGEST_TEXT_SECTIONS = 12
DIGEST_TEXT = 3000
#   lists (checkpoint list, policy explain, ephemeral notices): a header,
#   a summary and a context line or two beside the packed rows.
LIST_SECTIONS = 44
#   `/checkpoint status`: the change's history under its card, the newest
#   HISTORY_EVENTS steps in at most HISTORY_SECTIONS sections and
#   HISTORY_TEXT characters, leaving the card the rest of the budget.
HISTORY_EVENTS = 12
HISTORY_SECTIONS = 3
HISTORY_TEXT = 4000
NOTICE_SECTIONS = 45
LIST_TEXT = 10_000
#   App Home: the open changes and the change windows share a view with the
#   approvals, each with its own slice of the budget.
HOME_CHANGES_SECTIONS, HOME_CHANGES_TEXT = 4, 8000
HOME_WINDOWS_SECTIONS, HOME_WINDOWS_TEXT = 2, 6000

# Button values carry the change, what the button is for and the version the
# message was rendered at, so a click acts only on what its card showed (see
# `ActionValue` and bot/service/binding.py).
CHANGE_ACTIONS = frozenset(
    f"checkpoint:{verb}"
    for verb in (
        "approve",
        "reject",
        "withdraw",
        "rollback",
        "merge",
        "extend",
        "start",
        "unschedule",
        "resolve_active",
        "resolve_failed",
        "resolve_rolled_back",
        "resolve_merged",
    )
)
# What each change button is for: the approval request it decides
# ("rollback#12"), or the action it starts on the change as the card shows it.
REQUEST_ACTIONS = ("create", "rollback", "merge", "extend")
CARD_PURPOSES = {
    "checkpoint:rollback": "rollback",
    "checkpoint:merge": "merge",
    "checkpoint:extend": "extend",
    "checkpoint:start": "start",
    # A checkpoint scheduled for later, taken back by its requester.
    "checkpoint:unschedule": "unschedule",
    "checkpoint:resolve_active": "resolve",
    "checkpoint:resolve_failed": "resolve",
    "checkpoint:resolve_rolled_back": "resolve",
    "checkpoint:resolve_merged": "resolve",
}
# Buttons bound to one approval request: decide it, or (its requester) take it back.
DECIDING_ACTIONS = frozenset({"checkpoint:approve", "checkpoint:reject", "checkpoint:withdraw"})
# Request ids and versions are database integers: more digits than any
# integer column holds (18 fit even a BIGINT) were drawn by no card, and
# the value is refused like any other that is not one of ours.
_ACTION_VALUE = re.compile(
    rf"^({REF_WRITTEN_PATTERN}):"
    r"(?:(create|rollback|merge|extend)#(\d{1,18})"
    r"|(rollback|merge|extend|start|unschedule|resolve)):v(\d{1,18})$"
)
# What buttons carried before they said what they were for; still accepted
# from old messages, and then only where exactly one thing can be meant.
_LEGACY_VALUE = re.compile(rf"^({REF_WRITTEN_PATTERN}):v(\d{{1,18}})$")
_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")
_SLACK_CHANNEL = re.compile(r"^[CG][A-Z0-9]{2,}$")


class BlockKitError(Exception):
    """A template rendered something Slack would reject; `template` names it."""

    def __init__(self, template: str, problem: str) -> None:
        self.template = template
        self.problem = problem
        super().__init__(f"{template}: {problem}")


# --- filters -------------------------------------------------------------------


def json_value(value: object) -> str:
    """A JSON literal for a template; non-ASCII kept readable."""
    return json.dumps(value, ensure_ascii=False)


def truncate_chars(value: object, limit: int, mrkdwn: bool = False) -> str:
    """At most `limit` characters, ending in "…" when cut. In mrkdwn the cut
    backs off to before an unfinished `<…>` (mention, date, link) or `&…;`
    entity, so truncation never leaves half a control sequence behind."""
    text = str(value)
    if len(text) <= limit:
        return text
    cut = text[: max(limit - 1, 0)]
    if mrkdwn:
        opened = cut.rfind("<")
        if opened > cut.rfind(">"):
            cut = cut[:opened]
        amp = cut.rfind("&")
        if amp != -1 and ";" not in cut[amp:]:
            cut = cut[:amp]
    return cut + "…"


def mention(value: object) -> str:
    """A Slack user id becomes a mention; anything else (a CLI user name) is
    shown as escaped text."""
    text = str(value)
    return f"<@{text}>" if _SLACK_USER.match(text) else mrkdwn_escape(text)


def channel_mention(value: object) -> str:
    """A Slack channel id becomes a channel link; anything else, escaped text."""
    text = str(value)
    return f"<#{text}>" if _SLACK_CHANNEL.match(text) else mrkdwn_escape(text)


def people(value: object) -> str:
    """mrkdwn for text the bot wrote with `bot.domain`'s mention helpers
    (policy reasons, who may approve): the mention tokens stay, so Slack
    notifies and highlights them; everything else is escaped. Never for
    text a person wrote (a reason): that goes through `mrkdwn` alone."""
    text = str(value)
    out, at = [], 0
    for found in MENTION_TOKEN.finditer(text):
        out.append(mrkdwn_escape(text[at : found.start()]))
        out.append(found.group(0))
        at = found.end()
    out.append(mrkdwn_escape(text[at:]))
    return "".join(out)


def people_but(value: object, host_said: Sequence[str] = ()) -> str:
    """`people`, except that the parts of `value` in `host_said` (what a
    host or an error said, bot.changes.views.HOST_SAID) are escaped whole:
    a mention token in them is shown, never acted on."""
    text = str(value)
    parts = sorted({p for p in host_said if p and p in text}, key=len, reverse=True)
    if not parts:
        return people(text)
    split = re.compile("|".join(re.escape(p) for p in parts))
    out, at = [], 0
    for found in split.finditer(text):
        out.append(people(text[at : found.start()]))
        out.append(mrkdwn_escape(found.group(0)))
        at = found.end()
    out.append(people(text[at:]))
    return "".join(out)


def slack_date(value: datetime | str | None, fmt: str = "{date_short_pretty} {time}") -> str:
    """Slack's date token: each reader sees their own time zone; the
    fallback (UTC) is what clients that cannot format it show. An ISO-8601
    text (an event's details) is read as its datetime."""
    if value is None or value == "":
        return "-"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    at = value if value.tzinfo else value.replace(tzinfo=UTC)
    return date_token(at, short_time(at.astimezone(UTC)), fmt)


def quote(value: object) -> str:
    """Each line as a mrkdwn block quote (apply after `mrkdwn`)."""
    lines = str(value).splitlines() or [""]
    return "\n".join(f"> {line}" for line in lines)


@dataclass(frozen=True)
class Packed:
    """Lines packed into section texts; `omitted` counts items left out."""

    chunks: list[str]
    shown: int
    omitted: int


def pack_groups(
    groups: Sequence[tuple[str, Sequence[str]]],
    limit: int = SECTION_TEXT,
    max_chunks: int = MESSAGE_BLOCKS,
    budget: int = MESSAGE_TEXT_BUDGET,
) -> Packed:
    """Pack (heading, lines) groups into texts of at most `limit` characters,
    at most `max_chunks` of them and `budget` characters in all. A heading is
    repeated when its group continues in the next text; each line counts as
    one item towards `omitted`. Lines are kept whole (a cut line would be
    misread), except one longer than `limit` on its own, which is truncated."""
    chunks: list[str] = []
    current: list[str] = []
    size = used = shown = 0
    total = sum(len(lines) for _, lines in groups)

    def flush() -> None:
        nonlocal current, size, used
        if current:
            chunks.append("\n".join(current))
            used += size
        current, size = [], 0

    for heading, lines in groups:
        for index, raw in enumerate(lines):
            head = heading if index == 0 else f"{heading} (continued)"
            line = truncate_chars(raw, max(limit - len(head) - 2, 1), mrkdwn=True)
            entry = [head, line] if heading and (index == 0 or not current) else [line]
            if current and size + sum(len(x) + 1 for x in entry) > limit:
                flush()
                entry = [head, line] if heading else [line]
            cost = sum(len(x) + 1 for x in entry)
            starts_chunk = not current
            if (starts_chunk and len(chunks) >= max_chunks) or used + size + cost > budget:
                flush()
                return Packed(chunks, shown, total - shown)
            current.extend(entry)
            size += cost
            shown += 1
    flush()
    return Packed(chunks, shown, total - shown)


def fit_sections(
    texts: Iterable[str], max_sections: int = HELP_SECTIONS, budget: int = HELP_TEXT
) -> Packed:
    """Whole sections, each cut to a section's limit, in order while they fit
    `max_sections` blocks and `budget` characters; one that does not fit is
    left out (and counted) and the next ones are still tried."""
    chunks: list[str] = []
    used = omitted = 0
    for raw in texts:
        if not raw.strip():
            continue
        text = truncate_chars(raw, SECTION_TEXT, mrkdwn=True)
        if len(chunks) < max_sections and used + len(text) <= budget:
            chunks.append(text)
            used += len(text)
        else:
            omitted += 1
    return Packed(chunks, len(chunks), omitted)


@dataclass(frozen=True)
class ActionValue:
    """A change button's value: the change, what the button is for, the
    version its card showed.

        CHG-0042:rollback#12:v7   Approve / Reject of approval request 12 (a rollback)
        CHG-0042:rollback:v7      Roll back (merge, extend, start, resolve) the
                                  change as the card showed it at version 7
        CHG-0042:v7               an old message's value: no purpose (`legacy`)
    """

    ref: str
    version: int
    purpose: str | None = None
    request_id: int | None = None

    @property
    def legacy(self) -> bool:
        return self.purpose is None

    def __str__(self) -> str:
        if self.purpose is None:
            return f"{self.ref}:v{self.version}"
        if self.request_id is not None:
            return f"{self.ref}:{self.purpose}#{self.request_id}:v{self.version}"
        return f"{self.ref}:{self.purpose}:v{self.version}"

    def fits(self, action_id: str) -> bool:
        """Whether this value belongs on button `action_id`: an Approve or
        Reject names a request, any other button its own action. A legacy
        value fits any change button (it cannot say; the service then
        allows it only where one thing can be meant)."""
        if self.legacy:
            return action_id in CHANGE_ACTIONS
        if action_id in DECIDING_ACTIONS:
            return self.request_id is not None
        return self.request_id is None and CARD_PURPOSES.get(action_id) == self.purpose


def parse_action_value(value: str) -> ActionValue:
    """A button value (or a modal's private_metadata) as `ActionValue`;
    ValueError for anything else, which handlers refuse without acting."""
    found = _ACTION_VALUE.match(value)
    if found is not None:
        ref, request_action, request_id, card_action, version = found.groups()
        if request_action is not None:
            return ActionValue(ref, int(version), request_action, int(request_id))
        return ActionValue(ref, int(version), card_action)
    old = _LEGACY_VALUE.match(value)
    if old is not None:
        return ActionValue(old.group(1), int(old.group(2)))
    raise ValueError(
        f"not a checkpoint action value: {value!r} (expected CHG-n:ACTION:vN or "
        "CHG-n:ACTION#REQUEST:vN)"
    )


SLACK_FILTERS: Mapping[str, Any] = {
    "json": json_value,
    "truncate_chars": truncate_chars,
    "mention": mention,
    "channel_mention": channel_mention,
    "people": people,
    "people_but": people_but,
    "slack_date": slack_date,
    "quote": quote,
    "one_line": one_line,
    "pack_groups": pack_groups,
    "fit_sections": fit_sections,
    # A wave's words beyond its members' lines (templates/waves.py).
    "not_recorded": not_recorded,
    "not_recorded_count": not_recorded_count,
    "still_scheduled": still_scheduled,
    "still_scheduled_summary": still_scheduled_summary,
    # A wave button's value, bound to what it was drawn for
    # (bot/wave_keys.py): `ref | wave_value("merge", refs)`.
    "wave_value": wave_value,
    # What a Keep & merge all covers: `held | merge_items("ref", "state")`.
    "merge_items": merge_items,
}
# Names the templates read (text and budgets), never redefine.
SLACK_GLOBALS: Mapping[str, Any] = {
    "DEMO_FOOTER": DEMO_FOOTER,
    "DIGEST_ROWS": DIGEST_ROWS,
    "DIGEST_TEXT_SECTIONS": DIGEST_TEXT_SECTIONS,
    "DIGEST_TEXT": DIGEST_TEXT,
    "SECTION_TEXT": SECTION_TEXT,
    "LIST_SECTIONS": LIST_SECTIONS,
    "HISTORY_EVENTS": HISTORY_EVENTS,
    "HISTORY_SECTIONS": HISTORY_SECTIONS,
    "HISTORY_TEXT": HISTORY_TEXT,
    "NOTICE_SECTIONS": NOTICE_SECTIONS,
    "LIST_TEXT": LIST_TEXT,
    "HOME_CHANGES_SECTIONS": HOME_CHANGES_SECTIONS,
    "HOME_CHANGES_TEXT": HOME_CHANGES_TEXT,
    "HOME_WINDOWS_SECTIONS": HOME_WINDOWS_SECTIONS,
    "HOME_WINDOWS_TEXT": HOME_WINDOWS_TEXT,
    # The Reject… form's placeholder: the example its empty reason is told.
    "REJECT_EXAMPLE": REJECT_EXAMPLE,
}


# --- validation ----------------------------------------------------------------


def _dropped_keys(original: Any, kept: Any, path: str) -> list[str]:
    """Keys in the template's JSON that the SDK model did not carry over: a
    misspelt or misplaced key, which Slack would reject (or silently ignore)."""
    if isinstance(original, dict) and isinstance(kept, dict):
        found = [f"{path}.{k}" for k in original if k not in kept]
        for k in original.keys() & kept.keys():
            found += _dropped_keys(original[k], kept[k], f"{path}.{k}")
        return found
    if isinstance(original, list) and isinstance(kept, list):
        return [
            p
            for i, (o, k) in enumerate(zip(original, kept, strict=False))
            for p in _dropped_keys(o, k, f"{path}[{i}]")
        ]
    return []


def _texts(node: Any) -> Iterable[str]:
    """Every text a reader sees (text objects' `text` values)."""
    if isinstance(node, dict):
        if node.get("type") in ("plain_text", "mrkdwn") and isinstance(node.get("text"), str):
            yield node["text"]
        for value in node.values():
            yield from _texts(value)
    elif isinstance(node, list):
        for item in node:
            yield from _texts(item)


def _buttons(node: Any) -> Iterable[dict[str, Any]]:
    if isinstance(node, dict):
        if node.get("type") == "button":
            yield node
        for value in node.values():
            yield from _buttons(value)
    elif isinstance(node, list):
        for item in node:
            yield from _buttons(item)


def _check_block(name: str, index: int, block: dict[str, Any]) -> None:
    where = f"block {index} ({block.get('type')})"
    if block.get("type") == "section":
        for field in block.get("fields", ()):
            if len(field.get("text", "")) > FIELD_TEXT:
                raise BlockKitError(name, f"{where}: a field exceeds {FIELD_TEXT} characters")
    if block.get("type") == "context":
        for element in block.get("elements", ()):
            if len(element.get("text", "")) > CONTEXT_TEXT:
                raise BlockKitError(name, f"{where}: an element exceeds {CONTEXT_TEXT} characters")
    for text in _texts(block):
        if not text.strip():
            raise BlockKitError(name, f"{where}: an empty text (Slack rejects it)")
    for button in _buttons(block):
        action = str(button.get("action_id", ""))
        if action in CHANGE_ACTIONS:
            value = str(button.get("value", ""))
            # New messages say what each button is for; the legacy form is
            # only read (from old messages), never written.
            if not _ACTION_VALUE.match(value) or not parse_action_value(value).fits(action):
                raise BlockKitError(
                    name,
                    f"{where}: button {action} value {value!r} does not say what it is for "
                    "(CHG-n:ACTION:vN, or CHG-n:ACTION#REQUEST:vN on Approve / Reject)",
                )


def validate_blocks(name: str, blocks: object, max_blocks: int) -> list[dict[str, Any]]:
    """Parse with slack_sdk and call `to_dict()` on each block (which validates
    nested elements too), then apply the limits the SDK leaves out."""
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
        raise BlockKitError(name, "blocks must be a list of objects")
    if not blocks:
        raise BlockKitError(name, "no blocks")
    if len(blocks) > max_blocks:
        raise BlockKitError(name, f"{len(blocks)} blocks; Slack allows {max_blocks}")
    block_ids = [b["block_id"] for b in blocks if "block_id" in b]
    if len(block_ids) != len(set(block_ids)):
        raise BlockKitError(name, f"duplicate block_id in {sorted(block_ids)}")
    out: list[dict[str, Any]] = []
    for index, (raw, parsed) in enumerate(zip(blocks, Block.parse_all(blocks), strict=True)):
        if parsed is None:
            raise BlockKitError(name, f"block {index}: unknown block type {raw.get('type')!r}")
        try:
            checked = parsed.to_dict()
        except SlackObjectFormationError as exc:
            raise BlockKitError(name, f"block {index} ({raw.get('type')}): {exc}") from exc
        dropped = _dropped_keys(raw, checked, f"block {index}")
        if dropped:
            raise BlockKitError(name, f"keys Block Kit does not know: {', '.join(dropped)}")
        _check_block(name, index, raw)
        out.append(checked)
    return out


# --- the renderer --------------------------------------------------------------


class SlackRenderer:
    """Renders `templates/slack/<name>.json.j2` into validated Block Kit.

    Message templates render `{"text": fallback, "blocks": [...]}`; view
    templates render a view object (`type` modal or home). The Slack filters
    live on an overlay of the given renderer's environment, so the shared
    `Renderer` is not changed.
    """

    def __init__(self, renderer: Renderer, *, simulated: bool = False) -> None:
        """`simulated`: the footer a `demo=True` message carries names the
        simulator backend rather than demo mode."""
        self.env = renderer.env.overlay()
        # `overlay()` shares the filters dict with its parent; copy before adding.
        self.env.filters = {**renderer.env.filters, **SLACK_FILTERS}
        footer = {"DEMO_FOOTER": SIMULATED_FOOTER} if simulated else {}
        self.env.globals = {**renderer.env.globals, **SLACK_GLOBALS, **footer}

    def _load(self, name: str, demo: bool, values: Mapping[str, Any]) -> Any:
        template = f"slack/{name}.json.j2"
        source = self.env.get_template(template).render(demo=demo, **values)
        try:
            data = json.loads(source)
        except json.JSONDecodeError as exc:
            raise BlockKitError(template, f"not JSON: {exc}") from exc
        # Every UTC time a person reads becomes a date token in their own zone.
        return localize_blocks(data)

    def payload(self, name: str, *, demo: bool = False, **values: Any) -> dict[str, Any]:
        """`{"text": ..., "blocks": [...]}`, ready for chat.postMessage / respond."""
        return self._checked(f"slack/{name}.json.j2", self._load(name, demo, values))

    def joined(self, first: Mapping[str, Any], *more: Mapping[str, Any]) -> dict[str, Any]:
        """One message of several rendered ones (the first's `text`, every
        one's blocks in order), checked against Slack's limits as a whole."""
        blocks = [block for part in (first, *more) for block in part["blocks"]]
        return self._checked("joined message", {"text": first["text"], "blocks": blocks})

    def _checked(self, template: str, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            raise BlockKitError(template, 'a message renders {"text": str, "blocks": [...]}')
        if not data["text"].strip() or len(data["text"]) > FALLBACK_TEXT:
            raise BlockKitError(template, f"fallback text must be 1..{FALLBACK_TEXT} characters")
        blocks = validate_blocks(template, data.get("blocks"), MESSAGE_BLOCKS)
        total = sum(len(t) for t in _texts(blocks))
        if total > MESSAGE_TEXT_BUDGET:
            raise BlockKitError(
                template, f"{total} characters of text; the budget is {MESSAGE_TEXT_BUDGET}"
            )
        return {"text": data["text"], "blocks": blocks}

    def message(self, name: str, *, demo: bool = False, **values: Any) -> list[dict[str, Any]]:
        """The blocks of message `name`."""
        blocks: list[dict[str, Any]] = self.payload(name, demo=demo, **values)["blocks"]
        return blocks

    def text(self, name: str, *, demo: bool = False, **values: Any) -> str:
        """The notification fallback `text` of message `name`."""
        text: str = self.payload(name, demo=demo, **values)["text"]
        return text

    def view(self, name: str, *, demo: bool = False, **values: Any) -> dict[str, Any]:
        """A modal or Home tab view, validated as a whole."""
        template = f"slack/{name}.json.j2"
        data = self._load(name, demo, values)
        if not isinstance(data, dict) or data.get("type") not in ("modal", "home"):
            raise BlockKitError(template, "a view renders an object of type modal or home")
        blocks = validate_blocks(template, data.get("blocks"), VIEW_BLOCKS)
        try:
            checked = View(**data).to_dict()
        except (SlackObjectFormationError, TypeError) as exc:
            raise BlockKitError(template, f"view: {exc}") from exc
        metadata = str(data.get("private_metadata", ""))
        if metadata.startswith("CHG-") and not _ACTION_VALUE.match(metadata):
            raise BlockKitError(template, f"private_metadata {metadata!r} is not CHG-n:ACTION:vN")
        dropped = _dropped_keys({k: v for k, v in data.items() if k != "blocks"}, checked, "view")
        if dropped:
            raise BlockKitError(template, f"keys Block Kit does not know: {', '.join(dropped)}")
        return {**checked, "blocks": blocks}


__all__ = [
    "CHANGE_ACTIONS",
    "DEMO_FOOTER",
    "SIMULATED_FOOTER",
    "ActionValue",
    "BlockKitError",
    "Packed",
    "SlackRenderer",
    "pack_groups",
    "parse_action_value",
    "truncate_chars",
    "validate_blocks",
]
