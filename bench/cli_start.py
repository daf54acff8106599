"""CLI start: `checkpoint-bot` commands against the import time of what they use.

    .venv/bin/python bench/cli_start.py [--runs 7]

Each command runs in a fresh interpreter (`python -c "from bot.cli.main
import run; run()" ...`, what the console script does) on a production
config: `hyperv.backend: winrm` against emulated hosts on loopback (served
by this process: bot.devtools.emulator), SQLite in a temporary directory,
no Slack token. Beside each command, in the same run and interleaved with
it, the wall time of a bare interpreter importing only the libraries the
command really uses (its declared `uses`) and exiting as the CLI does,
its objects frozen (`gc.freeze()`, so neither pays the exit's last
garbage collection; until 2026-12-04 19:40 UTC the baseline paid it and
the CLI did not, which flattered every ratio), so the ratio is what the CLI
adds on top of its real dependencies: argument parsing, loading the config,
inventory and policy, opening the database, asking the host.

A command that does its work runs with Python's cyclic garbage collector
off for its first seconds (bot/cli/collector.py); the baseline imports
with it on, as Python does by default. So that the gain is not mistaken
for less work, each line also prints the CLI against a third interpreter
that imports the same libraries with the collector off (`no-gc`).

Targets: `--help` and `--version` at most 0.2 s (and so a command's
own `--help`); every query command at most 1.2x the import time of its
libraries. Runs are repeated and the medians printed: on a shared
machine single runs are noise.

It also lists, per command, the third-party packages the command imported
beyond its declared ones (from `python -X importtime`), which is where a
ratio above target comes from.

A listing asks every host, which no import does: the target's baseline
leaves that work out, so a listing's ratio holds the network as well as
the CLI's own cost. So that the two can be told apart, a last table times
each such command against a bare interpreter that imports the same
libraries and asks the same hosts the same question with pypsrp (Get-VM |
Get-VMSnapshot, one thread per host, as the bot asks them): what the CLI
adds on top of its libraries and its work. That table is information; the
issue's target is the first table's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.devtools.emulator import EmulatedFleet  # noqa: E402
from bot.devtools.emulator.pointing import EMULATOR_PASSWORD_ENV, emulated_inventory  # noqa: E402
from bot.devtools.hostmodel import (  # noqa: E402
    InMemoryHostStateStore,
    demo_hosts_path,
    load_host_model,
)
from bot.inventory import demo_inventory_path, load_inventory  # noqa: E402

# What every command needs to start: Click; what loads a config, an
# inventory and a policy: pydantic and PyYAML, and SQLAlchemy, whose URL
# parser checks `database_url` (bot.config).
CLICK = ("click",)
CONFIG = ("pydantic", "yaml", "sqlalchemy")
# SQLModel, and the SQLite dialect every command that opens the database
# loads (SQLAlchemy imports a dialect when an engine is first made for it,
# not with the package; the bench's config is on SQLite). Until 2026-12-04
# 22:45 UTC the baseline left the dialect out, about 11 ms here.
DATABASE = ("sqlmodel", "sqlalchemy.dialects.sqlite")
HOSTS = ("pypsrp.powershell", "pypsrp.wsman")
TEMPLATES = ("jinja2",)
MIGRATIONS = ("alembic.script", "alembic.runtime.migration")


@dataclass(frozen=True)
class Command:
    label: str
    argv: tuple[str, ...]
    uses: tuple[str, ...]
    limit_seconds: float | None = None  # an absolute target instead of a ratio
    asks_hosts: bool = False  # it asks every host (the last table)


# The bare asks of a listing: the bot's question to each host, one thread
# per host, with what a production config gives pypsrp (NTLM over HTTP,
# message encryption). Ports come as arguments.
BARE_ASKS = """
import sys, threading
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import WSMan

def ask(port):
    wsman = WSMan("127.0.0.1", port=int(port), username="hvadmin", password="Passw0rd!",
                  ssl=False, auth="ntlm")
    with RunspacePool(wsman) as pool:
        ps = PowerShell(pool)
        ps.add_cmdlet("Get-VM").add_cmdlet("Get-VMSnapshot")
        ps.invoke()
        if ps.had_errors:
            raise SystemExit(f"the ask failed: {[str(e) for e in ps.streams.error]}")

threads = [threading.Thread(target=ask, args=(port,)) for port in sys.argv[1:]]
for t in threads:
    t.start()
for t in threads:
    t.join()
"""


LIST = CLICK + CONFIG + DATABASE + HOSTS
SHOW = CLICK + CONFIG + DATABASE + TEMPLATES
COMMANDS = (
    Command("--version", ("--version",), CLICK, limit_seconds=0.2),
    Command("--help", ("--help",), CLICK, limit_seconds=0.2),
    # A help, held to the help target: it runs no query, and imports none
    # of the command's modules, only Click's help formatter (shutil,
    # textwrap, locale), which Click's import alone does not load. Until
    # 2026-12-05 this bench held it to the query ratio (1.2x).
    Command("checkpoint --help", ("checkpoint", "--help"), CLICK, limit_seconds=0.2),
    Command(
        "checkpoint list --json",
        ("checkpoint", "list", "--json"),
        CLICK + CONFIG + DATABASE + HOSTS,
        asks_hosts=True,
    ),
    Command("checkpoint list", ("checkpoint", "list"), LIST + TEMPLATES, asks_hosts=True),
    Command("change show CHG-0001", ("change", "show", "CHG-0001"), SHOW),
    Command("outbox --json", ("outbox", "--json"), CLICK + CONFIG + DATABASE),
    # SQLModel too: it reads where each VM was last seen (`vm_sighting`,
    # bot.service.whereabouts) through the tables.
    Command("inventory show --json", ("inventory", "show", "--json"), CLICK + CONFIG + DATABASE),
    Command("change list", ("change", "list"), SHOW),
    # Alembic reads the revisions and the database's version table.
    Command("db status", ("db", "status"), CLICK + CONFIG + DATABASE + MIGRATIONS),
)  # fmt: skip


def cli_argv(workdir: Path, args: tuple[str, ...]) -> list[str]:
    config = [] if args[0].startswith("--") else ["--config", str(workdir / "bot.yaml")]
    return [sys.executable, "-c", "from bot.cli.main import run; run()", *config, *args]


def imports_argv(modules: tuple[str, ...], collector: bool = True) -> list[str]:
    # It exits as the CLI does, its objects frozen first (bot/cli/main.py
    # `run`): unfrozen, the exit's last garbage collection of what SQLAlchemy
    # and pydantic built (about 0.15 s for a query's libraries here) would
    # count in the baseline though it is no import time, and flatter the CLI.
    off = "" if collector else "import gc; gc.disable(); "
    return [
        sys.executable,
        "-c",
        off + "import " + ", ".join((*modules, "gc")) + "; gc.freeze()",
    ]


def asks_argv(modules: tuple[str, ...], ports: list[int]) -> list[str]:
    """The libraries' imports, then the bare asks (`BARE_ASKS`), exiting as
    the CLI does."""
    imports = "import " + ", ".join((*modules, "gc")) + "\n"
    return [
        sys.executable,
        "-c",
        imports + BARE_ASKS + "gc.freeze()\n",
        *(str(port) for port in ports),
    ]


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, timeout=120, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{argv[3:]} failed ({done.returncode}): {done.stderr.decode()[-400:]}")
    return elapsed


def third_party(argv: list[str], env: dict[str, str], cwd: Path) -> set[str]:
    """Top-level packages outside the standard library and this project."""
    done = subprocess.run(
        [argv[0], "-X", "importtime", *argv[1:]],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    names: set[str] = set()
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        name = line.rsplit("|", 1)[1].strip().split(".")[0]
        if name and not name.startswith("_") and name not in sys.stdlib_module_names:
            names.add(name)
    # "org": a platform probe for Jython that some libraries try, not a package.
    return names - {"bot", "policies", "templates", "handlers", "encodings", "org"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)

    fleet = EmulatedFleet.start(InMemoryHostStateStore(), model=load_host_model(demo_hosts_path()))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            ports = {name: server.port for name, server in fleet.servers.items()}
            (workdir / "inventory.yaml").write_text(
                emulated_inventory(
                    load_inventory(demo_inventory_path()), ports, "hvadmin", EMULATOR_PASSWORD_ENV
                ),
                encoding="utf-8",
            )
            (workdir / "bot.yaml").write_text(
                "inventory: inventory.yaml\ndatabase_url: sqlite:///bot.db\n"
                "hyperv:\n  backend: winrm\n  call_timeout: 30s\n",
                encoding="utf-8",
            )
            env = {
                "PATH": os.environ.get("PATH", ""),
                "HOME": str(workdir),
                "PYTHONPATH": str(ROOT),
                EMULATOR_PASSWORD_ENV: "Passw0rd!",
                "CHECKPOINT_BOT_USER": "bench",
            }
            timed(cli_argv(workdir, ("db", "upgrade")), env, workdir)
            timed(
                cli_argv(workdir, ("checkpoint", "create", "WEB01", "--reason", "bench", "--json")),
                env,
                workdir,
            )
            bare = statistics.median(
                timed([sys.executable, "-c", "pass"], env, workdir) for _ in range(args.runs)
            )
            print(
                f"{args.runs} runs each, medians; a bare `python -c pass`: {bare * 1000:.0f} ms; "
                f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
            )
            print(
                f"{'command':<26} {'CLI':>8} {'imports':>8} {'ratio':>6}  target         "
                f"{'no-gc':>7} {'ratio':>6}  extra packages"
            )
            for command in COMMANDS:
                cli: list[float] = []
                libs: list[float] = []
                no_gc: list[float] = []
                for _ in range(args.runs):  # interleaved: all see the same machine
                    cli.append(timed(cli_argv(workdir, command.argv), env, workdir))
                    libs.append(timed(imports_argv(command.uses), env, workdir))
                    no_gc.append(timed(imports_argv(command.uses, False), env, workdir))
                cli_s, libs_s = statistics.median(cli), statistics.median(libs)
                no_gc_s = statistics.median(no_gc)
                ratio = cli_s / libs_s
                if command.limit_seconds is not None:
                    ok = cli_s <= command.limit_seconds
                    target = f"<= {command.limit_seconds:.1f} s"
                else:
                    ok = ratio <= 1.2
                    target = "<= 1.2x"
                used = third_party(imports_argv(command.uses), env, workdir)
                extra = sorted(third_party(cli_argv(workdir, command.argv), env, workdir) - used)
                print(
                    f"{command.label:<26} {cli_s * 1000:6.0f}ms {libs_s * 1000:6.0f}ms "
                    f"{ratio:5.2f}x  {target:<8} {'OK' if ok else 'ABOVE':<5} "
                    f"{no_gc_s * 1000:5.0f}ms {cli_s / no_gc_s:5.2f}x  {', '.join(extra) or '-'}"
                )
            listings = [c for c in COMMANDS if c.asks_hosts]
            print(
                f"\nListings against their libraries' imports plus the same asks by bare pypsrp "
                f"({len(ports)} hosts, one thread each; information, not the target):"
            )
            print(f"{'command':<26} {'CLI':>8} {'bare':>8} {'ratio':>6}")
            for command in listings:
                cli, bare_asks = [], []
                for _ in range(args.runs):
                    cli.append(timed(cli_argv(workdir, command.argv), env, workdir))
                    bare_asks.append(
                        timed(asks_argv(command.uses, list(ports.values())), env, workdir)
                    )
                cli_s, bare_s = statistics.median(cli), statistics.median(bare_asks)
                print(
                    f"{command.label:<26} {cli_s * 1000:6.0f}ms {bare_s * 1000:6.0f}ms "
                    f"{cli_s / bare_s:5.2f}x"
                )
    finally:
        fleet.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
