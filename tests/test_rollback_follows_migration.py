"""A rollback or a merge that races a live migration (over real WinRM).

The estate of tests/test_clusters.py: HV01 and HV02 are the nodes of
prod-cluster, served by the emulator over loopback from one host model, and
the model decides where a VM is (a live migration takes the VM and its
checkpoints to the other node). Seen by a tester: a rollback slow on HV01
(`slow=Restore-VMSnapshot`) whose VM was live-migrated to HV02 meanwhile
failed with "Unable to find a snapshot matching the given criteria." and
left the change `active`, the checkpoint still there on HV02. What must hold:

- the host work finds the VM where it is now (the same follow a create
  makes: a `moved` event, the change's host updated) and acts there once;
- it follows only when the old node positively said the VM is not there and
  nothing was done there; an answer that cannot say whether the restore ran
  before the VM left is an unknown outcome (`interrupted`), never a second
  restore elsewhere;
- a VM on no node is said to be not on HV01 any more, with where it was
  looked for, not "checkpoint not found";
- the CLI names the node the VM is on, and says it moved.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.changes.views import ChangeView
from bot.devtools.emulator import Faults
from bot.service import approve, merge, request_checkpoint, rollback, show_change
from tests.test_clusters import WEB01, Estate, _estate


@pytest.fixture
def estate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Estate]:
    yield from _estate(tmp_path, monkeypatch)


def _active_checkpoint(estate: Estate) -> ChangeView:
    """WEB01's checkpoint, taken on HV01."""
    asked = request_checkpoint(estate.ctx, "WEB01", reason="KB5044284", requester="alice")
    estate.run_jobs(asked.change.id)
    change = show_change(estate.ctx, asked.change.ref)
    assert (change.state, change.host) == ("active", "HV01")
    assert estate.checkpoints_on("HV01", WEB01) == [change.checkpoint_id]
    return change


def _ask_rollback(estate: Estate, change: ChangeView) -> None:
    waiting = rollback(estate.ctx, change.ref, requester="alice")
    assert waiting.waiting  # rolling back prod needs one approval
    approve(estate.ctx, change.ref, approver="bob")


def _hooked(
    estate: Estate,
    method: str,
    *,
    before: Callable[[], None] | None = None,
    after: Callable[[], None] | None = None,
) -> list[str]:
    """Where the host model really did `method` (restore_snapshot,
    remove_snapshot, get_vm): the emulator's log says what was asked, this
    what was done. The first time HV01's is reached, `before` runs just
    ahead of it (the VM leaves while the cmdlet is on its way there) and
    `after` right after it (the VM leaves once the work is done, before
    the reply). Only the timing is arranged: where the VM is, and what a
    node without it answers, is the model's and the emulator's own."""
    done: list[str] = []
    for name in ("HV01", "HV02"):
        host = estate.fleet.host(name)
        real = getattr(host, method)
        first = [name == "HV01"]

        def wrapped(
            *args: Any, _real: Any = real, _n: str = name, _first: list[bool] = first, **kw: Any
        ) -> Any:
            hooked, _first[0] = _first[0], False
            if hooked and before is not None:
                before()
            result = _real(*args, **kw)
            done.append(_n)
            if hooked and after is not None:
                after()
            return result

        setattr(host, method, wrapped)
    return done


def _to_hv02(estate: Estate) -> Callable[[], None]:
    """An administrator live-migrates WEB01 to HV02 (Move-ClusterVirtualMachineRole)."""
    return lambda: estate.migrate(WEB01, "HV01", "HV02")


def test_a_rollback_racing_a_live_migration_restores_once_on_the_new_node(
    estate: Estate,
) -> None:
    """The tester's case: Restore-VMSnapshot is slow on HV01, and WEB01 is
    live-migrated to HV02 before it gets to work."""
    change = _active_checkpoint(estate)
    restored = _hooked(estate, "restore_snapshot", before=_to_hv02(estate))
    _ask_rollback(estate, change)
    estate.fleet.server("HV01").faults = Faults(slow={"Restore-VMSnapshot": 1000})
    estate.run_jobs(change.id)

    after = show_change(estate.ctx, change.ref)
    assert (after.state, after.host) == ("rolled_back", "HV02"), after.last_error
    moved = [e for e in after.events if e.kind == "moved"]
    assert len(moved) == 1
    assert moved[0].message.startswith("WEB01 is now on HV02; it moved at or before ")
    assert moved[0].details["from"] == "HV01" and moved[0].details["to"] == "HV02"
    # HV01 was asked and did nothing (the checkpoint had left with its VM);
    # HV02 restored it, once.
    assert estate.served("Restore-VMSnapshot") == ["HV01", "HV02"]
    assert restored == ["HV02"]
    assert estate.checkpoints_on("HV02", WEB01) == [change.checkpoint_id]
    assert estate.checkpoints_on("HV01", WEB01) == []
    assert all("Unable to find a snapshot" not in e.message for e in after.events)
    assert estate.fleet.host("HV02").get_vm(WEB01).state.name == after.vm_state_after


def test_a_merge_racing_a_live_migration_merges_once_on_the_new_node(estate: Estate) -> None:
    change = _active_checkpoint(estate)
    removed = _hooked(estate, "remove_snapshot", before=_to_hv02(estate))
    merge(estate.ctx, change.ref, requester="alice")
    estate.run_jobs_while_time_passes(change.id)  # the host merges in the background

    after = show_change(estate.ctx, change.ref)
    assert (after.state, after.host) == ("merged", "HV02"), after.last_error
    assert [e.kind for e in after.events].count("moved") == 1
    assert estate.served("Remove-VMSnapshot") == ["HV01", "HV02"]
    assert removed == ["HV02"]
    assert estate.checkpoints_on("HV02", WEB01) == []
    assert estate.checkpoints_on("HV01", WEB01) == []


def test_a_merge_whose_vm_moves_while_its_disk_merges_is_watched_on_the_new_node(
    estate: Estate,
) -> None:
    """The checkpoint is removed on HV01; while its disk merges, WEB01 is
    live-migrated, merge and all (the job's next look at HV01 finds no VM).
    The job asks where it is now (only reads: asking again is safe) and
    waits for the merge there; it neither fails nor removes anything twice."""
    change = _active_checkpoint(estate)
    removed = _hooked(estate, "remove_snapshot")
    merge(estate.ctx, change.ref, requester="alice")
    merging_when_moved: list[bool] = []
    host = estate.fleet.host("HV01")
    real = host.get_vm

    def get_vm(vm_id: str) -> Any:
        # The first Get-VM on HV01 after the removal (the job's look at the
        # merge) finds the VM gone: it was live-migrated, merge and all.
        if removed and not merging_when_moved:
            merging_when_moved.append(real(vm_id).merging)
            estate.migrate(WEB01, "HV01", "HV02")
        return real(vm_id)

    host.get_vm = get_vm  # type: ignore[method-assign]
    worker = threading.Thread(target=estate.run_jobs, args=(change.id,))
    worker.start()
    deadline = datetime.now(UTC) + timedelta(seconds=20)
    while not merging_when_moved and datetime.now(UTC) < deadline:
        threading.Event().wait(0.02)  # the hosts' clock stands still: the merge goes on
    while worker.is_alive() and datetime.now(UTC) < deadline + timedelta(seconds=20):
        estate.clock.advance(timedelta(seconds=10))
        worker.join(0.05)
    assert not worker.is_alive()

    after = show_change(estate.ctx, change.ref)
    assert merging_when_moved == [True]
    assert (after.state, after.host) == ("merged", "HV02"), after.last_error
    assert [e.kind for e in after.events].count("moved") == 1
    assert estate.served("Remove-VMSnapshot") == ["HV01"]
    assert removed == ["HV01"]


def test_a_vm_that_left_for_no_node_is_said_to_be_gone_from_its_host_not_its_checkpoint(
    estate: Estate,
) -> None:
    """WEB01 is removed from HV01 while the restore is on its way there (and
    is on no other node): nothing was restored, and the change says where
    the VM was looked for."""
    change = _active_checkpoint(estate)
    restored = _hooked(
        estate, "restore_snapshot", before=lambda: estate.fleet.host("HV01").remove_vm(WEB01)
    )
    _ask_rollback(estate, change)
    estate.run_jobs(change.id)

    after = show_change(estate.ctx, change.ref)
    assert (after.state, after.host) == ("active", "HV01")
    assert restored == []
    assert estate.served("Restore-VMSnapshot") == ["HV01"]
    said = after.last_error or ""
    assert "WEB01 is not on HV01 any more" in said, said
    assert "not found on prod-cluster (asked HV01, HV02)" in said, said
    assert "nothing was restored" in said, said
    assert "Unable to find a snapshot" not in said


def test_a_restore_whose_answer_came_after_the_vm_left_is_never_run_again_elsewhere(
    estate: Estate,
) -> None:
    """Restore-VMSnapshot did its work on HV01; WEB01 was live-migrated
    before the reply read it back. That VM-not-found does not say the
    restore did not run: the outcome is unknown, and HV02 is never asked."""
    change = _active_checkpoint(estate)
    restored = _hooked(estate, "restore_snapshot", after=_to_hv02(estate))
    _ask_rollback(estate, change)
    estate.run_jobs(change.id)

    after = show_change(estate.ctx, change.ref)
    assert restored == ["HV01"]
    assert estate.served("Restore-VMSnapshot") == ["HV01"]  # never again on HV02
    assert after.state == "interrupted", after.last_error
    assert "outcome unknown" in (after.last_error or "")
    assert "WEB01 is not on HV01 any more" in (after.last_error or "")


# -- what the CLI says -----------------------------------------------------------------------


def test_the_cli_names_the_node_a_vm_moved_to_while_its_checkpoint_waited(
    estate: Estate, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """WEB01 was live-migrated while its checkpoint waited: the rollback's
    answer names HV02, where it runs, and says the VM moved (seen: "WAITING
    FOR APPROVAL — rollback WEB02 on HV02" while the VM was on HV01)."""
    change = _active_checkpoint(estate)
    estate.migrate(WEB01, "HV01", "HV02")
    capsys.readouterr()

    assert estate.cli("checkpoint", "rollback", change.ref) == 0
    said = capsys.readouterr()
    assert f"{change.ref}: WAITING FOR APPROVAL — rollback WEB01 on HV02" in said.out, said.out
    assert "on HV01" not in said.out
    assert f"{change.ref}: WEB01 is now on HV02 (its change last saw it on HV01)" in said.err

    monkeypatch.setenv("CHECKPOINT_BOT_USER", "bob")
    assert estate.cli("change", "approve", change.ref) == 0
    approved = capsys.readouterr()
    assert f"{change.ref}: rolled back — WEB01 on HV02" in approved.out, approved.out
    assert estate.served("Restore-VMSnapshot") == ["HV02"]


def test_the_cli_says_when_the_vm_moved_while_its_merge_ran(
    estate: Estate, capsys: pytest.CaptureFixture[str]
) -> None:
    """The merge's line says where it runs; the VM moves on the way: the
    terminal says it moved, and the summary names the node it was merged on."""
    change = _active_checkpoint(estate)
    removed = _hooked(estate, "remove_snapshot", before=_to_hv02(estate))
    capsys.readouterr()
    codes: list[int] = []
    cli = threading.Thread(
        target=lambda: codes.append(estate.cli("checkpoint", "merge", change.ref))
    )
    cli.start()
    deadline = datetime.now(UTC) + timedelta(seconds=40)
    while cli.is_alive() and datetime.now(UTC) < deadline:
        estate.clock.advance(timedelta(seconds=10))  # the host merges in the background
        cli.join(0.05)
    assert not cli.is_alive() and codes == [0]

    said = capsys.readouterr()
    assert f"{change.ref}: merge of WEB01 on HV01 is running…" in said.err
    assert f"{change.ref}: WEB01 is now on HV02; it moved at or before " in said.err, said.err
    assert "the change follows it from HV01" in said.err
    assert said.err.count(" is now on ") == 1
    assert f"{change.ref}: merged — WEB01 on HV02" in said.out, said.out
    assert estate.served("Remove-VMSnapshot") == ["HV01", "HV02"]
    assert removed == ["HV02"]
