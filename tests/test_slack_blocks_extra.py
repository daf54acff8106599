"""The short-answer and checkpoint-settings templates (`notice_ephemeral`,
`vm_settings`): valid Block Kit with and without the demo footer, user text
escaped, everything cut to Slack's limits, and the lines that fit the case."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from bot.hyperv import CheckpointType, VMInfo, VMState
from templates import Renderer
from templates.blocks import DEMO_FOOTER, SlackRenderer
from tests.slack_support import Call
from tests.test_slack_flow import slack_problems

NASTY = "<!channel> & <https://x|y>"
ESCAPED = "&lt;!channel&gt; &amp; &lt;https://x|y&gt;"

APP01 = VMInfo(
    vm_id="6f0c1e1a-1111-2222-3333-444455556666",
    name="APP01",
    host="HV02",
    state=VMState.Running,
    checkpoint_type=CheckpointType.Production,
    automatic_checkpoints=False,
    replication_state="Disabled",
)


@pytest.fixture(scope="module")
def slack() -> SlackRenderer:
    return SlackRenderer(Renderer())


def texts(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["text"]] if node.get("type") in ("mrkdwn", "plain_text") else []
        return found + [t for v in node.values() for t in texts(v)]
    if isinstance(node, list):
        return [t for item in node for t in texts(item)]
    return []


def mrkdwn(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["text"]] if node.get("type") == "mrkdwn" else []
        return found + [t for v in node.values() for t in mrkdwn(v)]
    if isinstance(node, list):
        return [t for item in node for t in mrkdwn(item)]
    return []


def shown(payload: dict[str, Any]) -> str:
    return "\n".join([payload["text"], *texts(payload["blocks"])])


SAMPLES: dict[str, dict[str, Any]] = {
    "notice_ephemeral": {
        "title": "CHG-0042: rollback",
        "lines": ["*CHG-0042* (WEB01): rollback started; the thread shows how it goes."],
        "hint": "`/checkpoint status CHG-0042` shows it",
    },
    "vm_settings": {"vm": APP01},
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
@pytest.mark.parametrize("demo", [False, True])
def test_both_render_valid_block_kit(slack: SlackRenderer, name: str, demo: bool) -> None:
    payload = slack.payload(name, demo=demo, **SAMPLES[name])
    assert payload["text"].strip() and 0 < len(payload["blocks"]) <= 50
    assert any(DEMO_FOOTER in t for t in texts(payload["blocks"])) is demo


# --- notice_ephemeral ---------------------------------------------------------------


def test_notice_is_a_title_its_lines_and_a_hint(slack: SlackRenderer) -> None:
    payload = slack.payload("notice_ephemeral", **SAMPLES["notice_ephemeral"])
    assert payload["text"] == "CHG-0042: rollback"
    kinds = [b["type"] for b in payload["blocks"]]
    assert kinds == ["section", "section", "context"]
    assert payload["blocks"][0]["text"]["text"] == "*CHG-0042: rollback*"
    assert payload["blocks"][2]["elements"][0]["text"].startswith(":bulb: `/checkpoint status")


def test_notice_without_hint_or_lines(slack: SlackRenderer) -> None:
    payload = slack.payload("notice_ephemeral", title="Change windows", lines=["", "  "])
    assert [b["type"] for b in payload["blocks"]] == ["section"]


def test_notice_escapes_the_title_but_keeps_the_callers_mrkdwn(slack: SlackRenderer) -> None:
    payload = slack.payload(
        "notice_ephemeral", title=f"CHG-1: checkpoint of {NASTY}", lines=["*bold* `code`"]
    )
    out = json.dumps(mrkdwn(payload["blocks"]), ensure_ascii=False)
    assert "<!channel>" not in out + payload["text"] and ESCAPED in payload["text"]
    assert "*bold* `code`" in shown(payload)


def test_notice_packs_many_lines_within_the_limits(slack: SlackRenderer) -> None:
    lines = [f":calendar: *window {i}* · opens soon · {'x' * 150}" for i in range(400)]
    payload = slack.payload("notice_ephemeral", title="t" * 400, lines=lines, hint="h" * 5000)
    blocks = payload["blocks"]
    assert len(blocks) <= 50
    assert all(len(t) <= 3000 for t in texts(blocks))
    assert sum(len(t) for t in texts(blocks)) <= 12_000
    assert blocks[0]["text"]["text"].endswith("…*") and len(payload["text"]) <= 300
    more = [t for t in texts(blocks) if t.startswith("…and ")]
    assert more and more[0].split()[1].isdigit()
    shown_lines = sum(t.count(":calendar:") for t in texts(blocks))
    assert shown_lines + int(more[0].split()[1]) == 400
    assert texts(blocks)[-1].endswith("…")  # the hint, cut


# --- vm_settings --------------------------------------------------------------------


def fields(payload: dict[str, Any]) -> dict[str, str]:
    section = next(b for b in payload["blocks"] if "fields" in b)
    return dict(f["text"].split("\n", 1) for f in section["fields"])


def test_settings_show_what_the_host_reports(slack: SlackRenderer) -> None:
    vm = replace(APP01, automatic_checkpoints=True, replication_state="Replicating")
    payload = slack.payload("vm_settings", vm=vm)
    assert fields(payload) == {
        "*VM*": "APP01",
        "*Host*": "HV02",
        "*State*": "Running",
        "*Checkpoint type*": "Production: VSS in the guest, falls back to standard if VSS fails",
        "*Automatic checkpoints*": "on",
        "*Hyper-V Replica*": "Replicating",
    }
    assert payload["blocks"][0]["text"]["text"] == "Checkpoint settings of APP01"
    assert payload["text"] == "APP01: CheckpointType Production, automatic checkpoints on"
    assert "Admins change them with `/checkpoint settings APP01" in shown(payload)
    assert "Changed" not in shown(payload)


def test_settings_after_a_change_say_what_changed_and_who(slack: SlackRenderer) -> None:
    vm = replace(APP01, checkpoint_type=CheckpointType.ProductionOnly)
    changed = ["CheckpointType Production → ProductionOnly", "automatic checkpoints on → off"]
    payload = slack.payload(
        "vm_settings", vm=vm, changed=changed, changed_by="U0ADMIN", requested=True
    )
    body = shown(payload)
    assert "*Changed* by <@U0ADMIN>" in body
    assert "• CheckpointType Production → ProductionOnly\n• automatic checkpoints on → off" in body
    assert "Production only: VSS in the guest, fails rather than fall back" in body
    assert "Admins change them" not in body
    assert payload["text"].endswith("changed: " + "; ".join(changed))


def test_settings_read_back_after_a_late_answer_say_so(slack: SlackRenderer) -> None:
    """The host took the change but answered after the call's limit: the
    change is shown as any change is, and the note says there is no need to
    ask again (bot.service.vm_settings)."""
    vm = replace(APP01, checkpoint_type=CheckpointType.ProductionOnly)
    note = "the host did not answer the change in time; read back, the VM had taken it"
    payload = slack.payload(
        "vm_settings",
        vm=vm,
        changed=["CheckpointType Production → ProductionOnly"],
        changed_by="U0ADMIN",
        requested=True,
        read_back=note,
    )
    assert ":hourglass: The host did not answer the change in time; read back" in shown(payload)
    assert slack_problems(Call("chat.postEphemeral", payload, 0.0)) == []


def test_settings_change_that_changed_nothing(slack: SlackRenderer) -> None:
    payload = slack.payload("vm_settings", vm=APP01, changed=[], requested=True)
    assert "Nothing changed: APP01 already has these settings." in shown(payload)


@pytest.mark.parametrize(
    ("ctype", "note"),
    [
        (CheckpointType.Standard, "holds memory too"),
        (CheckpointType.Disabled, "Checkpoints are disabled"),
        (CheckpointType.Production, None),
    ],
)
def test_settings_warn_about_standard_and_disabled(
    slack: SlackRenderer, ctype: CheckpointType, note: str | None
) -> None:
    body = shown(slack.payload("vm_settings", vm=replace(APP01, checkpoint_type=ctype)))
    assert (note in body) if note else (":warning:" not in body and ":no_entry:" not in body)


def test_settings_escape_and_cut_what_the_host_reports(slack: SlackRenderer) -> None:
    vm = replace(APP01, name="VM" + NASTY * 20, host=NASTY, replication_state=NASTY * 30)
    payload = slack.payload(
        "vm_settings", vm=vm, changed=[NASTY * 20], changed_by=NASTY, requested=True
    )
    # mrkdwn is escaped; plain_text (the header) is shown literally by Slack.
    out = json.dumps(mrkdwn(payload["blocks"]), ensure_ascii=False) + payload["text"]
    assert "<!channel>" not in out and "<https://x" not in out
    assert ESCAPED in fields(payload)["*Host*"]
    assert len(payload["blocks"][0]["text"]["text"]) <= 150
    replica = fields(payload)["*Hyper-V Replica*"]
    assert replica.endswith("…") and len(replica) <= 2000  # cut before escaping
    assert len(payload["text"]) <= 300
