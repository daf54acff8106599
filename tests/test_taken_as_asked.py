"""What the host took, against what was asked: a production-only request
gives a production checkpoint or none (Hyper-V never falls back to a
standard one, Set-VM -CheckpointType ProductionOnly,
https://learn.microsoft.com/powershell/module/hyper-v/set-vm), so a
production checkpoint is exactly what it asked for and gets no warning on
the thread's card (seen: "Taken production :warning:" for LAB-DC01); a
production request that fell back to standard does."""

from __future__ import annotations

from pathlib import Path

from bot.domain import CheckpointKind
from bot.service import request_checkpoint, show_change
from templates import Renderer
from templates.blocks import SlackRenderer
from tests.helpers import inline_context, settings_for


def test_each_kind_is_taken_as_asked_only_by_what_it_gives() -> None:
    assert CheckpointKind.PRODUCTION_ONLY.taken_as_asked("production")
    assert not CheckpointKind.PRODUCTION_ONLY.taken_as_asked("standard")
    assert CheckpointKind.PRODUCTION.taken_as_asked("production")
    assert not CheckpointKind.PRODUCTION.taken_as_asked("standard")  # the VSS fallback
    assert CheckpointKind.STANDARD.taken_as_asked("standard")


def test_a_production_only_checkpoint_taken_as_production_gets_no_warning(tmp_path: Path) -> None:
    ctx = inline_context(settings_for(tmp_path))
    try:
        # The shipped policy asks production-only for a lone domain controller.
        ref = request_checkpoint(ctx, "LAB-DC01", reason="lab patching", requester="U0ALICE")
        change = show_change(ctx, ref.change.ref)
        assert (change.checkpoint_type, change.taken_type) == ("production-only", "production")
        assert change.taken_as_asked
        root = SlackRenderer(Renderer()).payload("change_root", c=change, start_after_restore=True)
        text = str(root["blocks"])
        assert "*Taken*\\nproduction" in text and ":warning:" not in text.split("*Taken*")[1][:40]
    finally:
        ctx.close()
