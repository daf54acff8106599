"""`db status` "changes nothing" (its help): seen, run from a directory
that was not the deployment's, with a config that names no `workdir` or
`database_url`, it created var/checkpoint-bot.db there and said "no schema
yet; 'checkpoint-bot db upgrade' applies 17 migrations": followed, that
advice builds a second, empty record in the wrong place."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bot.inventory import demo_inventory_path
from tests.cli_support import run


def _config(place: Path) -> Path:
    place.mkdir()
    shutil.copy(demo_inventory_path(), place / "inventory.yaml")
    config = place / "bot.yaml"
    config.write_text("inventory: inventory.yaml\nhyperv: {backend: simulator}\n", encoding="utf-8")
    return config


def test_db_status_creates_no_record_and_says_where_it_looked(tmp_path: Path) -> None:
    config = _config(tmp_path / "srv")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    said = run(elsewhere, "-c", str(config), "db", "status")
    assert said.returncode == 1, said.stderr
    assert "no record there (the file does not exist yet)" in said.stdout
    assert "If this deployment's record is elsewhere, run from its directory" in said.stdout
    assert f"({elsewhere})" in said.stdout
    assert not (elsewhere / "var").exists()
    as_json = run(elsewhere, "-c", str(config), "db", "status", "--json")
    data = json.loads(as_json.stdout)
    assert data["state"] == "empty"
    assert data["missing_file"] == str(elsewhere / "var" / "checkpoint-bot.db")
    assert not (elsewhere / "var").exists()


def test_db_status_of_the_deployments_own_record(tmp_path: Path) -> None:
    config = _config(tmp_path / "srv")
    home = tmp_path / "srv"
    assert run(home, "-c", str(config), "db", "upgrade").returncode == 0
    said = run(home, "-c", str(config), "db", "status")
    assert said.returncode == 0 and "up to date" in said.stdout
    assert "elsewhere" not in said.stdout
