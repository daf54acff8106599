"""Absurd durations are refused where they are parsed, with the maximum in
the message: a TTL past PostgreSQL's INTEGER column, an extension past year
9999, a text long enough to overflow `timedelta` (issue #13, item 6). The
CLI and Slack are tested on SQLite and on PostgreSQL."""

from __future__ import annotations

import contextlib
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.durations import MAX_DURATION, DurationError, parse_duration
from tests.cli_support import invoke, one_line_error
from tests.slack_support import running_bot
from tests.test_slack_http import ACK_LIMIT, answer, texts, wait_state

MAXIMUM = "at most 366d (a year)"
ABSURD = ["999999h", "999999w", "366d1s", "53w", "999999w" * 12, "9" * 200 + "s"]


@pytest.mark.parametrize("text", ABSURD)
def test_absurd_durations_are_refused_naming_the_maximum(text: str) -> None:
    with pytest.raises(DurationError) as caught:
        parse_duration(text)
    assert caught.value.too_long and MAXIMUM in str(caught.value)
    assert len(str(caught.value)) < 160  # the input is shortened in the message


def test_the_maximum_itself_is_a_duration() -> None:
    assert parse_duration("366d") == MAX_DURATION == parse_duration("52w2d")


_DURATION_CHARS = st.sampled_from("0123456789smhdw ")


@given(st.text(alphabet=_DURATION_CHARS, max_size=400) | st.text(max_size=400))
def test_any_text_is_a_bounded_duration_or_a_duration_error(text: str) -> None:
    with contextlib.suppress(DurationError):
        parsed = parse_duration(text)
        assert timedelta(0) < parsed <= MAX_DURATION


@given(st.integers(min_value=1, max_value=999_999), st.sampled_from("smhdw"))
def test_a_number_and_a_unit_is_in_range_or_too_long(number: int, unit: str) -> None:
    seconds = number * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]
    try:
        parsed = parse_duration(f"{number}{unit}")
    except DurationError as exc:
        assert exc.too_long and seconds > MAX_DURATION.total_seconds()
    else:
        assert parsed.total_seconds() == seconds


# --- the CLI: one line, exit code 2, nothing recorded, on both databases ---------------


@pytest.fixture
def database_env(db_url: str) -> dict[str, str]:
    return {"DATABASE_URL": db_url}


def test_cli_refuses_an_absurd_ttl_and_extension(
    tmp_path: Path, database_env: dict[str, str]
) -> None:
    ttl = invoke(
        tmp_path, "checkpoint", "create", "WEB01", "--reason", "x", "--ttl", "999999h",
        env=database_env,
    )  # fmt: skip
    # A TTL is told the bound that matters for its VM: the policy's.
    assert ttl.returncode == 2
    assert "'999999h' is too long: WEB01's checkpoints live at most 7d (the policy)" in (
        one_line_error(ttl)
    )
    listed = invoke(tmp_path, "change", "list", "--json", env=database_env)
    assert '"CHG-' not in listed.stdout  # nothing recorded

    created = invoke(tmp_path, "checkpoint", "create", "WEB01", "--reason", "x", env=database_env)
    assert created.returncode == 0, created.stderr
    for absurd in ("999999w", "999999w" * 12):
        extended = invoke(tmp_path, "checkpoint", "extend", "CHG-1", absurd, env=database_env)
        assert extended.returncode == 2 and MAXIMUM in one_line_error(extended)
    fine = invoke(tmp_path, "checkpoint", "extend", "CHG-1", "24h", env=database_env)
    assert fine.returncode == 0, fine.stderr


# --- Slack: the slash command answers with the maximum, on both databases -------------


def test_slack_refuses_an_absurd_ttl_and_extension(tmp_path: Path, db_url: str) -> None:
    with running_bot(tmp_path, database_url=db_url) as bot:
        reply, key = bot.slack.command("create WEB01 --reason patch --ttl 999999h")
        assert reply.status == 200 and reply.seconds < ACK_LIMIT
        said = texts(answer(bot, key))
        assert MAXIMUM in said and "Something went wrong" not in said

        reply, key = bot.slack.command("create WEB01 --reason patch")
        answer(bot, key)
        active = wait_state(bot, "WEB01", "active")
        for absurd in ("999999w", "9" * 80 + "w"):
            reply, key = bot.slack.command(f"extend {active.ref} {absurd}")
            said = texts(answer(bot, key))
            assert MAXIMUM in said and "Something went wrong" not in said
        assert wait_state(bot, "WEB01", "active").expires_at == active.expires_at
