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
from tests.cli_support import probe
from tests.helpers import broken_policy

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
    report = probe(PROBE, *args, cwd=cwd)
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


# What a context builds only when a command first uses it (bot.context `_Parts`).
BUILT_WHEN_USED = {
    "policies",
    "prometheus_client",
    "huey",
    "bot.service.deciding",
    "bot.service.execution",
    "bot.service.requests",
}


@pytest.mark.parametrize(
    "args",
    [("outbox", "--json"), ("change", "show", "CHG-0001", "--json"), ("audit", "export")],
    ids=" ".join,
)
def test_a_query_loads_no_policy_no_runner_and_no_metrics(
    args: tuple[str, ...], production_config: Path, tmp_path: Path
) -> None:
    code, modules = imported_by("--config", str(production_config), *args, cwd=tmp_path)
    # `change show` of a change that is not there: exit 1 after the lookup.
    assert code == (1 if "show" in args else 0)
    assert "bot.context" in modules  # the context was built, its parts were not
    assert not modules & BUILT_WHEN_USED, sorted(modules & BUILT_WHEN_USED)


def test_a_broken_policy_still_stops_every_command_that_decides(
    production_config: Path, tmp_path: Path
) -> None:
    """The policy is read when first used: a command that decides (a create)
    still fails on a broken one with one line and exit 2, before anything
    is recorded; the outbox, which needs no policy, still answers."""
    policy = broken_policy(tmp_path)
    production_config.write_text(
        production_config.read_text(encoding="utf-8") + f"policy: {policy}\n", encoding="utf-8"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CHECKPOINT_BOT_CONFIG": ""}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-c",
                "from bot.cli.main import run; run()",
                "--config",
                str(production_config),
                *args,
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=60,
            check=False,
        )

    create = cli("checkpoint", "create", "STG-WEB01", "--reason", "KB5044284", "--json")
    assert create.returncode == 2, create.stderr
    assert "no_such_rule" in create.stderr and "Traceback" not in create.stderr
    assert len(create.stderr.strip().splitlines()) == 1
    outbox = cli("outbox", "--json")
    assert outbox.returncode == 0, outbox.stderr
    assert json.loads(outbox.stdout) is not None
    audit = cli("audit", "export")
    assert audit.returncode == 0 and audit.stdout == "", audit.stderr


def test_the_outbox_maps_its_three_tables_and_reads_no_inventory(
    production_config: Path, tmp_path: Path
) -> None:
    """Each table costs about 3 ms to map at start-up (bot.store.tables):
    the outbox reads the job ledger, the Slack outbox and the changes
    waiting in it (which of them settled too long ago for a thread), and
    nothing reads the inventory."""
    code, modules = imported_by(
        "--config", str(production_config), "outbox", "--json", cwd=tmp_path
    )
    assert code == 0
    tables = {m for m in modules if m.startswith("bot.store.tables.")}
    assert tables == {
        "bot.store.tables.base",
        "bot.store.tables.changes",
        "bot.store.tables.jobs",
        "bot.store.tables.slack",
    }
    assert "bot.store.models" not in modules
    assert "bot.inventory" not in modules


def test_checkpoint_list_loads_neither_the_policy_nor_the_request_path(
    production_config: Path, tmp_path: Path
) -> None:
    """A listing shares its module with create, rollback and merge
    (bot.cli.finishing); it must not pay for their imports."""
    code, modules = imported_by(
        "--config", str(production_config), "checkpoint", "list", "--vm", "NOPE", cwd=tmp_path
    )
    assert code == 2  # the unknown VM, after the listing's own imports
    unused = {"policies", "dateutil", "bot.service.requests", "bot.service.deciding"}
    assert not modules & unused, sorted(modules & unused)


def test_a_command_that_hands_nothing_over_loads_no_socket_client(
    production_config: Path, tmp_path: Path
) -> None:
    code, modules = imported_by(
        "--config", str(production_config), "change", "show", "CHG-0001", cwd=tmp_path
    )
    assert code == 1
    assert "bot.cli.local_socket" not in modules
