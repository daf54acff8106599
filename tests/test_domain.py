"""The domain's shared words: one definition each (bot.domain)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.domain import SETTING_WORDS, ChangeRef, CheckpointKind, single_vm
from bot.hyperv.types import CheckpointType


@given(st.integers(min_value=1, max_value=999_999_999))
def test_a_ref_reads_back_as_itself_however_it_is_typed(change_id: int) -> None:
    ref = ChangeRef(change_id)
    for typed in (str(ref), str(ref).lower(), f"CHG{change_id}", f"  chg-{change_id} "):
        assert ChangeRef.parse(typed) == ref
    assert ChangeRef.leading(f"{ref} (cb-0a1b2c3d) patch") == ref


@given(st.text(max_size=30))
def test_text_that_is_not_a_ref_is_none(text: str) -> None:
    parsed = ChangeRef.parse(text)
    if parsed is not None:
        assert text.strip().upper().replace("-", "").startswith("CHG")
        assert str(parsed).startswith("CHG-") and parsed.id == int(text.strip()[3:].lstrip("-"))


def test_refs_outside_the_format_are_refused() -> None:
    for text in ("CHG-", "CHG-1234567890", "CHG--1", "CHG-1a", "XCHG-1", "CHG-١٢"):
        assert ChangeRef.parse(text) is None, text
    # A checkpoint name starts with the ref the bot wrote, upper case with the dash.
    assert ChangeRef.leading("chg-0042 x") is None
    assert ChangeRef.leading("CHG0042 x") is None


def test_every_kind_names_a_hyperv_setting_in_order_of_strictness() -> None:
    assert [CheckpointKind.parse(k) for k in (" Production ", "PRODUCTION-ONLY", "standard")] == [
        CheckpointKind.PRODUCTION,
        CheckpointKind.PRODUCTION_ONLY,
        CheckpointKind.STANDARD,
    ]
    assert CheckpointKind.parse("disabled") is None
    settings = [CheckpointType.for_word(w) for w in SETTING_WORDS]
    assert settings == [
        CheckpointType.Production,
        CheckpointType.ProductionOnly,
        CheckpointType.Standard,
        CheckpointType.Disabled,
    ]
    strictness = [CheckpointType.for_word(k).strictness for k in CheckpointKind]
    assert strictness == [1, 2, 0] and CheckpointType.Disabled.strictness is None


def test_one_vm_by_name_and_nothing_else_is_a_single_checkpoint() -> None:
    assert single_vm(["WEB01"]) == "WEB01"
    assert single_vm([" WEB01 ", "  "]) == "WEB01"  # blank words count for nothing
    assert single_vm(["WEB01"], adders=["", " "]) == "WEB01"
    # Anything more is a patch wave (docs/batches.md), even of one VM.
    assert single_vm(["WEB01", "WEB02"]) is None
    assert single_vm(["WEB01"], tags=["env=prod"]) is None
    assert single_vm(["WEB01"], tags=[" "]) is None  # the wave says what is wrong with it
    assert single_vm(["WEB01"], adders=["web-tier"]) is None
    assert single_vm([], adders=["HV01"]) is None
    assert single_vm([]) is None


names_st = st.lists(st.sampled_from(["WEB01", "web02", " ", "", " DC01 "]), max_size=4)


@given(names=names_st, tags=st.lists(st.sampled_from(["env=prod", ""]), max_size=2),
       adders=st.lists(st.sampled_from(["web-tier", " ", "HV01"]), max_size=2))  # fmt: skip
def test_a_single_is_a_named_vm_and_only_when_nothing_else_is_asked(
    names: list[str], tags: list[str], adders: list[str]
) -> None:
    vm = single_vm(names, tags=tags, adders=adders)
    if vm is not None:
        assert vm in [n.strip() for n in names]
        assert not tags and not any(a.strip() for a in adders)
    elif [n for n in names if n.strip()] and not tags and not any(a.strip() for a in adders):
        assert len([n for n in names if n.strip()]) > 1
