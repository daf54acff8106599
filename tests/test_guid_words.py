"""One definition of a Hyper-V id's written forms (bot.domain): what
people, files and hosts write, and the one form the bot keeps."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain import canonical_guid, is_canonical_guid


@given(st.uuids(), st.booleans(), st.booleans(), st.sampled_from(["", " ", "\t"]))
def test_every_written_form_of_a_guid_is_kept_in_one_form(
    value: uuid.UUID, upper: bool, braces: bool, blank: str
) -> None:
    text = str(value).upper() if upper else str(value)
    text = "{" + text + "}" if braces else text
    kept = canonical_guid(f"{blank}{text}{blank}")
    assert kept == str(value)
    assert is_canonical_guid(kept)


@given(st.text(max_size=50))
def test_only_a_kept_guid_is_canonical(text: str) -> None:
    assert is_canonical_guid(text) == (canonical_guid(text) == text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "-" * 36,
        "3f2504e0-4f89-41d3-9a0c-0305e82c330",  # a digit short
        "3f2504e0-4f89-41d3-9a0c-0305e82c3301x",
        "3f2504e04f8941d39a0c0305e82c3301",  # format "N": not how PowerShell prints an Id
        "3f2504e0-4f89-41d3-9a0c-0305e82c3301\n; Remove-VM *",
        "g f2504e0-4f89-41d3-9a0c-0305e82c3301",
    ],
)
def test_what_is_not_a_guid_is_none(text: str) -> None:
    assert canonical_guid(text) is None
    assert not is_canonical_guid(text)


@pytest.mark.parametrize(
    "value", [None, 42, uuid.UUID(int=1), b"3f2504e0-4f89-41d3-9a0c-0305e82c3301"]
)
def test_only_text_can_be_canonical(value: object) -> None:
    assert not is_canonical_guid(value)
