"""A wave's member whose host stopped answering mid-call is interrupted: its
outcome is unknown until the reconciler asks the host, so the wave never
says it failed (seen twice by a scale-out explorer: `checkpoint create
T1VM03 … T1VM08 -r x --yes` printed "BAT-0003: 5 of 6 done, 1 failed" and
"partly failed", exited 1, and seconds later `batch show BAT-0003` read
"active — 6 of 6 done": the reconciler adopted the checkpoint the host had
taken). A script retrying on 1 would take a second checkpoint.

What holds now: the progress line, the card, `batch show` and the end
milestone say "1 outcome unknown"; the wave is `interrupted`, not
`partly_failed`, while a member is; the wave's commands that waited for
that member (create, `batch rollback`/`merge`/`approve`) and `change
approve` exit 4, naming the member and who settles it.

The hosts are the WinRM emulator over loopback (tests/cli_support.py
`emulated_estate`); `late=CMDLET:MS` makes one host do the work at once and
answer after the call's limit (bot/devtools/emulator/faults.py), which is
how a host that took a checkpoint and then went quiet looks to the bot."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from bot.changes import State
from bot.changes.batch_milestones import finish_of
from bot.changes.batch_record import batch_note, get_batch
from bot.changes.batch_state import PART_OF, Action, BatchState, Part, Tally, batch_state
from bot.changes.batch_views import BatchEventView, BatchView, MemberView
from bot.changes.record import get_change, note
from bot.devtools.emulator import Faults
from bot.devtools.emulator.pointing import EMULATOR_PASSWORD_ENV
from bot.store.db import session_scope
from templates import Renderer
from templates.blocks import SlackRenderer
from tests.cli_support import CliResult, emulated_estate, invoke
from tests.test_batch_milestones import _wave as _recorded_wave
from tests.test_slack_flow import block_kit_problems, shown

ENV = {EMULATOR_PASSWORD_ENV: "Passw0rd!", "CHECKPOINT_BOT_SOCKET": "off"}
# A host call gets 3 s; the faulty host answers after 5 s (it did the work
# at once). Ticks far apart: no reconciler pass settles the member while
# the command waits, so what the command says of an unknown outcome is seen.
HYPERV = "{backend: winrm, call_timeout: 3s}"
EXTRA = "jobs: {tick_seconds: 300}\n"
LATE = 5000
T0 = datetime(2026, 12, 4, 21, 0, tzinfo=UTC)


def _cli(cwd: Path, *args: str, user: str = "alice") -> CliResult:
    return invoke(cwd, "-c", "bot.yaml", *args, env={**ENV, "CHECKPOINT_BOT_USER": user})


def _no_failure_said(text: str) -> None:
    assert "failed" not in text, text
    assert "Traceback" not in text, text


# -- the wave's create, through the CLI ----------------------------------------


def test_a_create_with_a_member_the_host_dropped_exits_4_and_says_it_is_unknown(
    tmp_path: Path,
) -> None:
    with emulated_estate(tmp_path, HYPERV, extra=EXTRA, env=ENV) as fleet:
        # STG-WEB01 is on HV03: its checkpoint is taken, the answer comes late.
        fleet.server("HV03").faults = Faults(late={"Checkpoint-VM": LATE})
        created = _cli(tmp_path, "checkpoint", "create", "APP01", "STG-WEB01", "-r", "x", "--yes")
        said = created.stdout + created.stderr
        # Not 1 (failed): the host may have taken it, and a retry takes another.
        assert created.returncode == 4, said
        _no_failure_said(said)
        assert "BAT-0001: 1 of 2 done, 1 outcome unknown" in created.stderr, said
        assert "BAT-0001: interrupted — 1 of 2 done, 1 outcome unknown" in created.stdout, said
        # Which member, and who settles it; never "run it again".
        [line] = [ln for ln in created.stdout.splitlines() if "STG-WEB01 (CHG-" in ln]
        assert "was interrupted: its outcome is unknown" in line, line
        assert "reconciler" in line and "do not run it again" in line, line
        assert "checkpoint-bot change show CHG-0002" in line, line

        shown_wave = _cli(tmp_path, "batch", "show", "BAT-1")
        assert shown_wave.stdout.startswith(
            "BAT-0001: interrupted — 1 of 2 done, 1 outcome unknown\n"
        ), shown_wave.stdout
        _no_failure_said(shown_wave.stdout)
        as_json = json.loads(_cli(tmp_path, "batch", "show", "BAT-1", "--json").stdout)
        assert (as_json["state"], as_json["progress"]) == (
            "interrupted",
            "1 of 2 done, 1 outcome unknown",
        )
        listed = _cli(tmp_path, "batch", "list").stdout
        assert "interrupted" in listed and "1 outcome unknown" in listed, listed

        # The host answers again: the reconciler finds the checkpoint taken.
        fleet.server("HV03").faults = Faults()
        assert _cli(tmp_path, "reconcile").returncode == 0
        after = _cli(tmp_path, "batch", "show", "BAT-1")
    assert after.stdout.startswith("BAT-0001: active — 2 of 2 done\n"), after.stdout


def test_a_keep_and_merge_all_with_a_member_the_host_dropped_exits_4(tmp_path: Path) -> None:
    with emulated_estate(tmp_path, HYPERV, extra=EXTRA, env=ENV) as fleet:
        taken = _cli(tmp_path, "checkpoint", "create", "APP01", "STG-WEB01", "-r", "x", "--yes")
        assert taken.returncode == 0, taken.stdout + taken.stderr
        fleet.server("HV03").faults = Faults(late={"Remove-VMSnapshot": LATE})
        merged = _cli(tmp_path, "batch", "merge", "BAT-1", "--yes")
        said = merged.stdout + merged.stderr
        assert merged.returncode == 4, said
        _no_failure_said(said)
        assert "BAT-0001: interrupted — 1 of 2 merged, 1 outcome unknown" in merged.stdout, said
        assert "STG-WEB01 (CHG-0002) was interrupted: its outcome is unknown" in said


def test_approving_a_wave_whose_member_the_host_dropped_exits_4(tmp_path: Path) -> None:
    """WEB01 is production: the wave's rollback waits for an approver, and
    its restore is the one the host drops."""
    with emulated_estate(tmp_path, HYPERV, extra=EXTRA, env=ENV) as fleet:
        taken = _cli(tmp_path, "checkpoint", "create", "WEB01", "STG-WEB01", "-r", "x", "--yes")
        assert taken.returncode == 0, taken.stdout + taken.stderr
        asked = _cli(tmp_path, "batch", "rollback", "BAT-1", "--yes")
        assert asked.returncode == 0 and "WAITING FOR APPROVAL" in asked.stdout, asked.stdout
        fleet.server("HV01").faults = Faults(late={"Restore-VMSnapshot": LATE})
        approved = _cli(tmp_path, "batch", "approve", "BAT-1", user="bob")
        said = approved.stdout + approved.stderr
        assert approved.returncode == 4, said
        _no_failure_said(said)
        assert "WEB01 (CHG-0001) was interrupted: its outcome is unknown" in said


def test_approving_one_change_whose_job_the_host_dropped_exits_4(tmp_path: Path) -> None:
    with emulated_estate(tmp_path, HYPERV, extra=EXTRA, env=ENV) as fleet:
        assert _cli(tmp_path, "checkpoint", "create", "WEB01", "-r", "x").returncode == 0
        asked = _cli(tmp_path, "checkpoint", "rollback", "CHG-1")
        assert asked.returncode == 0 and "WAITING FOR APPROVAL" in asked.stdout, asked.stdout
        fleet.server("HV01").faults = Faults(late={"Restore-VMSnapshot": LATE})
        approved = _cli(tmp_path, "change", "approve", "CHG-1", user="bob")
        # Was 1, "refused or failed": a script would ask for the rollback again.
        assert approved.returncode == 4, approved.stdout + approved.stderr
        assert "interrupted" in approved.stdout, approved.stdout


# -- the wave's words, from its members' states --------------------------------


def test_an_interrupted_member_is_its_own_part_not_a_failure() -> None:
    assert PART_OF[State.INTERRUPTED] is Part.UNKNOWN
    explorer = [State.ACTIVE] * 5 + [State.INTERRUPTED]
    assert batch_state(explorer) is BatchState.INTERRUPTED
    assert Tally.of(explorer).describe() == "5 of 6 done, 1 outcome unknown"
    # A member that did fail still fails the wave, and is said beside it.
    both = [State.ACTIVE, State.FAILED, State.INTERRUPTED]
    assert batch_state(both) is BatchState.INTERRUPTED
    assert Tally.of(both).describe() == "1 of 3 done, 1 failed, 1 outcome unknown"
    assert batch_state([State.ACTIVE, State.FAILED]) is BatchState.PARTLY_FAILED
    # Still on its way elsewhere: running wins, as for any member at work.
    assert batch_state([State.CREATING, State.INTERRUPTED]) is BatchState.RUNNING
    rolled = [State.ROLLED_BACK, State.INTERRUPTED, State.ACTIVE]
    assert Tally.of(rolled, Action.ROLLBACK).describe() == (
        "1 of 3 rolled back, 1 not rolled back, 1 outcome unknown"
    )


@given(st.lists(st.sampled_from(list(State)), max_size=40))
def test_a_wave_with_a_member_of_unknown_outcome_is_never_said_failed_for_it(
    states: list[State],
) -> None:
    """Whatever else the wave holds, an interrupted member is counted once,
    as unknown, and never makes the wave (partly) failed by itself."""
    unknown = states.count(State.INTERRUPTED)
    failed = states.count(State.FAILED)
    tally = Tally.of(states)
    words = tally.describe()
    assert tally.count(Part.UNKNOWN) == unknown
    assert (f"{unknown} outcome unknown" in words) == bool(unknown)
    assert (f"{failed} failed" in words) == bool(failed)
    # The same members, the interrupted ones left out: failed only if they were.
    without = [s for s in states if s is not State.INTERRUPTED]
    if batch_state(states) in (BatchState.FAILED, BatchState.PARTLY_FAILED):
        assert batch_state(without) in (BatchState.FAILED, BatchState.PARTLY_FAILED)
        assert not unknown


# -- the card and the end milestone in Slack ------------------------------------


def _member(i: int, state: str, note: str | None = None) -> MemberView:
    return MemberView(
        change=f"CHG-{i:04d}",
        vm_name=f"T1VM{i:02d}",
        host="HX01",
        state=state,
        checkpoint_type="production",
        taken_type="production" if state == "active" else None,
        checkpoint_id=None,
        change_id=i,
        note=note,
    )


def _view(members: list[MemberView], events: list[BatchEventView]) -> BatchView:
    return BatchView(
        id=3,
        ref="BAT-0003",
        requester="U0ALICE",
        reason="patch",
        checkpoint_type="production",
        ttl_seconds=86400,
        selection={},
        source="cli",
        created_at=T0,
        members=tuple(members),
        events=tuple(events),
    )


WHY = (
    "creating: outcome unknown (worker w1 stopped heartbeating; its claim lapsed); asking the host"
)


def _checked(payload: dict[str, Any]) -> str:
    assert block_kit_problems("payload", payload["blocks"], 50) == []
    assert 0 < len(payload["text"]) <= 300
    return shown(payload)


def test_the_card_says_the_member_is_being_checked_not_failed() -> None:
    members = [_member(i, "active") for i in range(3, 8)] + [_member(8, "interrupted", WHY)]
    view = _view(members, [])
    text = _checked(SlackRenderer(Renderer()).payload("batch_card", b=view))
    assert "BAT-0003 — interrupted" in text
    assert "5 of 6 done, 1 outcome unknown" in text
    assert "partly failed" not in text and "failed" not in text.replace(WHY, "")


def test_the_end_of_the_create_counts_an_interrupted_member_apart(engine: Engine) -> None:
    batch_id, m = _recorded_wave(engine, {"WEB01": "active", "WEB02": "interrupted"})
    with session_scope(engine) as s:
        batch_note(s, get_batch(s, batch_id), kind="members_recorded", actor="bot", now=T0,
                   message="2", details={"targets": [c.id for c in m.values()]})  # fmt: skip
    with session_scope(engine) as s:
        finish = finish_of(s, batch_id)
    assert finish is not None
    assert finish.failed == () and [vm for vm, _ in finish.unknown] == ["WEB02"]
    assert finish.message().startswith("1 of 2 taken, 1 outcome unknown: WEB02 — ")
    event = BatchEventView(
        4,
        T0 + timedelta(minutes=1),
        "bot",
        "create_finished",
        finish.message(),
        {"failed": {}, "unknown": dict(finish.unknown)},
    )
    view = _view([_member(1, "active"), _member(2, "interrupted", WHY)], [event])
    text = _checked(SlackRenderer(Renderer()).payload("batch_event", b=view, e=event))
    assert ":warning: *Checkpoints of the wave finished*" in text
    assert "1 outcome unknown" in text and "failed" not in text


def test_a_roll_back_all_counts_an_interruption_by_how_the_reconciler_settled_it(
    engine: Engine,
) -> None:
    """WEB01's restore was interrupted and the host had done it (reconciled
    rolled back): done, not failed. WEB02's was interrupted and had not
    (reconciled active): it was not rolled back, a failure of the action.
    APP01's is still unknown."""
    states = {"WEB01": "rolled_back", "WEB02": "active", "APP01": "interrupted"}
    batch_id, m = _recorded_wave(engine, states)
    with session_scope(engine) as s:
        batch_note(s, get_batch(s, batch_id), kind="rollback_started", actor="U0BOB", now=T0,
                   message="rollback of 3 members",
                   details={"targets": [c.id for c in m.values()]})  # fmt: skip
        for vm in m:
            note(s, get_change(s, m[vm].id or 0), kind="interrupt", actor="bot",
                 now=T0 + timedelta(minutes=1), message=f"{vm}: {WHY}")  # fmt: skip
    with session_scope(engine) as s:
        finish = finish_of(s, batch_id)
    assert finish is not None
    assert finish.done == ("WEB01",)
    assert [vm for vm, _ in finish.failed] == ["WEB02"]
    assert [vm for vm, _ in finish.unknown] == ["APP01"]
    assert finish.message().startswith(
        "1 of 3 rolled back, 1 failed: WEB02 — WEB02: creating: outcome unknown"
    )
