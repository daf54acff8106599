"""The App Home's "Your open changes": its header counts every line it
lists (a wave's line apart from the changes), and a change past its expiry
reads "expired …", as "Past their TTL" says it, not "expires" a past time."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from bot.service import Selection, create_batch
from tests.slack_support import Call, RunningBot
from tests.sweep_support import checkpointable, record_change
from tests.test_slack_flow import checked_bot


def _open_changes(bot: RunningBot, user: str, showing: str) -> tuple[str, list[str]]:
    """The section's header and its lines, from `user`'s App Home as
    published once they open it, the first page that shows `showing`."""

    def published(calls: list[Call]) -> list[Call]:
        return [c for c in calls if c.method == "views.publish" and c.body["user_id"] == user]

    def current(calls: list[Call]) -> list[Call]:
        # A refresher (the wave's jobs ending) may publish a page it built
        # before the record was written, after this test opened the Home:
        # the page to read is the first that shows what was recorded.
        return [c for c in published(calls)[before:] if showing in json.dumps(c.body)]

    before = len(published(bot.api.calls))
    event = {"type": "app_home_opened", "user": user, "channel": "D0", "tab": "home"}
    assert bot.slack.event(event, f"Ev-{user}").status == 200
    calls = bot.api.wait_for(current)
    blocks: list[dict[str, Any]] = current(calls)[-1].body["view"]["blocks"]
    start = next(
        n
        for n, b in enumerate(blocks)
        if b["type"] == "header" and b["text"]["text"].startswith("Your open changes")
    )
    lines: list[str] = []
    for block in blocks[start + 1 :]:
        if block["type"] != "section":
            break
        # Each listed item is a line with its reason under it.
        text = block["text"]["text"]
        lines += [line for line in text.split("\n") if line.startswith((":", "*"))]
    return blocks[start]["text"]["text"], [line for line in lines if " · " in line]


def _wave_and_an_expired_change(bot: RunningBot) -> int:
    """U0ALICE's wave of two VMs, taken, and a change of hers on a third VM,
    two hours past its expiry; that change's id."""
    out = create_batch(
        bot.ctx,
        Selection.of(["STG-WEB01", "WEB01"]),
        reason="KB5044284 wave",
        requester="U0ALICE",
        channel="C0TEST",
    )
    for o in out.outcomes:
        assert o.job_id is not None
        assert bot.ctx.ledger.wait(o.job_id, timeout=30).state == "succeeded"
    vm = next(v for v in checkpointable(bot.ctx) if v.name not in ("STG-WEB01", "WEB01"))
    taken = bot.ctx.host_for(vm.host).create_checkpoint(vm.vm_id, "before patching")
    return record_change(bot.ctx, vm, taken, channel="C0OPS", expired_by=timedelta(hours=2))


def test_the_open_changes_header_counts_every_line_it_lists(tmp_path: Path) -> None:
    with checked_bot(tmp_path, "") as bot:
        expired = _wave_and_an_expired_change(bot)
        header, lines = _open_changes(bot, "U0ALICE", f"*CHG-{expired:04d}*")
        assert header == "Your open changes (3) and waves (1)"
        assert len(lines) == 4 and lines[0].startswith(":ocean: *BAT-0001*")


def test_an_open_change_past_its_expiry_reads_expired(tmp_path: Path) -> None:
    with checked_bot(tmp_path, "") as bot:
        expired = _wave_and_an_expired_change(bot)
        _header, lines = _open_changes(bot, "U0ALICE", f"*CHG-{expired:04d}*")
        [late] = [line for line in lines if f"*CHG-{expired:04d}*" in line]
        # As "Past their TTL" says it: how long ago, not a time in the past.
        assert " · expired <!date^" in late and "^{ago}|" in late and "expires" not in late
        # The wave's members have not expired: they still say when they will.
        members = [line for line in lines if line.startswith(":large_green_circle:")]
        members = [line for line in members if line is not late]
        assert len(members) == 2
        assert all(" · expires <!date^" in line for line in members), members
