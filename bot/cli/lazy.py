"""Commands loaded only when they run: every command of `checkpoint-bot`.

Click's documented pattern for lazily loaded subcommands (Click docs,
"Complex Applications" → "Lazily Loading Subcommands"): the group knows each
command's import path and one-line help, and imports the module only when
the command is invoked or its own `--help` is asked for. So `--help` and
`--version` import no command, a command imports only its own module, and
the rest of the CLI never imports the dev tools (nor psrpcore, which only
they need).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import click

from bot.devtools import DevtoolsMissing, require


@dataclass(frozen=True)
class LazyCommand:
    target: str  # "package.module:attribute"
    short_help: str  # the command's first sentence; shortened as Click shortens its own
    devtools: bool = False


class LazyGroup(click.Group):
    def __init__(self, *args: Any, lazy: Mapping[str, LazyCommand], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lazy = dict(lazy)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self._lazy])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = self._lazy.get(cmd_name)
        if spec is None:
            return super().get_command(ctx, cmd_name)
        if spec.devtools:
            try:
                require(f"'checkpoint-bot {cmd_name}'")
            except DevtoolsMissing as exc:
                raise click.ClickException(str(exc)) from None
        module_name, _, attribute = spec.target.partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{spec.target} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # The listing uses the declared one-line help, so `--help` imports nothing lazy.
        rows: list[tuple[str, str]] = []
        limit = formatter.width - 6 - max(len(n) for n in self.list_commands(ctx))
        for name in self.list_commands(ctx):
            spec = self._lazy.get(name)
            if spec is not None:
                # Shortened by Click's own rule, through a command that is only the line.
                line = click.Command(name, help=spec.short_help).get_short_help_str(limit)
                rows.append((name, line))
                continue
            command = super().get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
