"""What the bot believes about what a host says: pure rules, written from
Microsoft's documentation of the Hyper-V module, not from the client.

- `Get-VMSnapshot` reads SnapshotType Standard for production and standard
  checkpoints alike; the module's SnapshotType numbering is Standard 0,
  Recovery 1, Planned 2, Missing 5, Replica 6, AppConsistentReplica 7,
  SyncedReplica 8.
- A production checkpoint holds no memory: its captured State reads Off.
- Production falls back to standard when the guest's VSS fails;
  ProductionOnly fails instead; a create never weakens the VM's setting.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.changes import State, still_wanted
from bot.hyperv.evidence import TakenKind, holds_memory, judge_listed, judge_taken
from bot.hyperv.types import Checkpoint, CheckpointType, SnapshotType, VMState
from bot.hyperv.winrm.mapping import checkpoint as map_checkpoint
from bot.service.execution import setting_for

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
VM = "aaaaaaaa-1111-4111-8111-11111111111b"


def _cp(
    snapshot: SnapshotType = SnapshotType.Standard, state: VMState | None = VMState.Off
) -> Checkpoint:
    return Checkpoint(
        id=str(uuid.uuid4()),
        vm_id=VM,
        vm_name="WEB01",
        host="HV01",
        name="CHG-0001 patch",
        parent_id=None,
        created_at=T0,
        snapshot_type=snapshot,
        captured_state=state,
    )


# -- SnapshotType as the module numbers it -------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Standard", SnapshotType.Standard),
        (0, SnapshotType.Standard),
        ("Planned", SnapshotType.Planned),
        (5, SnapshotType.Missing),
        ("Replica", SnapshotType.Replica),
        (6, SnapshotType.Replica),
        (7, SnapshotType.AppConsistentReplica),
        ("8", SnapshotType.SyncedReplica),
        # Not snapshot types in the module: shown as unknown, never guessed.
        (3, SnapshotType.Unknown),
        (4, SnapshotType.Unknown),
        ("Production", SnapshotType.Unknown),
        ("", SnapshotType.Unknown),
        (None, SnapshotType.Unknown),
    ],
)
def test_snapshot_type_is_read_by_name_or_by_the_modules_number(
    raw: object, expected: SnapshotType
) -> None:
    assert SnapshotType.read(raw) is expected


def test_a_mapped_vmsnapshot_keeps_its_captured_state_and_an_unknown_type() -> None:
    props = {
        "Id": str(uuid.uuid4()),
        "VMId": VM,
        "VMName": "WEB01",
        "Name": "x",
        "CreationTime": "2026-12-04T09:00:00Z",
        "SnapshotType": "Standard",
        "State": "Off",
    }
    found = map_checkpoint(props, "HV01")
    assert (found.snapshot_type, found.captured_state) == (SnapshotType.Standard, VMState.Off)
    odd = map_checkpoint({**props, "SnapshotType": 42, "State": None}, "HV01")
    assert (odd.snapshot_type, odd.captured_state) == (SnapshotType.Unknown, None)


# -- what was taken ---------------------------------------------------------------------------


def test_a_normal_production_checkpoint_is_production_with_no_warning() -> None:
    taken = judge_taken(_cp(), setting=CheckpointType.Production, vm_state=VMState.Running)
    assert (taken.kind, taken.fell_back) == (TakenKind.PRODUCTION, False)
    assert "no memory" in taken.evidence


def test_a_checkpoint_that_holds_memory_under_production_is_a_fallback() -> None:
    taken = judge_taken(
        _cp(state=VMState.Running), setting=CheckpointType.Production, vm_state=VMState.Running
    )
    assert (taken.kind, taken.fell_back) == (TakenKind.STANDARD, True)
    assert "fell back" in taken.evidence


def test_nothing_is_guessed_when_the_host_does_not_say() -> None:
    unsaid = judge_taken(_cp(state=None), setting=CheckpointType.Production, vm_state=None)
    assert unsaid.kind is TakenKind.UNKNOWN and not unsaid.fell_back
    odd = judge_taken(
        _cp(SnapshotType.Unknown), setting=CheckpointType.Production, vm_state=VMState.Running
    )
    assert odd.kind is TakenKind.UNKNOWN
    listed = judge_listed(_cp())
    # Off could be production, or any checkpoint of a VM that was off.
    assert listed.kind is TakenKind.UNKNOWN and "no memory" in listed.evidence


@given(
    st.sampled_from(list(SnapshotType)),
    st.one_of(st.none(), st.sampled_from(list(VMState))),
    st.one_of(st.none(), st.sampled_from(list(CheckpointType))),
    st.one_of(st.none(), st.sampled_from(list(VMState))),
)
def test_the_verdict_follows_the_evidence_alone(
    snapshot: SnapshotType,
    captured: VMState | None,
    setting: CheckpointType | None,
    before: VMState | None,
) -> None:
    checkpoint = _cp(snapshot, captured)
    taken = judge_taken(checkpoint, setting=setting, vm_state=before)
    memory = holds_memory(checkpoint)
    if snapshot is not SnapshotType.Standard:
        assert taken.kind is TakenKind.UNKNOWN
    if taken.kind is TakenKind.PRODUCTION:
        # Production only ever when the host says it holds no memory.
        assert memory is False and setting in (
            CheckpointType.Production,
            CheckpointType.ProductionOnly,
        )
    if taken.fell_back:
        assert taken.kind is TakenKind.STANDARD and memory is True
    if memory is None:
        assert taken.kind is not TakenKind.PRODUCTION and not taken.fell_back
    assert taken.evidence


# -- never weaken the VM's setting -------------------------------------------------------------

_ORDER = [CheckpointType.Standard, CheckpointType.Production, CheckpointType.ProductionOnly]


@given(
    st.sampled_from(["production", "production-only", "standard"]),
    st.sampled_from(list(CheckpointType)),
)
def test_a_create_only_ever_raises_the_checkpoint_type(asked: str, current: CheckpointType) -> None:
    used = setting_for(asked, current)
    if current is CheckpointType.Disabled:
        assert used is CheckpointType.Disabled
        return
    assert _ORDER.index(used) >= _ORDER.index(current)
    assert used in (current, {"production": CheckpointType.Production,
                              "production-only": CheckpointType.ProductionOnly,
                              "standard": CheckpointType.Standard}[asked])  # fmt: skip


def test_production_only_stays_production_only() -> None:
    assert setting_for("production", CheckpointType.ProductionOnly) is CheckpointType.ProductionOnly
    assert setting_for("standard", CheckpointType.Production) is CheckpointType.Production
    assert setting_for("production-only", CheckpointType.Production) is (
        CheckpointType.ProductionOnly
    )


# -- requests waiting for approvers -------------------------------------------------------------


def test_a_rollback_waiting_for_approval_is_pointless_once_a_merge_starts() -> None:
    assert still_wanted("rollback", State.ACTIVE)
    assert not still_wanted("rollback", State.MERGING)
    assert not still_wanted("rollback", State.MERGED)
    assert still_wanted("merge", State.ROLLED_BACK)
    assert not still_wanted("create", State.APPROVED)
    assert not any(still_wanted(a, State.VANISHED) for a in ("create", "rollback", "merge"))
