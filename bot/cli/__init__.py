"""The operator CLI, `checkpoint-bot`: the same service layer Slack uses."""

from bot.cli.main import cli, main

__all__ = ["cli", "main"]
