"""Values written below zero reach the command (bot/cli/signed_args.py)."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from bot.cli.signed_args import SignedArgsCommand, signed_last


@click.command(cls=SignedArgsCommand)
@click.argument("target")
@click.argument("by")
@click.option("--json", "as_json", is_flag=True)
def _extend(target: str, by: str, as_json: bool) -> None:
    click.echo(f"{target}|{by}|{as_json}")


@pytest.mark.parametrize(
    ("args", "seen"),
    [
        (["CHG-1", "-1h"], "CHG-1|-1h|False"),
        (["CHG-1", "-1h", "--json"], "CHG-1|-1h|True"),
        (["--json", "CHG-1", "-1h"], "CHG-1|-1h|True"),
        (["CHG-1", "24h"], "CHG-1|24h|False"),
        (["CHG-1", "--", "-1h"], "CHG-1|-1h|False"),
    ],
)
def test_a_negative_value_is_a_value(args: list[str], seen: str) -> None:
    result = CliRunner().invoke(_extend, args)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == seen


def test_a_mistyped_option_is_still_named() -> None:
    result = CliRunner().invoke(_extend, ["CHG-1", "24h", "--jsn"])
    assert result.exit_code == 2
    assert "No such option '--jsn'" in result.output and "Did you mean '--json'" in result.output


_WORDS = st.lists(
    st.sampled_from(["CHG-1", "24h", "-1h", "-2d", "--json", "-x", "--", "x", "-", "-0"]),
    max_size=8,
)


def _signed(word: str) -> bool:
    return word[:1] == "-" and word[1:2].isdigit()


@given(_WORDS)
def test_only_dash_digit_words_before_the_end_marker_move(args: list[str]) -> None:
    out = signed_last(args)
    end = args.index("--") if "--" in args else len(args)
    moved = [w for w in args[:end] if _signed(w)]
    if not moved:
        assert out == args
        return
    # The same words, with one `--` added when there was none.
    assert sorted(out) == sorted(args if "--" in args else [*args, "--"])
    marker = out.index("--")
    # Every option-like word stays before the marker, so Click still reads
    # it as an option; every moved word is after it, so Click reads a value.
    assert out[:marker] == [w for w in args[:end] if not _signed(w)]
    assert out[marker + 1 :] == [*moved, *args[end + 1 :]]
