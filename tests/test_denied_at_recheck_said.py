"""A create the policy allowed when asked and refused at its re-check right
before the job ran says why, where the person reads it.

Seen twice (scale-out explorer, six creates of one VM at once): the CLI
printed "CHG-0043: checkpoint of T2VM03 on HX02 is running…" then
"CHG-0043: denied — T2VM03 on HX02 …" with no reason (the reason, "T2VM03
already has 3 checkpoints", was only in `change show`'s history), and
`change show` read "policy: allow" for the denied change.

Demo mode: the service takes the request and runs the job in this process
after a fact changed (checkpoints disabled on the VM); the CLI then shows
the change as a person reads it."""

from __future__ import annotations

from pathlib import Path

from bot.clock import ScaledClock
from bot.context import build_context
from bot.hyperv import CheckpointType
from bot.service import request_checkpoint
from tests.cli_support import invoke
from tests.helpers import T0, run_inline, settings_for


def test_change_show_of_a_create_refused_at_its_recheck_says_why(tmp_path: Path) -> None:
    clock = ScaledClock(600, start=T0)
    ctx = build_context(settings_for(tmp_path), clock=clock, huey_kind="memory")
    try:
        out = request_checkpoint(ctx, "APP01", reason="deploy", requester="alice")
        assert out.change.state == "approved" and out.job_id is not None
        ctx.host_for("HV01").set_checkpoint_settings(
            out.change.vm_id, checkpoint_type=CheckpointType.Disabled
        )
        run_inline(ctx.runner, out.job_id)
    finally:
        ctx.close()

    shown = invoke(tmp_path, "change", "show", out.change.ref)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith(f"{out.change.ref}: denied — APP01 on HV01"), lines[0]
    refused = [line for line in lines if line.startswith("  refused:")]
    assert len(refused) == 1, shown.stdout
    assert refused[0].startswith("  refused:    re-checked before running: "), refused[0]
    assert "checkpoint" in refused[0].lower()
    policy = next(line for line in lines if line.startswith("  policy:"))
    assert policy == "  policy:     allow when asked; refused when re-checked before running"
