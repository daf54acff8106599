"""A rejection says why where people read the record (2026-12-06: the
audit export's `message` said "rollback rejected by @cli:carol" and the
why was only inside its `details` JSON). The message column is the
human-readable one (docs/operations.md, Audit export): it says the reason
as a create's event does, after who rejected it; the details keep it too.
In Slack the rejecter's words stay escaped, and are said once."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.changes.views import EventView
from templates import Renderer
from templates.blocks import SlackRenderer
from tests.cli_support import invoke, one_line_error
from tests.test_slack_blocks import change, texts

ALICE, CAROL = {"CHECKPOINT_BOT_USER": "alice"}, {"CHECKPOINT_BOT_USER": "carol"}
# Quotes and a comma (CSV's own characters), a line break, and a second
# line that begins as a spreadsheet formula.
WHY = 'not now, "busy"\n=HYPERLINK("http://evil.example","x") after the freeze'


def _rollback_waiting(cwd: Path) -> None:
    """The demo's WEB01 is prod: its rollback waits for an approver."""
    made = invoke(cwd, "checkpoint", "create", "WEB01", "-r", "patch", env=ALICE)
    assert made.returncode == 0, made.stderr
    asked = invoke(cwd, "checkpoint", "rollback", "CHG-1", env=ALICE)
    assert "WAITING FOR APPROVAL" in asked.stdout, asked.stdout + asked.stderr


def test_the_message_column_says_why_a_request_was_rejected(tmp_path: Path) -> None:
    _rollback_waiting(tmp_path)
    rejected = invoke(
        tmp_path, "change", "reject", "CHG-1", "--request", "rollback", "--reason", WHY, env=CAROL
    )
    assert rejected.returncode == 0, rejected.stderr
    said = f"rollback rejected by @cli:carol: {WHY}"

    out = tmp_path / "r.csv"
    wrote = invoke(tmp_path, "audit", "export", "--change", "CHG-0001", "-o", str(out))
    assert wrote.returncode == 0, wrote.stderr
    with out.open(encoding="utf-8", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["event"] == "rollback_rejected"]
    assert [r["message"] for r in rows] == [said]  # read back whole: quotes, comma, line
    assert json.loads(rows[0]["details"])["reason"] == WHY
    assert rows[0]["actor"] == "cli:carol"

    lines = invoke(tmp_path, "audit", "export", "--change", "CHG-1").stdout.splitlines()
    [event] = [r for r in map(json.loads, lines) if r["event"] == "rollback_rejected"]
    assert event["message"] == said and event["details"]["reason"] == WHY

    shown = invoke(tmp_path, "change", "show", "CHG-1").stdout
    assert 'rollback rejected by @cli:carol: not now, "busy"\n' in shown


@pytest.mark.parametrize("why", ["\x1b[2J\x1b[31mall clear", "bidi \u202e txet"])
def test_a_reason_a_terminal_would_act_on_is_refused_and_nothing_recorded(
    tmp_path: Path, why: str
) -> None:
    """The message is printed by `change show`: a reason is checked as a
    create's is (bot/reasons.py), not written into it raw."""
    _rollback_waiting(tmp_path)
    done = invoke(
        tmp_path, "change", "reject", "CHG-1", "--request", "rollback", "--reason", why, env=CAROL
    )
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "control character" in one_line_error(done)
    shown = json.loads(invoke(tmp_path, "change", "show", "CHG-1", "--json").stdout)
    assert shown["waiting"] and not any(e["kind"].endswith("rejected") for e in shown["events"])


def test_the_thread_reply_says_the_reason_once_and_escaped() -> None:
    """The reply quotes the message; a mention token in the rejecter's
    words is shown, never acted on, while the bot's own mention stays."""
    why = "quarter-end close <!here>"
    event = EventView(
        6,
        datetime(2026, 12, 6, 17, 0, tzinfo=UTC),
        "U0CAROL",
        "rollback_rejected",
        None,
        None,
        f"rollback rejected by <@U0CAROL>: {why}",
        {"request": 1, "action": "rollback", "reason": why},
    )
    slack = SlackRenderer(Renderer())
    (text,) = texts(slack.message("change_event", c=change(), e=event))
    assert "rejected by <@U0CAROL>: quarter-end close &lt;!here&gt;" in text
    assert "<!here>" not in text
    assert text.count("quarter-end close") == 1


def test_an_older_rejection_keeps_its_reason_line() -> None:
    """Recorded before the message said why: the reply still shows it."""
    event = EventView(
        6,
        datetime(2026, 12, 1, 17, 0, tzinfo=UTC),
        "U0CAROL",
        "rollback_rejected",
        None,
        None,
        "rollback rejected by <@U0CAROL>",
        {"request": 1, "action": "rollback", "reason": "not <!here>"},
    )
    (text,) = texts(SlackRenderer(Renderer()).message("change_event", c=change(), e=event))
    assert "*Reason:* not &lt;!here&gt;" in text and "<!here>" not in text
