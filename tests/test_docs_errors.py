"""The errors the docs show are the errors users get.

Every place in README.md and docs/*.md where a line `$ checkpoint-bot …`
is followed by a line `checkpoint-bot: error: …` is an example of bad
input and its answer. Each is run as written (tests/cli_support.py
`invoke`), in demo mode in a fresh directory, and must print exactly that
one line with the exit code the README promises for bad input, and no
traceback. A directory in the documented line stands for wherever the
user ran it (`/etc/checkpoint-bot/bot.yaml` against this test's
`<tmp>/bot.yaml`).

A few examples need something in place first (a config file with the
documented mistake, a backup that already exists): `PREPARE`, by the
command's text. The one that needs a cluster whose node lost a VM is
proven where that estate is built (`NEEDS_ESTATE`), as is the one that
needs a database missing a column.
"""

from __future__ import annotations

import re
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli_support import REPO, invoke, one_line_error
from tests.helpers import documented_yaml

PROMPT = "$ checkpoint-bot "
ERROR = "checkpoint-bot: error: "
DOCS = (REPO / "README.md", *sorted((REPO / "docs").glob("*.md")))


@dataclass(frozen=True)
class Example:
    where: str  # file:line, for the test's id
    command: str  # after the prompt, as written
    error: str  # the documented line

    @property
    def argv(self) -> list[str]:
        return shell_words(self.command)


def examples_in(text: str, name: str) -> list[Example]:
    """Each prompt line directly followed by an error line."""
    lines = text.splitlines()
    return [
        Example(f"{name}:{number}", line.removeprefix(PROMPT), lines[number])
        for number, line in enumerate(lines, start=1)
        if line.startswith(PROMPT) and number < len(lines) and lines[number].startswith(ERROR)
    ]


_ANSI_C = re.compile(r"\$'((?:[^'\\]|\\.)*)'")


def shell_words(command: str) -> list[str]:
    """The words bash makes of `command`: shlex's, plus bash's `$'…'`
    quoting (its backslash escapes, as the docs use for a control
    character and a new line)."""
    held: list[str] = []

    def hold(found: re.Match[str]) -> str:
        held.append(found.group(1).encode().decode("unicode_escape"))
        return f"\0{len(held) - 1}\0"

    words = shlex.split(_ANSI_C.sub(hold, command))
    return [re.sub(r"\0(\d+)\0", lambda m: held[int(m.group(1))], w) for w in words]


def _bad_config(cwd: Path) -> None:
    # The README's example: line 3 holds the mistake the error names.
    (cwd / "bot.yaml").write_text(
        "inventory: inv.yaml\njobs:\n  workers: many\nhyperv: {backend: winrm}\n", "utf-8"
    )


def _no_backend(cwd: Path) -> None:
    # The README's example of a file that names no backend: the repro of
    # a deployment that ran on simulated hosts unasked.
    (cwd / "bot.yaml").write_text("inventory: inventory.yaml\n", "utf-8")


def _systemd_config(cwd: Path) -> None:
    (cwd / "deploy" / "systemd").mkdir(parents=True)
    shutil.copy(REPO / "deploy" / "systemd" / "config.yaml", cwd / "deploy" / "systemd")


def _backup_taken(cwd: Path) -> None:
    assert invoke(cwd, "db", "upgrade").returncode == 0
    (cwd / "backups").mkdir()
    first = invoke(cwd, "db", "backup", "backups/bot-2026-12-04.db")
    assert first.returncode == 0, first.stderr


def _inventory_there(cwd: Path) -> None:
    shutil.copy(REPO / "deploy" / "examples" / "demo-inventory.yaml", cwd / "inventory.yaml")


def _broken_host_model(cwd: Path) -> None:
    # docs/emulator.md's example host model, WEB01 moved to a volume its
    # host lacks and the cluster's second node left out.
    example = documented_yaml("emulator.md", "The host-model file")
    broken = example.split("  - name: HV02")[0].replace("volume: 'D:\\'   ", "volume: 'F:\\'   ")
    assert broken.count("'F:\\'") == 1
    (cwd / "hosts.yaml").write_text(broken, "utf-8")


PREPARE: dict[str, Callable[[Path], None]] = {
    "emulator --hosts hosts.yaml": _broken_host_model,
    "--config bot.yaml checkpoint list": _bad_config,
    "--config bot.yaml db upgrade": _no_backend,
    "--config deploy/systemd/config.yaml checkpoint list": _systemd_config,
    "db backup backups/bot-2026-12-04.db": _backup_taken,
    "inventory discover --out inventory.yaml": _inventory_there,
}
# WEB02 not found on prod-cluster: tests/test_clusters.py
# `test_a_vm_on_no_node_is_reported_as_such` builds a cluster whose nodes
# lack a VM and checks the same sentence from the same command.
# A database at this release's schema lacking change.run_at (docs/upgrading.md):
# tests/test_schema_drift.py builds such databases, on SQLite and PostgreSQL,
# and checks the same sentence from the same command.
# Basic over HTTP to a host refusing unencrypted messages (docs/connect-hosts.md):
# tests/test_emulator_transport.py
# `test_basic_over_http_refused_as_windows_ships_it_says_what_to_use` runs the
# emulator with --no-allow-unencrypted and checks the host's words in it.
# STG-WEB01 removed from its standalone host (docs/clusters.md):
# tests/test_winrm_backend.py
# `test_a_standalone_vm_is_asked_once_per_decision_and_a_missing_one_refused_as_before`.
NEEDS_ESTATE = {
    "checkpoint create WEB02 -r patch",
    "change list",
    "--config bot.yaml policy explain STG-WEB01",
    "checkpoint create STG-WEB01 -r patch",
}

# README.md, "Exit codes": every example that runs here is bad input.
BAD_INPUT = 2

EXAMPLES = [e for doc in DOCS for e in examples_in(doc.read_text("utf-8"), doc.name)]


def matches(documented: str, printed: str, cwd: Path) -> bool:
    """`printed` is `documented`, but for the directory the example ran in,
    which the docs may show as any absolute directory."""
    if printed == documented:
        return True
    pattern = re.escape(printed).replace(re.escape(f"{cwd}/"), r"/(?:[^\s:/]+/)*")
    return re.fullmatch(pattern, documented) is not None


def test_the_docs_have_error_examples_and_each_is_prepared_or_run_as_is() -> None:
    assert len(EXAMPLES) >= 10
    commands = {e.command for e in EXAMPLES}
    # A preparation that no example needs any more is a stale one.
    assert set(PREPARE) <= commands
    assert NEEDS_ESTATE.issubset(commands)


@pytest.mark.parametrize(
    "example", [e for e in EXAMPLES if e.command not in NEEDS_ESTATE], ids=lambda e: e.where
)
def test_a_documented_error_is_what_the_cli_prints(tmp_path: Path, example: Example) -> None:
    prepare = PREPARE.get(example.command)
    if prepare is not None:
        prepare(tmp_path)
    result = invoke(tmp_path, *example.argv)
    printed = one_line_error(result)
    assert matches(example.error, printed, tmp_path), (
        f"{example.where} says\n{example.error}\nbut the CLI printed\n{printed}"
    )
    assert result.returncode == BAD_INPUT


def test_shell_words_reads_bash_quoting() -> None:
    assert shell_words("""create WEB1 --reason "typo in the name" 'WEB*'""") == [
        "create",
        "WEB1",
        "--reason",
        "typo in the name",
        "WEB*",
    ]
    assert shell_words(r"create -r $'a\x1bb' -r $'one\ntwo'") == [
        "create",
        "-r",
        "a\x1bb",
        "-r",
        "one\ntwo",
    ]


def test_matches_takes_any_directory_for_the_one_the_example_ran_in(tmp_path: Path) -> None:
    printed = f"checkpoint-bot: error: {tmp_path}/bot.yaml:3: jobs.workers: bad"
    assert matches(
        "checkpoint-bot: error: /etc/checkpoint-bot/bot.yaml:3: jobs.workers: bad",
        printed,
        tmp_path,
    )
    assert not matches(
        "checkpoint-bot: error: /etc/bot.yaml:4: jobs.workers: bad", printed, tmp_path
    )
    assert not matches("checkpoint-bot: error: bot.yaml:3: jobs.workers: bad", printed, tmp_path)
