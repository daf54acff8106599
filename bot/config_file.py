"""Which config file a process runs on: the one place that decides it.

A leaf (the standard library only), so the CLI can tell which bot a command
belongs to without loading the settings (bot.cli.local_socket), and the
settings (bot.config) read the same file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

CONFIG_ENV = "CHECKPOINT_BOT_CONFIG"


def chosen_config(config_path: Path | None, env: Mapping[str, str], cwd: Path) -> Path | None:
    """`--config`, else $CHECKPOINT_BOT_CONFIG, as an absolute path; None is demo mode."""
    if config_path is None and env.get(CONFIG_ENV):
        config_path = Path(env[CONFIG_ENV])
    if config_path is None:
        return None
    return (cwd / config_path).resolve()
