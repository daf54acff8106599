"""A wave member the preview could take, refused by its job's re-check (a
fact changed between the confirmation and the job): its line says why, its
job says it did nothing on the host, and the wave counts as fallen short of
what the person confirmed (the CLI exits 1)."""

from __future__ import annotations

from pathlib import Path

from bot.clock import ScaledClock
from bot.context import build_context
from bot.hyperv import CheckpointType
from bot.service import Selection, create_batch, show_batch, show_change
from tests.helpers import T0, run_inline, settings_for


def test_a_member_refused_at_its_re_check_says_why_and_the_wave_falls_short(
    tmp_path: Path,
) -> None:
    ctx = build_context(
        settings_for(tmp_path), clock=ScaledClock(600, start=T0), huey_kind="memory"
    )
    try:
        out = create_batch(
            ctx, Selection.of(["STG-WEB01", "STG-APP01"]), reason="IIS", requester="alice"
        )
        assert {c.vm for c in out.preview.takeable} == {"STG-WEB01", "STG-APP01"}
        # Between the confirmation and the jobs, checkpoints are disabled on one VM.
        web = next(o for o in out.outcomes if o.change.vm_name == "STG-WEB01")
        ctx.host_for("HV03").set_checkpoint_settings(
            web.change.vm_id, checkpoint_type=CheckpointType.Disabled
        )
        for o in out.outcomes:
            assert o.job_id is not None
            run_inline(ctx.runner, o.job_id)

        batch = show_batch(ctx, out.batch.ref)
        member = next(m for m in batch.members if m.vm_name == "STG-WEB01")
        assert member.state == "denied"
        assert member.note is not None and member.note.startswith("re-checked before running: ")
        assert "checkpoints are disabled" in member.note or "Disabled" in member.note
        assert [m.vm_name for m in out.fell_short(batch)] == ["STG-WEB01"]

        change = show_change(ctx, web.change.ref)
        assert [(j.kind, j.state, j.held_back) for j in change.jobs] == [
            ("create", "succeeded", "refused at its re-check, nothing done on the host")
        ]
        taken = show_change(ctx, next(o for o in out.outcomes if o is not web).change.ref)
        assert [j.held_back for j in taken.jobs] == [None]
    finally:
        ctx.close()
