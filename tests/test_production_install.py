"""A production install (no `demo` extra) runs the product without the dev
tools: it never imports them nor psrpcore, and its schema has no tables of
theirs. The dev tools' commands and the simulator backend say what to
install instead of failing with a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect

from bot.devtools.emulator import EmulatedFleet, EmulatorLog
from bot.devtools.emulator.pointing import EMULATOR_PASSWORD_ENV, emulated_inventory
from bot.devtools.hostmodel import InMemoryHostStateStore, demo_hosts_path, load_host_model
from bot.inventory import demo_inventory_path, load_inventory
from bot.store.db import make_engine

ROOT = Path(__file__).resolve().parents[1]
SUPPORT = Path(__file__).resolve().parent / "production_support"


def test_psrpcore_is_only_a_demo_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = [d.split(">")[0].split("[")[0].strip() for d in project["dependencies"]]
    assert "psrpcore" not in names
    assert any(d.startswith("psrpcore") for d in project["optional-dependencies"]["demo"])


class Production:
    """The CLI in a child interpreter without psrpcore, on a WinRM config
    whose inventory points at emulated hosts served by this test process."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.report = workdir / "imports.txt"

    def run(self, *args: str, config: bool = True) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.workdir),
            "PYTHONPATH": f"{SUPPORT}{os.pathsep}{ROOT}",
            "IMPORT_REPORT": str(self.report),
            EMULATOR_PASSWORD_ENV: "Passw0rd!",
            "CHECKPOINT_BOT_USER": "alice",
        }
        argv = [sys.executable, "-c", "from bot.cli.main import run; run()"]
        if config:
            argv += ["--config", str(self.workdir / "bot.yaml")]
        return subprocess.run(
            [*argv, *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=self.workdir,
            timeout=120,
            check=False,
        )

    def devtools_imported(self) -> list[str]:
        return [line for line in self.report.read_text(encoding="utf-8").splitlines() if line]


@pytest.fixture
def production(tmp_path: Path) -> Iterator[Production]:
    fleet = EmulatedFleet.start(
        InMemoryHostStateStore(), model=load_host_model(demo_hosts_path()), log=EmulatorLog()
    )
    try:
        ports = {name: server.port for name, server in fleet.servers.items()}
        inventory = load_inventory(demo_inventory_path())
        (tmp_path / "inventory.yaml").write_text(
            emulated_inventory(inventory, ports, "hvadmin", EMULATOR_PASSWORD_ENV),
            encoding="utf-8",
        )
        (tmp_path / "bot.yaml").write_text(
            "inventory: inventory.yaml\ndatabase_url: sqlite:///bot.db\n"
            "hyperv:\n  backend: winrm\n  call_timeout: 30s\n",
            encoding="utf-8",
        )
        yield Production(tmp_path)
    finally:
        fleet.stop()


@pytest.mark.slow
def test_a_production_install_never_imports_the_dev_tools(production: Production) -> None:
    for args in (["--help"], ["--version"], ["db", "upgrade"]):
        done = production.run(*args)
        assert done.returncode == 0, done.stderr
        assert production.devtools_imported() == [], args

    created = production.run("checkpoint", "create", "WEB01", "--reason", "KB5044284", "--json")
    assert created.returncode == 0, created.stderr
    assert production.devtools_imported() == []
    listed = production.run("checkpoint", "list", "--vm", "WEB01", "--json")
    assert listed.returncode == 0, listed.stderr
    assert "CHG-0001" in listed.stdout
    assert production.devtools_imported() == []

    engine = make_engine(f"sqlite:///{production.workdir / 'bot.db'}")
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert "change" in tables
    assert not {t for t in tables if "simulator" in t or t.startswith("devtools_")}


@pytest.mark.slow
def test_the_dev_tools_say_what_to_install(production: Production) -> None:
    for command in ("demo", "emulator"):
        done = production.run(command, "--help")
        assert done.returncode == 2
        assert done.stderr.strip() == (
            f"checkpoint-bot: error: 'checkpoint-bot {command}' is part of the demo tools, "
            "which are not installed: pip install 'checkpoint-bot[demo]'"
        )
    # Without a config the CLI runs the demo estate on the simulator backend.
    done = production.run("checkpoint", "list", config=False)
    assert done.returncode == 2
    assert "hyperv.backend: simulator is part of the demo tools" in done.stderr
    assert "or set hyperv.backend: winrm" in done.stderr
    assert "Traceback" not in done.stderr
