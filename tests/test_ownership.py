"""The adoption rule: a checkpoint is the change's own only with all of the
proof (its VM, this job's token, taken after the job started, owned by no
other change), and only when exactly one checkpoint has it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from bot.hyperv.types import Checkpoint, SnapshotType, VMState
from bot.service.ownership import (
    CLOCK_SKEW,
    NAME_LIMIT,
    candidates,
    checkpoint_name,
    mark,
    marked_ours,
    new_token,
    proven,
    ref_of,
    token_of,
)

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
VM = "aaaaaaaa-1111-4111-8111-11111111111b"
OTHER_VM = "bbbbbbbb-2222-4222-8222-22222222222c"
REF = "CHG-0011"
TOKEN = "3f9a2c71"

tokens = st.text(alphabet="0123456789abcdef", min_size=8, max_size=8)


def _cp(name: str, at: datetime, vm: str = VM) -> Checkpoint:
    return Checkpoint(
        id=str(uuid.uuid4()),
        vm_id=vm,
        vm_name="WEB01",
        host="HV01",
        name=name,
        parent_id=None,
        created_at=at,
        snapshot_type=SnapshotType.Standard,
        captured_state=VMState.Off,
    )


def test_the_name_carries_the_ref_and_the_token_and_stays_within_the_rules() -> None:
    name = checkpoint_name(REF, TOKEN, "KB5044284\npatch\t[*?] " + "x" * 300)
    assert name.startswith("CHG-0011 (cb-3f9a2c71) KB5044284 patch")
    assert len(name) <= NAME_LIMIT
    assert not any(ch in name for ch in "\n\t*?[]")
    assert (ref_of(name), token_of(name)) == (REF, TOKEN)
    assert len(new_token()) == 8 and new_token() != new_token()


def test_a_hand_made_checkpoint_named_like_the_change_is_not_adopted() -> None:
    fake = _cp("CHG-0011 before the patch", T0 - timedelta(minutes=30))
    found = candidates(REF, TOKEN, VM, [fake], job_started=T0, owned_elsewhere=set())
    assert proven(found) is None and "carries no token" in found[0].why


def test_a_second_deployments_checkpoint_with_the_same_ref_is_not_adopted() -> None:
    theirs = _cp(checkpoint_name(REF, "deadbeef", "their patch"), T0 + timedelta(seconds=5))
    found = candidates(REF, TOKEN, VM, [theirs], job_started=T0, owned_elsewhere=set())
    assert proven(found) is None and "another deployment" in found[0].why


def test_the_real_one_is_adopted_and_a_twin_makes_it_a_question() -> None:
    real = _cp(checkpoint_name(REF, TOKEN, "patch"), T0 + timedelta(seconds=3))
    assert proven(candidates(REF, TOKEN, VM, [real], job_started=T0, owned_elsewhere=set()))
    twin = _cp(checkpoint_name(REF, TOKEN, "patch"), T0 + timedelta(seconds=4))
    both = candidates(REF, TOKEN, VM, [real, twin], job_started=T0, owned_elsewhere=set())
    assert proven(both) is None and all(c.proven for c in both)


def test_a_matching_name_taken_before_the_job_started_is_not_adopted() -> None:
    early = _cp(checkpoint_name(REF, TOKEN, "patch"), T0 - CLOCK_SKEW - timedelta(seconds=1))
    found = candidates(REF, TOKEN, VM, [early], job_started=T0, owned_elsewhere=set())
    assert proven(found) is None and "before this job started" in found[0].why


@given(
    names=st.lists(
        st.tuples(
            st.sampled_from(["CHG-0011", "CHG-0012", "chg-0011", ""]),
            st.one_of(st.none(), tokens, st.just(TOKEN)),
            st.text(max_size=30),
        ),
        max_size=6,
    ),
    offsets=st.lists(st.integers(-3600, 3600), min_size=6, max_size=6),
    vms=st.lists(st.booleans(), min_size=6, max_size=6),
    owned=st.lists(st.booleans(), min_size=6, max_size=6),
    skew=st.integers(0, 600),
    job_token=st.one_of(st.none(), st.just(TOKEN), tokens),
)
def test_adoption_needs_all_of_the_proof(
    names: list[tuple[str, str | None, str]],
    offsets: list[int],
    vms: list[bool],
    owned: list[bool],
    skew: int,
    job_token: str | None,
) -> None:
    checkpoints = []
    for (ref, token, text), offset, same_vm in zip(names, offsets, vms, strict=False):
        name = checkpoint_name(ref, token, text) if token else f"{ref} {text}"
        checkpoints.append(_cp(name, T0 + timedelta(seconds=offset), VM if same_vm else OTHER_VM))
    elsewhere = {c.id for c, o in zip(checkpoints, owned, strict=False) if o}
    bound = timedelta(seconds=skew)
    found = candidates(
        REF, job_token, VM, checkpoints, job_started=T0, owned_elsewhere=elsewhere, skew=bound
    )
    adopted = proven(found)
    qualifying = [
        c
        for c in checkpoints
        if job_token is not None
        and c.vm_id == VM
        and token_of(c.name) == job_token
        and c.created_at >= T0 - bound
        and c.id not in elsewhere
    ]
    # Adopted exactly when one checkpoint has every piece of the proof.
    assert (adopted is not None) == (len(qualifying) == 1)
    if adopted is not None:
        assert adopted is qualifying[0]
    for candidate in found:
        assert candidate.why
        assert candidate.proven == (candidate.checkpoint in qualifying)


KEY = "ab" * 32


def test_a_marked_name_verifies_only_under_its_records_key_and_vm() -> None:
    marked = mark(KEY, TOKEN, REF, VM)
    name = checkpoint_name(REF, TOKEN, "KB5044284 patch", marked)
    assert name == f"{REF} (cb-{TOKEN}-{marked}) KB5044284 patch"
    assert token_of(name) == TOKEN and ref_of(name) == REF
    assert marked_ours(KEY, _cp(name, T0))
    # Another record's key, another VM, another ref, a mark changed by one digit.
    assert not marked_ours("cd" * 32, _cp(name, T0))
    assert not marked_ours(KEY, _cp(name, T0, vm=OTHER_VM))
    assert not marked_ours(KEY, _cp(name.replace(REF, "CHG-0012", 1), T0))
    flipped = marked[:-1] + ("0" if marked[-1] != "0" else "1")
    assert not marked_ours(KEY, _cp(name.replace(marked, flipped), T0))
    # An unmarked name (before the mark), or no key: nothing proven by a mark.
    assert not marked_ours(KEY, _cp(checkpoint_name(REF, TOKEN, "x"), T0))
    assert not marked_ours(None, _cp(name, T0))
    # The VM's id as the host spells it (Hyper-V answers either case).
    assert marked_ours(KEY, _cp(name, T0, vm=VM.upper()))


@given(token=tokens, reason=st.text(max_size=300))
def test_a_marked_name_stays_within_the_rules(token: str, reason: str) -> None:
    name = checkpoint_name(REF, token, reason, mark(KEY, token, REF, VM))
    assert len(name) <= NAME_LIMIT and token_of(name) == token
    assert marked_ours(KEY, _cp(name, T0))
