"""A command whose values may be written below zero, like `extend CHG-1 -1h`.

Click reads any word that starts with `-` as an option, so `-1h` would be
refused as "No such option '-1'", which names neither the value nor what
is wrong with it. Here such a word stays a value, and the command's own
check says what is wrong ("'-1h' is not more than zero", bot.durations).
"""

from __future__ import annotations

import re

import click

# A dash and a digit: no option of this CLI is named so (Click options
# start with a letter), so nothing a person meant as an option is moved.
_SIGNED = re.compile(r"^-\d")


def signed_last(args: list[str]) -> list[str]:
    """`args` with every word before `--` that starts with a dash and a digit
    moved behind a `--`, where Click takes it as a value. The other words
    keep their order, and so do the moved ones, so `CHG-1 -1h --json`
    still gives CHG-1 first and -1h second."""
    end = args.index("--") if "--" in args else len(args)
    before, after = args[:end], args[end + 1 :]
    signed = [word for word in before if _SIGNED.match(word)]
    if not signed:
        return list(args)
    kept = [word for word in before if not _SIGNED.match(word)]
    return [*kept, "--", *signed, *after]


class SignedArgsCommand(click.Command):
    """A `click.Command` that parses its arguments through `signed_last`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, signed_last(args))
