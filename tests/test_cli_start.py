"""The CLI loads a command only when it runs (bot.cli.lazy): `--version` and
`--help` import none of the heavy libraries, and the one-line help the
group declares for each lazy command is the command's own. Not timed:
bench/cli_start.py measures; this checks what is imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from bot.cli.groups import CHANGE_COMMANDS, CHECKPOINT_COMMANDS, change, checkpoint
from bot.cli.lazy import LazyCommand
from bot.cli.main import COMMANDS, cli

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("sqlmodel", "sqlalchemy", "pypsrp", "slack_bolt", "slack_sdk", "huey", "jinja2", "alembic")

PROBE = """
import json, sys
from bot.cli.main import main
code = main(sys.argv[1:])
sys.stdout.flush()
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def imported_by(*args: str, cwd: Path) -> tuple[int, set[str]]:
    """The exit code, and every module the command imported with each of its
    parents (`bot.service.queries` also counts as `bot.service` and `bot`)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CHECKPOINT_BOT_CONFIG": ""}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=60,
        check=False,
    )
    report = json.loads(done.stderr.strip().splitlines()[-1])
    names: set[str] = set()
    for name in report["modules"]:
        parts = name.split(".")
        names.update(".".join(parts[:n]) for n in range(1, len(parts) + 1))
    return report["code"], names


@pytest.mark.parametrize("args", [("--version",), ("--help",)])
def test_version_and_help_import_no_heavy_library(args: tuple[str, ...], tmp_path: Path) -> None:
    code, modules = imported_by(*args, cwd=tmp_path)
    assert code == 0
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))
    assert not modules & {"bot.service", "bot.context", "bot.config", "templates"}


# A group's --help lists its commands, a command's --help its options: they
# load the definitions (Click and the domain's words their choices name),
# never the service, the config, the database layer or the templates.
GROUP_HELPS = [
    (name, "--help")
    for name, spec in COMMANDS.items()
    if not spec.devtools  # the dev tools' own CLIs (`demo`, `emulator`)
] + [
    ("checkpoint", "list", "--help"),
    ("change", "show", "--help"),
    ("inventory", "show", "--help"),
]
NOT_FOR_HELP = {"bot.service", "bot.context", "bot.config", "bot.store", "templates", "policies"}


@pytest.mark.parametrize("args", GROUP_HELPS, ids=" ".join)
def test_help_imports_no_service_and_no_heavy_library(
    args: tuple[str, ...], tmp_path: Path
) -> None:
    code, modules = imported_by(*args, cwd=tmp_path)
    assert code == 0
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))
    assert not modules & {"pydantic", "yaml", "prometheus_client"}, sorted(
        modules & {"pydantic", "yaml", "prometheus_client"}
    )
    assert not modules & NOT_FOR_HELP, sorted(modules & NOT_FOR_HELP)
    if args in (("checkpoint", "--help"), ("change", "--help")):
        # Their lines are declared (bot.cli.groups): no command is loaded.
        assert "bot.cli.checkpoint_cmds" not in modules


def test_a_lazy_command_loads_only_its_own_module(tmp_path: Path) -> None:
    code, modules = imported_by("policy", "--help", cwd=tmp_path)
    assert code == 0
    assert "pypsrp" not in modules and "slack_bolt" not in modules


@pytest.mark.parametrize(
    ("group", "declared"),
    [(cli, COMMANDS), (checkpoint, CHECKPOINT_COMMANDS), (change, CHANGE_COMMANDS)],
    ids=["checkpoint-bot", "checkpoint", "change"],
)
def test_the_declared_help_is_each_commands_own(
    group: click.Group, declared: dict[str, LazyCommand]
) -> None:
    ctx = click.Context(group)
    for name, spec in declared.items():
        command = group.get_command(ctx, name)
        assert command is not None, name
        assert command.name == name
        assert spec.short_help == command.get_short_help_str(1000), name


def test_help_lists_every_command_with_its_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "from bot.cli.main import run; run()", "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    for name, spec in COMMANDS.items():
        assert f"{name}  " in result.stdout
        assert spec.short_help.split(":")[0].split("(")[0].strip()[:30] in result.stdout


@pytest.fixture
def production_config(tmp_path: Path) -> Path:
    """A deployment's config (WinRM hosts, a migrated SQLite database): not
    demo mode, which migrates (Alembic) and models its hosts on every run."""
    from bot.inventory import demo_inventory_path

    config = tmp_path / "bot.yaml"
    config.write_text(
        f"inventory: {demo_inventory_path()}\ndatabase_url: sqlite:///{tmp_path / 'bot.db'}\n"
        "hyperv:\n  backend: winrm\n",
        encoding="utf-8",
    )
    code, _ = imported_by("--config", str(config), "db", "upgrade", cwd=tmp_path)
    assert code == 0
    return config


def test_inventory_show_loads_no_use_case_it_does_not_call(
    production_config: Path, tmp_path: Path
) -> None:
    code, modules = imported_by(
        "--config", str(production_config), "inventory", "show", "--json", cwd=tmp_path
    )
    assert code == 0
    # It reads the inventory and the sightings: not the policy, the context
    # or the rest of the service (bot.service loads each use case on first use).
    unused = {"policies", "bot.context", "bot.service.requests", "bot.service.withdrawal"}
    assert not modules & unused, sorted(modules & unused)
    assert not modules & {"pypsrp", "jinja2", "alembic"}


def test_a_sqlite_query_does_not_load_the_postgresql_dialect(
    production_config: Path, tmp_path: Path
) -> None:
    code, modules = imported_by(
        "--config", str(production_config), "outbox", "--json", cwd=tmp_path
    )
    assert code == 0
    assert "sqlalchemy.dialects.sqlite" in modules
    assert "sqlalchemy.dialects.postgresql" not in modules
    assert not modules & {"pypsrp", "jinja2", "alembic"}
