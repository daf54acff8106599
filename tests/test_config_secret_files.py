"""Slack secrets named as files in the config file (deploy/examples/config.yaml).

Seen by an on-call tester:
- `cd /tmp && checkpoint-bot -c /srv/bot/bot.yaml change list` read
  `slack.bot_token: {file: secrets/bot-token}` from /tmp/secrets, though the
  README and the example config say paths are relative to the config file
  (the database URL file was): a supervisor started elsewhere failed.
- A missing secret file made `worker` log a 40-line traceback and end
  "internal error (SecretError …)", exit 1; `change list` and others said
  "internal error" too. `serve` said it in one line, exit 2.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from bot.inventory import demo_inventory_path
from tests.cli_support import one_line_error, run


def _deployment(place: Path) -> Path:
    place.mkdir()
    shutil.copy(demo_inventory_path(), place / "inventory.yaml")
    config = place / "bot.yaml"
    config.write_text(
        "inventory: inventory.yaml\n"
        "hyperv: {backend: simulator}\n"
        "database_url: sqlite:///" + str(place / "bot.db") + "\n"
        "slack: {bot_token: {file: secrets/bot-token}}\n",
        encoding="utf-8",
    )
    return config


def test_a_slack_secret_file_is_read_relative_to_the_config_file(tmp_path: Path) -> None:
    config = _deployment(tmp_path / "srv")
    (tmp_path / "srv" / "secrets").mkdir()
    (tmp_path / "srv" / "secrets" / "bot-token").write_text("xoxb-test\n", encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert run(elsewhere, "-c", str(config), "db", "upgrade").returncode == 0
    listed = run(elsewhere, "-c", str(config), "change", "list")
    assert listed.returncode == 0, listed.stderr
    assert "cannot read" not in listed.stderr


def test_a_missing_secret_file_is_one_line_and_exit_2_for_every_command(tmp_path: Path) -> None:
    config = _deployment(tmp_path / "srv")
    assert run(tmp_path, "-c", str(config), "db", "upgrade").returncode == 0
    for args in (("change", "list"), ("outbox",), ("worker",)):
        done = run(tmp_path, "-c", str(config), *args)
        line = one_line_error(done)
        assert done.returncode == 2, (args, done.stderr)
        assert "slack.bot_token: cannot read" in line and "secrets/bot-token" in line
        assert "internal error" not in done.stderr and "Traceback" not in done.stderr
