"""A long-running process says when a file it read at start changed under
it (bot.observe.stale_files): once in its log per change, and in the gauge
`checkpoint_bot_files_changed` at every scrape. What it decides on is not
changed here: it reads the files again only when it restarts."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bot.config import load_settings
from bot.observe.stale_files import FileWatch, files_read

NOW = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)


def gauge(watch: FileWatch) -> dict[str, float]:
    registry = CollectorRegistry()
    registry.register(watch)
    text = generate_latest(registry).decode()
    return {
        s.labels["file"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "checkpoint_bot_files_changed"
    }


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    inventory, policy = tmp_path / "inventory.yaml", tmp_path / "policy.yaml"
    inventory.write_text("hosts: []\n", encoding="utf-8")
    policy.write_text("rules: {}\n", encoding="utf-8")
    return inventory, policy


def test_a_change_is_logged_once_and_shown_until_the_file_is_as_read_again(
    files: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    inventory, policy = files
    read = os.stat(inventory)
    watch = FileWatch([inventory, policy])
    caplog.set_level(logging.INFO, logger="bot.observe.stale_files")
    watch.tick(NOW)
    assert watch.changed() == [] and caplog.records == []
    assert gauge(watch) == {str(inventory): 0.0, str(policy): 0.0}

    inventory.write_text("hosts: []\nvms: []\n", encoding="utf-8")
    watch.tick(NOW)
    watch.tick(NOW)  # the same change: said once
    [said] = caplog.records
    assert said.levelno == logging.WARNING
    assert said.getMessage().startswith(f"{inventory} changed since this process read it: ")
    assert "until it reloads (SIGHUP) or restarts" in said.getMessage()
    assert gauge(watch) == {str(inventory): 1.0, str(policy): 0.0}

    # Put back as it was (content and time): nothing is stale any more.
    inventory.write_text("hosts: []\n", encoding="utf-8")
    os.utime(inventory, ns=(read.st_atime_ns, read.st_mtime_ns))
    watch.tick(NOW)
    assert caplog.records[-1].getMessage() == f"{inventory} is again as this process read it"
    assert gauge(watch) == {str(inventory): 0.0, str(policy): 0.0}


def test_a_file_that_goes_away_or_comes_back_counts_as_changed(
    files: tuple[Path, Path],
) -> None:
    inventory, policy = files
    watch = FileWatch([inventory, policy])
    policy.unlink()
    assert watch.changed() == [policy]
    policy.write_text("rules: {}\n", encoding="utf-8")  # a new file: a new time
    os.utime(policy, ns=(0, 0))
    assert watch.changed() == [policy]


def test_the_files_read_are_the_config_the_inventory_and_every_policy_file(
    tmp_path: Path,
) -> None:
    (tmp_path / "inventory.yaml").write_text("hosts: []\nvms: []\n", encoding="utf-8")
    config = tmp_path / "bot.yaml"
    config.write_text(
        "inventory: inventory.yaml\npolicy: policy.yaml\nhyperv: {backend: simulator}\n",
        encoding="utf-8",
    )
    settings = load_settings(config, {}, tmp_path)
    assert files_read(settings) == [config, tmp_path / "inventory.yaml", tmp_path / "policy.yaml"]
