"""The layer contracts of pyproject.toml (checked by `make lint`) hold for
the tree, and they do catch a wrong import: a copy of the tree with one
deliberately wrong import per contract fails `lint-imports`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bot", "handlers", "policies", "templates")
LINT = Path(sys.executable).with_name("lint-imports")


def _copy(dest: Path) -> Path:
    for name in PACKAGES:
        shutil.copytree(
            ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "static")
        )
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")
    return dest


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT), "--no-cache", "--config", str(tree / "pyproject.toml")],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _add(path: Path, line: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")


@pytest.mark.slow
def test_the_tree_keeps_every_contract(tmp_path: Path) -> None:
    done = _lint(_copy(tmp_path))
    assert done.returncode == 0, done.stdout
    assert "0 broken" in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("bot/store/db.py", "import bot.service  # noqa", "Layers"),
        ("policies/model.py", "import bot.inventory  # noqa", "The policy is pure rules"),
        ("handlers/messages.py", "import bot.store.db  # noqa", "Entry points go through"),
        ("bot/service/queries.py", "import psrpcore  # noqa", "Only the dev tools"),
        ("policies/params.py", "import policies.policy  # noqa", "No import cycles"),
        ("handlers/messages.py", "import bot.service.requests  # noqa", "The service has one face"),
    ],
)
def test_a_wrong_import_breaks_its_contract(
    tmp_path: Path, module: str, line: str, broken: str
) -> None:
    tree = _copy(tmp_path)
    _add(tree / module, line)
    done = _lint(tree)
    assert done.returncode != 0
    broken_lines = [ln for ln in done.stdout.splitlines() if " BROKEN" in ln]
    assert len(broken_lines) == 1 and broken_lines[0].startswith(broken), done.stdout


def _contracts() -> list[dict[str, Any]]:
    import tomllib

    with (ROOT / "pyproject.toml").open("rb") as file:
        contracts: list[dict[str, Any]] = tomllib.load(file)["tool"]["importlinter"]["contracts"]
    return contracts


def test_docs_architecture_names_what_the_contracts_list() -> None:
    """docs/architecture.md's "Layers" shows every module of every layer,
    and its "one face" contract every importer allowed inside the service:
    the page cannot fall behind pyproject.toml."""
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    layers_block = page.split("## Layers\n", 1)[1].split("```", 2)[1]
    shown = set(layers_block.replace(":", " ").replace("|", " ").split())
    (layers,) = [c for c in _contracts() if c["type"] == "layers"]
    for layer in layers["layers"]:
        for module in str(layer).replace(":", "|").split("|"):
            assert module.strip() in shown, f"{module.strip()} is missing from the Layers block"
    (face,) = [c for c in _contracts() if c["type"] == "protected"]
    bullet = page.split("- **The service has one face.**", 1)[1].split("\n\n", 1)[0]
    for importer in face["allowed_importers"]:
        assert f"`{importer}`" in bullet, f"{importer} is missing from 'The service has one face'"
