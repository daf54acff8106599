"""Checkpoint settings: anyone looks, admins change, the policy refuses
Standard for transactional workloads, and every change is recorded."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from bot.clock import ScaledClock
from bot.context import AppContext, build_context
from bot.hyperv import CheckpointType
from bot.service import BadRequest, Forbidden, change_settings, show_settings
from bot.service.queries import audit_rows
from tests.helpers import T0, settings_for


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[AppContext]:
    policy = tmp_path / "policy.yaml"
    policy.write_text("admins: {users: [U0ADMIN], groups: [S0HVADMINS]}\n", encoding="utf-8")
    settings = replace(settings_for(tmp_path), policy_files=(policy,))
    context = build_context(settings, clock=ScaledClock(600, start=T0), huey_kind="memory")
    try:
        yield context
    finally:
        context.close()


def test_anyone_may_look(ctx: AppContext) -> None:
    shown = show_settings(ctx, "sql01")
    assert shown.vm.checkpoint_type is CheckpointType.ProductionOnly and shown.changed == ()


def test_an_admin_changes_and_the_change_is_recorded(ctx: AppContext) -> None:
    done = change_settings(
        ctx,
        "APP01",
        "U0ADMIN",
        checkpoint_type="production-only",
        automatic=False,
        reason="no silent fallback",
    )
    assert done.vm.checkpoint_type is CheckpointType.ProductionOnly
    assert done.changed == ("CheckpointType Production → ProductionOnly",)
    rows = [r for r in audit_rows(ctx) if r["event"] == "settings"]
    assert len(rows) == 1 and rows[0]["actor"] == "U0ADMIN" and rows[0]["vm"] == "APP01"
    assert rows[0]["details"]["after"]["checkpoint_type"] == "ProductionOnly"
    again = change_settings(
        ctx, "APP01", "U0ADMIN", checkpoint_type="production-only", reason="once more"
    )
    assert again.changed == () and again.record_id is None


def test_admin_by_group(ctx: AppContext) -> None:
    from bot.service import Principal

    done = change_settings(
        ctx,
        "WEB02",
        Principal("U0CAROL", frozenset({"S0HVADMINS"})),
        checkpoint_type="standard",
        reason="web tier runs no database",
    )
    assert done.vm.checkpoint_type is CheckpointType.Standard


def test_others_are_refused_and_nothing_changes(ctx: AppContext) -> None:
    with pytest.raises(Forbidden, match="for admins") as refused:
        change_settings(ctx, "APP01", "U0BOB", checkpoint_type="disabled")
    # Who to ask, as Slack names people (a terminal shows them as @names).
    assert str(refused.value).endswith("ask one of them: <@U0ADMIN>, <!subteam^S0HVADMINS>")
    assert show_settings(ctx, "APP01").vm.checkpoint_type is CheckpointType.Production


@pytest.mark.parametrize("vm", ["SQL01", "EXCH01", "CORP-DC01"])
def test_standard_is_refused_for_transactional_workloads(ctx: AppContext, vm: str) -> None:
    before = show_settings(ctx, vm).vm.checkpoint_type
    with pytest.raises(Forbidden, match="Standard is refused"):
        change_settings(ctx, vm, "U0ADMIN", checkpoint_type="standard")
    assert show_settings(ctx, vm).vm.checkpoint_type is before


def test_a_change_needs_a_reason_and_changes_nothing_without_one(ctx: AppContext) -> None:
    """Seen in an export: `"event": "settings", … "message": ""`, the one
    kind of change recorded without why."""
    before = show_settings(ctx, "APP01").vm
    with pytest.raises(BadRequest, match=r"a reason is required to change APP01's checkpoint"):
        change_settings(
            ctx, "APP01", "U0ADMIN", automatic=not before.automatic_checkpoints, reason="  "
        )
    with pytest.raises(BadRequest, match=r"the reason contains a control character \(U\+001B\)"):
        change_settings(
            ctx, "APP01", "U0ADMIN", automatic=not before.automatic_checkpoints, reason="\x1b[2J"
        )
    after = show_settings(ctx, "APP01").vm
    assert (after.automatic_checkpoints, after.checkpoint_type) == (
        before.automatic_checkpoints,
        before.checkpoint_type,
    )
    assert [r for r in audit_rows(ctx) if r["event"] == "settings"] == []


def test_bad_input(ctx: AppContext) -> None:
    with pytest.raises(BadRequest, match="unknown checkpoint type 'fast'"):
        change_settings(ctx, "APP01", "U0ADMIN", checkpoint_type="fast")
    with pytest.raises(BadRequest, match="did you mean"):
        change_settings(ctx, "APP1", "U0ADMIN", checkpoint_type="standard")


def test_a_change_the_inventory_disagrees_with_says_so(ctx: AppContext) -> None:
    # Seen in Slack: an admin enabled LEGACY01's checkpoints on the host,
    # was told "changed", and every create stayed refused: the inventory
    # still said Disabled, and the guardrails act on the riskier reading.
    done = change_settings(
        ctx, "LEGACY01", "U0ADMIN", checkpoint_type="production", reason="VSS fixed"
    )
    assert done.changed == ("CheckpointType Disabled → Production",)
    assert done.inventory_says == "Disabled"
    assert done.disagreement == (
        "the inventory still says CheckpointType Disabled for LEGACY01 (the host: Production); "
        "the guardrails act on the riskier of the two, so update the inventory to Production "
        "too (edit it, or 'checkpoint-bot inventory discover --merge FILE')"
    )
    assert show_settings(ctx, "LEGACY01").inventory_says == "Disabled"
    # Where the two agree, nothing is said.
    agreed = change_settings(
        ctx, "APP01", "U0ADMIN", checkpoint_type="production", reason="as the inventory says"
    )
    assert agreed.inventory_says is None and agreed.disagreement is None


def test_slack_shows_the_disagreement_under_the_change(tmp_path: Path) -> None:
    from tests.test_slack_flow import checked_bot, command, shown

    with checked_bot(tmp_path, "admins: {users: [U0CAROL]}\n") as bot:
        said = shown(
            command(bot, 'settings LEGACY01 --type production --reason "VSS fixed"', user="U0CAROL")
        )
        assert "CheckpointType Disabled → Production" in said
        assert ":warning: The inventory still says CheckpointType Disabled for LEGACY01" in said


def test_the_export_finds_a_settings_change_by_the_ref_it_writes(ctx: AppContext) -> None:
    """Seen: the export wrote `SET-0001` as the row's change, and
    `audit export --change SET-0001` said it is not a change."""
    from datetime import UTC, datetime

    from bot.service import (
        NotFound,
        check_filter,
        parse_filter,
        request_checkpoint,
        stream_audit,
    )

    request_checkpoint(ctx, "APP01", reason="patch", requester="U0ALICE")
    flip = not show_settings(ctx, "APP01").vm.automatic_checkpoints
    done = change_settings(ctx, "APP01", "U0ADMIN", automatic=flip, reason="no boot checkpoints")
    assert done.record_id == 1
    now = datetime.now(UTC)
    flt = parse_filter(now=now, change=" set-1 ")
    check_filter(ctx.engine, flt)
    rows = list(stream_audit(ctx.engine, flt))
    assert [(r["change"], r["event"], r["message"]) for r in rows] == [
        ("SET-0001", "settings", "no boot checkpoints")
    ]
    with pytest.raises(NotFound, match="no settings change SET-0009: nothing was exported"):
        check_filter(ctx.engine, parse_filter(now=now, change="SET-0009"))
