"""A create's set-back of the VM's CheckpointType that the host refused
(`setting_restore_failed`) is tried again (2026-12-06: never; the VM kept
the raised setting until someone read the thread and set it by hand).

The reconciler (every bot and worker tick, `checkpoint-bot reconcile`) asks
for it as a job of its own, so it runs under the VM's lock like every host
operation on the VM. The job reads the setting first and sets it back only
if the host still has what the create left: a human's later choice is never
overwritten, and is recorded as left alone. Either way it is recorded, and
not asked again.

The hosts are the WinRM emulator over real WinRM (tests/test_setting_set_back.py
makes the host refuse the set-back); the reconciler's pass runs in a context
built from the same bot.yaml, its jobs inline (the real runner and ledger)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from bot.config import load_settings
from bot.context import AppContext, build_context
from bot.devtools.emulator import EmulatedFleet, Faults
from bot.devtools.hostmodel.enums import CheckpointType
from bot.service import Reconciler
from tests.cli_support import emulated_estate
from tests.helpers import run_inline
from tests.test_setting_set_back import (
    ENV,
    HOST,
    VM,
    _events,
    _host_type,
    _set_vm_sent,
    created_with_set_back_refused,
)


def _set_back_refused(cwd: Path, fleet: EmulatedFleet) -> None:
    """CHG-0001: STG-WEB01's production-only checkpoint, taken; the host
    refused the set-back (Set-VM hidden while Checkpoint-VM ran), so the VM
    is left at ProductionOnly. Then the host takes Set-VM again."""
    made = created_with_set_back_refused(cwd, fleet)
    assert made.returncode == 0, made.stdout + made.stderr
    assert any(e["kind"] == "setting_restore_failed" for e in _events(cwd, "CHG-1"))
    assert _host_type(fleet) == "ProductionOnly"
    fleet.server(HOST).faults = Faults()


@contextmanager
def _inline(cwd: Path) -> Iterator[AppContext]:
    settings = load_settings(cwd / "bot.yaml", ENV, cwd)
    ctx = build_context(settings, env=ENV, huey_kind="memory", after_delivery=run_inline)
    try:
        yield ctx
    finally:
        ctx.close()


def _set_backs(cwd: Path) -> list[tuple[str, str]]:
    return [
        (e["kind"], e["message"])
        for e in _events(cwd, "CHG-1")
        if e["kind"] in ("setting_restored", "setting_left")
    ]


def test_a_refused_set_back_is_done_by_the_reconciler_once(tmp_path: Path) -> None:
    with emulated_estate(tmp_path, env=ENV) as fleet:
        _set_back_refused(tmp_path, fleet)
        with _inline(tmp_path) as ctx:
            now = ctx.clock()
            Reconciler(ctx).run_pass(now)
            assert _host_type(fleet) == "Production"
            # Again in the same hour, and an hour later: nothing more is sent.
            Reconciler(ctx).run_pass(now)
            Reconciler(ctx).run_pass(now + timedelta(hours=1, minutes=1))
        sent = _set_vm_sent(fleet)
        said = _set_backs(tmp_path)
    # Raised, refused, and set back once on retry.
    assert sent == ["ProductionOnly", "Production", "Production"]
    assert said == [
        (
            "setting_restored",
            "CheckpointType set back from ProductionOnly to Production on retry (the set-back "
            "after the checkpoint had failed; the host still had what this change left)",
        )
    ]


def test_a_humans_later_setting_is_left_alone_and_recorded(tmp_path: Path) -> None:
    with emulated_estate(tmp_path, env=ENV) as fleet:
        _set_back_refused(tmp_path, fleet)
        vm = next(v for v in fleet.host(HOST).get_vms() if v.name == VM)
        # An admin chose Standard for it on the host meanwhile.
        fleet.host(HOST).set_vm(vm.vm_id, checkpoint_type=CheckpointType.Standard)
        before = len(_set_vm_sent(fleet))
        with _inline(tmp_path) as ctx:
            now = ctx.clock()
            Reconciler(ctx).run_pass(now)
            Reconciler(ctx).run_pass(now + timedelta(hours=2))
        assert len(_set_vm_sent(fleet)) == before  # read, never set
        assert _host_type(fleet) == "Standard"
        said = _set_backs(tmp_path)
    assert said == [
        (
            "setting_left",
            "CheckpointType not set back on retry: it is Standard now, set since by someone or "
            "something else, not the ProductionOnly this change left; left as it is",
        )
    ]


def test_a_retry_the_host_refuses_too_is_recorded_and_not_asked_again(tmp_path: Path) -> None:
    with emulated_estate(tmp_path, env=ENV) as fleet:
        _set_back_refused(tmp_path, fleet)
        fleet.server(HOST).faults = Faults(hidden=frozenset({"Set-VM"}))
        with _inline(tmp_path) as ctx:
            now = ctx.clock()
            Reconciler(ctx).run_pass(now)
            fleet.server(HOST).faults = Faults()
            Reconciler(ctx).run_pass(now + timedelta(hours=2))
        assert _host_type(fleet) == "ProductionOnly"
        said = _set_backs(tmp_path)
    [(kind, message)] = said
    assert kind == "setting_left"
    assert message.startswith(
        "CheckpointType not set back from ProductionOnly to Production: the retry's Set-VM "
        "failed or went unanswered ("
    )
    assert f"'checkpoint-bot checkpoint settings {VM} --type production -r" in message
