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
    # Rounded, half up, to the second unit: at most half an hour off (days and hours).
    assert abs(seconds - parse_duration(text).total_seconds()) <= 1800
    # Two adjacent units at most: never "33d 11s".
    units = [part[-1] for part in text.split()]
    order = "dhms"
    assert len(units) <= 2
    assert len(units) < 2 or order.index(units[1]) == order.index(units[0]) + 1


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (33 * 86400 + 11, "33d"),  # seen in Slack as "33d 11s"
        (2 * 3600 + 5 * 60 + 10, "2h 5m"),
        (2 * 3600 + 5 * 60 + 40, "2h 6m"),
        (3 * 86400 + 4 * 3600 + 59 * 60, "3d 5h"),
        (23 * 3600 + 59 * 60 + 40, "1d"),  # rounding carries into the unit above
        (3600 + 29, "1h"),
        (45 * 60, "45m"),
        (90, "1m 30s"),
        (12, "12s"),
        (-90, "-1m 30s"),
    ],
)
def test_a_duration_is_its_two_largest_units_rounded(seconds: int, shown: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == shown


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
