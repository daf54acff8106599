"""A merge never runs over a rollback that waits for its approvers.

A merge deletes the checkpoint; a rollback asked for and waiting for an
approver restores it. Merging then would throw the rollback away unseen
(the change's next state closes every request it makes pointless), so a
merge asked for meanwhile is refused with who asked for the rollback and how
to settle it: by the CLI, by approving a merge that waited, by a wave's
merge (the member is left out, the others are merged) and by the TTL
chaser's automatic merge (not started, and said in the record)."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from bot.clock import ManualClock
from bot.service import (
    Conflict,
    Target,
    approve,
    merge,
    request_checkpoint,
    rollback,
    show_change,
)
from bot.service.ttl_chase import TTLChaser
from bot.store.db import session_scope
from bot.store.models import ApprovalRequest, Job
from tests.cli_support import invoke, one_line_error
from tests.helpers import T0, inline_context, settings_for
from tests.test_slack_flow import (
    REF,
    change_of,
    checked_bot,
    click,
    command,
    root_button,
    shown,
)
from tests.test_slack_http import wait_state

ALICE, BOB = {"CHECKPOINT_BOT_USER": "alice"}, {"CHECKPOINT_BOT_USER": "bob"}


def test_the_cli_refuses_a_merge_while_a_rollback_waits_then_merges_once_it_is_withdrawn(
    tmp_path: Path,
) -> None:
    assert invoke(tmp_path, "checkpoint", "create", "WEB01", "-r", "KB1", env=ALICE).returncode == 0
    asked = invoke(tmp_path, "checkpoint", "rollback", "CHG-1", env=ALICE)
    assert asked.returncode == 0 and "WAITING FOR APPROVAL" in asked.stdout

    merged = invoke(tmp_path, "checkpoint", "merge", "CHG-1", env=BOB)
    assert merged.returncode == 1
    said = one_line_error(merged)
    assert "CHG-0001 is not merged: a rollback asked by @cli:alice waits for approval" in said
    assert "a merge deletes the checkpoint it would restore" in said
    # The terminal's own commands (seen: Slack's "withdraw CHG-0001 rollback",
    # which the CLI refuses as an extra argument).
    assert '(`checkpoint-bot change reject CHG-0001 --request rollback --reason "…"`)' in said
    # Approving it is a way out too, and the refusal is a whole sentence.
    assert "approves it (`checkpoint-bot change approve CHG-0001 --request rollback`)" in said
    assert said.endswith("; then merge.")
    withdraw = "checkpoint-bot checkpoint withdraw CHG-0001 --request rollback"
    assert f"(`{withdraw}`)" in said
    shown = json.loads(invoke(tmp_path, "change", "show", "CHG-1", "--json").stdout)
    assert shown["state"] == "active"
    assert [j["kind"] for j in shown["jobs"]] == ["create"]
    assert "merge" not in {e["kind"] for e in shown["events"]}
    # The rollback still waits: an approver can still approve it.
    waiting = invoke(tmp_path, "change", "list", "--json")
    assert json.loads(waiting.stdout)["changes"][0]["waiting"] == ["rollback"]

    # What it says to type does it.
    assert invoke(tmp_path, *withdraw.split()[1:], env=ALICE).returncode == 0
    merged = invoke(tmp_path, "checkpoint", "merge", "CHG-1", env=BOB)
    assert merged.returncode == 0, merged.stderr
    after = json.loads(invoke(tmp_path, "change", "show", "CHG-1", "--json").stdout)
    assert after["state"] == "merged"


MERGE_NEEDS_APPROVAL = """
rules:
  approvals:
    overrides:
      - scope: {tags: {env: prod}}
        params: {count: 1, actions: [rollback, merge]}
"""


def test_a_merge_that_waited_is_not_approved_over_a_rollback_asked_since(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(MERGE_NEEDS_APPROVAL, encoding="utf-8")
    settings = dataclasses.replace(settings_for(tmp_path), policy_files=(policy,))
    ctx = inline_context(settings)
    try:
        ref = request_checkpoint(ctx, "WEB01", reason="KB1", requester="U0ALICE").change.ref
        assert show_change(ctx, ref).state == "active"
        assert merge(ctx, ref, requester="U0ALICE").approval_id is not None
        assert rollback(ctx, ref, requester="U0CAROL").approval_id is not None

        with pytest.raises(Conflict) as refused:
            approve(ctx, ref, approver="U0BOB", target=_merge())
        assert "a rollback asked by <@U0CAROL> waits for approval" in refused.value.message
        assert show_change(ctx, ref).state == "active"
        with session_scope(ctx.engine) as s:
            pending = s.exec(select(ApprovalRequest).where(ApprovalRequest.state == "pending"))
            assert sorted(r.action for r in pending) == ["merge", "rollback"]
            assert not s.exec(select(Job).where(Job.kind == "merge")).all()

        # Asking for a merge again while the rollback waits opens nothing.
        with pytest.raises(Conflict):
            merge(ctx, ref, requester="U0BOB")
    finally:
        ctx.close()


def _merge() -> Target:
    return Target(action="merge")


STAGING_ROLLBACK_WAITS = """
rules:
  approvals:
    overrides:
      - scope: {tags: {env: staging}}
        params: {count: 1, actions: [rollback]}
  ttl:
    overrides:
      - scope: {tags: {env: staging}}
        params: {auto_merge: true, auto_merge_grace: 30m}
"""


def test_the_automatic_merge_at_expiry_is_not_started_over_a_waiting_rollback(
    tmp_path: Path,
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(STAGING_ROLLBACK_WAITS, encoding="utf-8")
    settings = dataclasses.replace(settings_for(tmp_path), policy_files=(policy,))
    clock = ManualClock(T0)
    ctx = inline_context(settings, clock)
    try:
        ref = request_checkpoint(
            ctx, "STG-WEB01", reason="IIS", requester="U0ALICE", ttl="24h"
        ).change.ref
        assert show_change(ctx, ref).state == "active"
        assert rollback(ctx, ref, requester="U0ALICE").approval_id is not None
        expires = show_change(ctx, ref).expires_at
        assert expires is not None
        clock.advance(expires + timedelta(hours=1) - clock())
        TTLChaser(ctx).tick(clock())

        after = show_change(ctx, ref)
        assert after.state == "active"
        note = after.events[-1]
        assert note.kind == "auto_merge_failed"
        assert "automatic keep & merge not started" in note.message
        assert "a rollback asked by <@U0ALICE> waits for approval" in note.message
    finally:
        ctx.close()


def test_a_wave_merge_leaves_out_the_member_whose_rollback_waits(tmp_path: Path) -> None:
    taken = invoke(tmp_path, "checkpoint", "create", "--group", "web-tier", "-r", "KB1", "--yes")
    assert taken.returncode == 0, taken.stderr
    assert invoke(tmp_path, "checkpoint", "rollback", "CHG-1", env=ALICE).returncode == 0

    merged = invoke(tmp_path, "batch", "merge", "BAT-1", "--yes", env=BOB)
    assert "WEB01 on HV01: not merged, its rollback waits for approval (CHG-0001)" in (
        merged.stdout
    )
    assert "merging keeps the changes of 2 VMs" in merged.stdout
    shown = json.loads(invoke(tmp_path, "batch", "show", "BAT-1", "--json").stdout)
    assert [(m["vm"], m["state"], m["waiting_for_approval"]) for m in shown["members"]] == [
        ("WEB01", "active", "rollback"),
        ("WEB02", "merged", None),
        ("APP01", "merged", None),
    ]


def test_a_stale_keep_and_merge_button_is_refused_while_a_rollback_waits(tmp_path: Path) -> None:
    # The card's Keep & merge acts while the change is in the state the card
    # showed (active); a rollback asked since does not change that state, so
    # it is the merge itself that refuses, to the clicker alone.
    with checked_bot(tmp_path, "") as bot:
        asked = command(bot, "create WEB01 --reason KB5044284 patch")
        found = REF.search(asked["text"])
        assert found is not None
        ref = found.group(0)
        wait_state(bot, "WEB01", "active")  # the shipped policy: a create needs no approver
        keep = root_button(bot, ref, "checkpoint:merge")

        waits = command(bot, f"rollback {ref}")
        assert "waits for approval" in shown(waits)
        refused = shown(click(bot, "checkpoint:merge", keep, user="U0BOB"))
        assert f"{ref} is not merged: a rollback asked by" in refused
        assert "U0ALICE" in refused and "waits for approval" in refused
        assert f"`/checkpoint withdraw {ref} rollback`" in refused
        assert change_of(bot, "WEB01").state == "active"
        assert [e.kind for e in change_of(bot, "WEB01").events][-1] == "rollback_awaits_approval"
