from __future__ import annotations

import contextlib
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.durations import DurationError, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90m", timedelta(minutes=90)),
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
        ("1d12h", timedelta(hours=36)),
        (" 2W ", timedelta(weeks=2)),
        ("1h 30m", timedelta(minutes=90)),
    ],
)
def test_parses(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "24", "h", "24x", "1.5h", "24h;rm", "1e3s", "--1h"])
def test_rejects_with_a_hint(text: str) -> None:
    with pytest.raises(DurationError, match="like 90m, 24h, 7d") as raised:
        parse_duration(text)
    assert not raised.value.not_positive


@pytest.mark.parametrize("text", ["0h", "0d0m", "-1h", " -2D ", "- 1d12h"])
def test_zero_or_less_is_told_as_such(text: str) -> None:
    """A value with a number and a unit is a duration; what is wrong with
    it is its sign, and the message says that rather than asking for a unit."""
    with pytest.raises(
        DurationError, match="is not more than zero: a duration is positive"
    ) as raised:
        parse_duration(text)
    assert raised.value.not_positive and not raised.value.too_long


@given(st.text(max_size=20))
def test_never_raises_anything_else(text: str) -> None:
    with contextlib.suppress(DurationError):
        assert parse_duration(text).total_seconds() > 0


@given(st.integers(min_value=1, max_value=10**7))
def test_format_round_trips_to_two_units(seconds: int) -> None:
    text = format_duration(timedelta(seconds=seconds))
    assert 0 <= seconds - parse_duration(text).total_seconds() < 86400


@pytest.mark.parametrize(
    ("text", "meant"),
    [("24", "24h"), ("1h30", "1h30m"), ("2d 4", "2d4h"), ("1w2", "1w2d"), ("10m5", "10m5s")],
)
def test_a_number_missing_its_unit_is_told_what_was_likely_meant(text: str, meant: str) -> None:
    """Seen in Slack: `--ttl 1h30` said only "is not a duration: use a number
    and a unit", when the fix is one letter."""
    with pytest.raises(DurationError, match=f"did you mean {meant}\\?"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["0", "00"])
def test_zero_is_not_more_than_zero(text: str) -> None:
    """`--ttl 0` is a number: what is wrong with it is that it is not positive."""
    with pytest.raises(DurationError, match="is not more than zero"):
        parse_duration(text)
