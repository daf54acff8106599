"""Create, rollback and merge latency: the CLI against a bare pypsrp script.

    .venv/bin/python bench/op_latency.py [--rounds 3] [--latency-ms 0 50] [--baseline REV]

One emulated Hyper-V host per latency (bot.devtools.emulator: real WinRM
over loopback, NTLM, `--latency-ms` added to every HTTP request), and a
production config pointing at it (`hyperv.backend: winrm`, SQLite, no
Slack). The host's listener is as Windows ships it: Negotiate, and
AllowUnencrypted off, so over HTTP it takes only sealed messages
(https://learn.microsoft.com/windows/win32/winrm/installation-and-configuration-for-windows-remote-management).
The bot seals them, and so does the bare script, with pypsrp's default
`encryption="auto"`: until 2026-12-05 the bare script sent them
in the clear (`encryption="never"`), which such a host refuses, and which
spared it a round trip and the sealing. For each operation, in the same
run and interleaved round by round:

- bare: a fresh interpreter running the pypsrp pipeline for the same
  operation on the same VM, nothing else: open a runspace pool, run
  `Get-VM -Id … | Checkpoint-VM -SnapshotName … -Passthru` (create),
  `Get-VMSnapshot -Id … | Restore-VMSnapshot -Confirm:$false` then
  `Get-VM -Id … | Start-VM` (rollback: the bot starts the VM a restored
  production checkpoint leaves off, `defaults.start_after_restore`) or
  `Get-VMSnapshot -Id … | Remove-VMSnapshot -Confirm:$false` (merge), close;
- CLI: `checkpoint-bot checkpoint create STG-APP01 --reason … --json`, then
  `checkpoint rollback CHG-n` and `checkpoint merge CHG-n`, each until the
  change says active / rolled back / merged (the CLI waits for its job):
  policy decision with the host's facts, the record, the job with its
  re-check of the facts, the operation, the record again.

- CLI -> bot: the same CLI commands with the config, working directory and
  database of the Slack path's long-running `serve` (below), which takes
  them over its local socket (bot.cli.local_socket), as it would from an
  admin on the bot's machine or in its container: this interpreter parses
  the arguments, sends them, prints the bot's progress and answer. The CLI
  column above runs alone ($CHECKPOINT_BOT_SOCKET=off), as it does when no
  bot runs for its config;
- list: `checkpoint list --vm STG-APP01 --json`, alone and handed, against
  a bare script running `Get-VM -Id … | Get-VMSnapshot` on the same host;
- before: the same CLI commands from git revision `--baseline` (default
  c373024, before issue #18), extracted with `git archive` and run from
  there against the same host (with a database of its own, at its own
  schema), so the gain is measured in the same run;
- imports: a fresh interpreter importing only the third-party libraries a
  CLI create uses (`CLI_IMPORTS`), nothing else, and exiting as the CLI
  does: the part of the CLI's time no change to its own code can remove,
  printed against the bare script;
- bare+post: the bare script, then one `chat.postMessage` (slack_sdk's
  WebClient, imported and called in the same process) to the recorder the
  Slack path posts to: what "the bare script plus one Slack post" costs;
- Slack: a long-running `checkpoint-bot serve --http` (bench/slack_click.py)
  on the same host, its Web API the tests' recorder: a signed `/checkpoint
  create` of the CLI's VM, then the thread root's Roll back and Keep & merge
  buttons clicked (signed block_actions payloads built from the message the
  bot posted), each timed from the request to the thread reply that says
  created / rolled back / merged. Its first request (a `list`, untimed)
  warms it up, as any bot that has been running a while is.

The bare scripts and the CLIs are timed from the start of the process to
its exit. The bare script works on STG-WEB01, the CLI and the Slack bot on
STG-APP01, two staging VMs on the same host (the shipped policy asks no
approval for their rollback): a merge leaves its VM merging disks for a
while, as on Hyper-V, and the bench waits (untimed) until neither merges
before the next operation. Prints the medians, the ratio CLI / bare, and
the ratio Slack / bare+post per operation and latency. Targets: CLI create
at most 1.5x the bare script (printed for the CLI alone and the CLI handed
to the bot); Slack create (click-to-active) at most 1.5x the bare script
plus one Slack post.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.slack_click import SlackPath  # noqa: E402
from bot.cli.local_socket import SOCKET_ENV, socket_path  # noqa: E402
from bot.clock import system_clock  # noqa: E402
from bot.devtools.emulator import EmulatedFleet  # noqa: E402
from bot.devtools.emulator.pointing import EMULATOR_PASSWORD_ENV, emulated_inventory  # noqa: E402
from bot.devtools.hostmodel import (  # noqa: E402
    InMemoryHostStateStore,
    ModelHost,
    demo_hosts_path,
    load_host_model,
)
from bot.devtools.hostmodel.enums import VMState  # noqa: E402
from bot.inventory import demo_inventory_path, load_inventory  # noqa: E402
from tests.multiproc_support import Cluster  # noqa: E402

USER, PASSWORD = "hvadmin", "Passw0rd!"
BARE_VM = "STG-WEB01"  # the bare script's VM
VM_NAME = "STG-APP01"  # the CLI's: a merge leaves a VM merging its disks a while
HOST = "HV03"
MERGE_WAIT = 120.0
TIMEOUT = 120
OPS = ("create", "rollback", "merge")
# One operation's seconds by path: bare, bare+post, cli, before, slack.
Row = dict[str, float]

# The bare script: what an admin would type, with pypsrp (values as
# parameters, as the bot sends them).
BARE = """
import sys
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import WSMan

port, op, target, name, vm_id = sys.argv[1:6]
post_to = sys.argv[6] if len(sys.argv) > 6 else ""  # bare+post: a Slack Web API URL
wsman = WSMan("127.0.0.1", port=int(port), username="hvadmin", password="Passw0rd!",
              ssl=False, auth="ntlm", cert_validation=False)
with RunspacePool(wsman) as pool:
    ps = PowerShell(pool)
    if op == "create":
        ps.add_cmdlet("Get-VM").add_parameter("Id", target)
        ps.add_cmdlet("Checkpoint-VM").add_parameter("SnapshotName", name)
        ps.add_parameter("Passthru")
    elif op == "list":  # the checkpoints of one VM
        ps.add_cmdlet("Get-VM").add_parameter("Id", target).add_cmdlet("Get-VMSnapshot")
    else:
        ps.add_cmdlet("Get-VMSnapshot").add_parameter("Id", target)
        verb = "Restore-VMSnapshot" if op == "rollback" else "Remove-VMSnapshot"
        ps.add_cmdlet(verb).add_parameter("Confirm", False)
    out = ps.invoke()
    if ps.had_errors:
        raise SystemExit(f"{op} failed: {[str(e) for e in ps.streams.error]}")
    if op == "rollback":  # a restored production checkpoint leaves the VM off
        start = PowerShell(pool)
        start.add_cmdlet("Get-VM").add_parameter("Id", vm_id).add_cmdlet("Start-VM")
        start.invoke()
        if start.had_errors:
            raise SystemExit(f"start failed: {[str(e) for e in start.streams.error]}")
if post_to:  # and tell the channel, once
    from slack_sdk import WebClient

    WebClient(token="xoxb-test", base_url=post_to).chat_postMessage(
        channel="C0BARE", text=f"{op} of {target}: done"
    )
if op == "create":
    print(out[0].adapted_properties.get("Id") or out[0].extended_properties.get("Id"))
"""


# The third-party libraries a CLI create imports (python -X importtime):
# what a fresh interpreter pays before the command does anything. The bare
# script imports only pypsrp (and what pypsrp imports). Then it exits as the
# CLI does, its objects frozen first (bot/cli/main.py `run`): unfrozen, the
# exit's last garbage collection alone costs about 0.3 s here.
CLI_MODULES = (
    "click",
    "pydantic",
    "yaml",
    "sqlalchemy",
    "sqlalchemy.dialects.sqlite",  # loaded when the first engine is made
    "sqlmodel",
    "huey",
    "prometheus_client",
    "pypsrp.powershell",
    "pypsrp.wsman",
)
# Huey as the CLI imports it for its SQLite queue: without the Redis and
# PostgreSQL clients, which huey.storage imports for storages that queue
# never uses (bot/jobs/queue.py `_import_huey`). Until 2026-12-05 this
# baseline imported them, about 0.13 s here that the CLI never pays, and
# the SQLite dialect was left out.
CLI_IMPORTS = (
    "import sys; sys.modules.update(redis=None, psycopg=None); "
    f"import {', '.join(CLI_MODULES)}, gc; gc.freeze()"
)
LIBRARIES = ", ".join(dict.fromkeys(m.split(".")[0] for m in CLI_MODULES))


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{argv[3:]} failed ({done.returncode}): {done.stderr[-600:]}")
    return elapsed, done.stdout


class Setup:
    """One emulated host at one latency, and a production config aimed at it."""

    def __init__(
        self,
        latency_ms: int,
        workdir: Path,
        baseline: Path,
        cluster: Cluster,
        slack_baseline: Path | None = None,
    ) -> None:
        self.latency_ms = latency_ms
        self.baseline = baseline
        self.workdir = workdir
        self.store = InMemoryHostStateStore()
        self.fleet = EmulatedFleet.start(
            self.store,
            [HOST],
            model=load_host_model(demo_hosts_path()),
            users={USER: PASSWORD},
            auth=("ntlm",),
            latency_ms=latency_ms,
            allow_unencrypted=False,
        )
        self.port = self.fleet.port_of(HOST)
        inventory = load_inventory(demo_inventory_path())
        self.vm_id = inventory.vm(VM_NAME).vm_id
        self.bare_vm_id = inventory.vm(BARE_VM).vm_id
        pointed = emulated_inventory(inventory, {HOST: self.port}, USER, EMULATOR_PASSWORD_ENV)
        (workdir / "inventory.yaml").write_text(pointed, encoding="utf-8")
        # The CLI before #18 refuses what the inventory gained since: the
        # clusters and groups sections, cluster volumes and `roles_unknown`
        # (written by discovery; false for every VM here). Its copy holds
        # only this standalone host and its VMs, without those.
        older = yaml.safe_load(pointed)
        for key in ("clusters", "groups"):
            older.pop(key, None)
        older["hosts"] = [h for h in older["hosts"] if h["name"] == HOST]
        older["vms"] = [vm for vm in older["vms"] if vm["host"] == HOST]
        for vm in older["vms"]:
            vm.pop("roles_unknown", None)
        (workdir / "before-inventory.yaml").write_text(
            yaml.safe_dump(older, sort_keys=False), encoding="utf-8"
        )
        for name, database, inv in (
            ("bot.yaml", "bot.db", "inventory.yaml"),
            ("before.yaml", "before.db", "before-inventory.yaml"),
        ):
            # The CLI before #18 keeps its own database, at its own schema.
            (workdir / name).write_text(
                f"inventory: {inv}\ndatabase_url: sqlite:///{database}\n"
                "hyperv:\n  backend: winrm\n  call_timeout: 60s\n",
                encoding="utf-8",
            )
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(workdir),
            "PYTHONPATH": str(ROOT),
            EMULATOR_PASSWORD_ENV: PASSWORD,
            "CHECKPOINT_BOT_USER": "bench",
        }
        self.cli("db", "upgrade")
        self.cli("db", "upgrade", tree=self.baseline)
        self.slack = SlackPath(
            workdir / "serve",
            workdir / "inventory.yaml",
            {EMULATOR_PASSWORD_ENV: PASSWORD},
            cluster,
        )
        self.slack.warm()
        self.slack_before: SlackPath | None = None
        if slack_baseline is not None:
            self.slack_before = SlackPath(
                workdir / "serve-before",
                workdir / "inventory.yaml",
                {EMULATOR_PASSWORD_ENV: PASSWORD},
                cluster,
                tree=slack_baseline,
            )
            self.slack_before.warm()
        self.handed_ready()

    def cli(self, *args: str, tree: Path = ROOT, handed: bool = False) -> tuple[float, str]:
        """`checkpoint-bot ARGS` of `tree`, alone (its own database, nothing
        listening for its config), or `handed` to the running `serve` of the
        Slack path (its config, working directory and database)."""
        argv = [sys.executable, "-c", "from bot.cli.main import run; run()"]
        env = {**self.env, "PYTHONPATH": str(tree)}
        config = self.workdir / ("bot.yaml" if tree == ROOT else "before.yaml")
        cwd = self.workdir
        if handed:
            config, cwd = self.slack.config, self.slack.cwd
        else:
            env[SOCKET_ENV] = "off"  # as if no bot ran: it would not listen for bot.yaml anyway
        return timed([*argv, "--config", str(config), *args], env, cwd)

    def cli_ops(self, n: int, tree: Path, handed: bool = False) -> tuple[float, float, float]:
        """create, rollback, merge through the CLI of `tree`."""
        self.settle()
        create, out = self.cli(
            "checkpoint",
            "create",
            VM_NAME,
            "--reason",
            f"bench {n}",
            "--json",
            tree=tree,
            handed=handed,
        )
        change = json.loads(out)
        if change["state"] != "active":
            raise SystemExit(f"the create ended {change['state']}: {change}")
        ref = change["ref"]
        rollback, out = self.cli("checkpoint", "rollback", ref, "--json", tree=tree, handed=handed)
        if json.loads(out)["state"] != "rolled_back":
            raise SystemExit(f"the rollback ended {json.loads(out)['state']}")
        merge, out = self.cli("checkpoint", "merge", ref, "--json", tree=tree, handed=handed)
        if json.loads(out)["state"] != "merged":
            raise SystemExit(f"the merge ended {json.loads(out)['state']}")
        return create, rollback, merge

    def handed_ready(self) -> None:
        """The Slack path's bot listens for its CLI (else `handed` would time
        the CLI alone)."""
        path = socket_path(self.slack.config, self.env, self.slack.cwd)
        if path is None or not path.exists():
            raise SystemExit(f"the bot does not listen for its CLI at {path}")

    def bare(self, op: str, target: str, name: str = "-", post: bool = False) -> tuple[float, str]:
        argv = [sys.executable, "-c", BARE, str(self.port), op, target, name, self.bare_vm_id]
        if post:
            argv.append(self.slack.api.api_url)
        return timed(argv, self.env, self.workdir)

    def bare_ops(self, n: int, post: bool) -> tuple[float, float, float]:
        """create, rollback, merge with the bare script (and one Slack post each)."""
        self.settle()
        label = "bare+post" if post else "bare"
        create, out = self.bare("create", self.bare_vm_id, f"{label} {n}", post)
        checkpoint = out.strip()
        rollback, _ = self.bare("rollback", checkpoint, post=post)
        merge, _ = self.bare("merge", checkpoint, post=post)
        return create, rollback, merge

    def slack_ops(self, n: int, bot: SlackPath) -> tuple[float, float, float]:
        """create (slash command), Roll back, Keep & merge (clicks) until the thread says so."""
        self.settle()
        return bot.ops(VM_NAME, n)

    def settle(self) -> None:
        """Untimed: wait until neither VM merges its disks (what a merge
        leaves running on the host, as Hyper-V does)."""
        host = ModelHost(HOST, self.store, system_clock)
        deadline = time.monotonic() + MERGE_WAIT
        while any(host.get_vm(v).merging for v in (self.vm_id, self.bare_vm_id)):
            if time.monotonic() > deadline:
                raise SystemExit("a merge did not end in time")
            time.sleep(0.2)
        for vm_id in (self.vm_id, self.bare_vm_id):
            # Each round starts from running VMs whose guests answer (KVP).
            if host.get_vm(vm_id).state is not VMState.Running:
                host.start_vm(vm_id)

    def imports(self) -> float:
        """Seconds a fresh interpreter takes to import the CLI's libraries."""
        return timed([sys.executable, "-c", CLI_IMPORTS], self.env, self.workdir)[0]

    def round(self, n: int) -> dict[str, Row]:
        """Seconds per operation of every path, the paths taken in turn."""
        imports = self.imports()
        runs = {
            "bare": self.bare_ops(n, post=False),
            "bare+post": self.bare_ops(n, post=True),
            "cli": self.cli_ops(n, ROOT),
            "handed": self.cli_ops(n, ROOT, handed=True),
            "before": self.cli_ops(n, self.baseline),
            "slack": self.slack_ops(n, self.slack),
        }
        if self.slack_before is not None:
            runs["slack before"] = self.slack_ops(n, self.slack_before)
        rows = {
            op: {"imports": imports, **{path: times[i] for path, times in runs.items()}}
            for i, op in enumerate(OPS)
        }
        rows["list"] = self.list_times()
        return rows

    def list_times(self) -> Row:
        """One VM's checkpoints: the bare script, the CLI alone, the CLI handed."""
        args = ("checkpoint", "list", "--vm", VM_NAME, "--json")
        return {
            "bare": self.bare("list", self.vm_id)[0],
            "cli": self.cli(*args)[0],
            "handed": self.cli(*args, handed=True)[0],
        }

    def close(self) -> None:
        self.slack.close()
        if self.slack_before is not None:
            self.slack_before.close()
        self.fleet.stop()


def create_target(op: str, ratio: float) -> str:
    """The verdict printed beside a create's ratio (the target is on create)."""
    if op != "create":
        return ""
    return "  target <= 1.5x: " + ("OK" if ratio <= 1.5 else "ABOVE")


def extract(revision: str, into: Path) -> Path:
    """The source tree of `revision` (git archive), without its tests."""
    into.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", revision],
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    shutil.rmtree(into / "tests", ignore_errors=True)
    return into


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-ms", type=int, nargs="+", default=[0, 50])
    parser.add_argument("--baseline", default="c373024", help="git revision of the 'before' CLI")
    parser.add_argument(
        "--slack-baseline",
        metavar="REV",
        help="also time the Slack path of the bot at git revision REV, in the same run",
    )
    args = parser.parse_args(argv)

    results: dict[int, dict[str, list[Row]]] = {}
    loads: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        baseline = extract(args.baseline, Path(tmp) / "baseline")
        slack_baseline = None
        if args.slack_baseline:
            slack_baseline = extract(args.slack_baseline, Path(tmp) / "slack-baseline")
        setups = []
        with Cluster(Path(tmp) / "procs") as cluster:
            try:
                for latency in args.latency_ms:
                    workdir = Path(tmp) / f"l{latency}"
                    workdir.mkdir()
                    setups.append(Setup(latency, workdir, baseline, cluster, slack_baseline))
                for n in range(args.rounds):  # interleaved: every setup sees the same machine
                    for setup in setups:
                        for op, row in setup.round(n).items():
                            results.setdefault(setup.latency_ms, {}).setdefault(op, []).append(row)
                        loads.append(os.getloadavg()[0])
            finally:
                for setup in setups:
                    setup.close()

    def med(runs: list[Row], path: str) -> float:
        return statistics.median(r[path] for r in runs)

    print(
        f"{HOST}, one emulated host (NTLM): bare on {BARE_VM}; CLI and Slack on {VM_NAME}; "
        f"{args.rounds} rounds, medians; load average {min(loads):.1f}-{max(loads):.1f} "
        f"(1 min, sampled after each round) on {os.cpu_count()} CPUs"
    )
    print(
        f"{'latency':>8} {'operation':<10} {'bare':>8} {'CLI':>8} {'CLI/bare':>9}   "
        f"{'CLI ' + args.baseline:>12} {'its /bare':>9}"
    )
    for latency, ops in results.items():
        for op, runs in ops.items():
            if op not in OPS:
                continue
            bare, cli, old = med(runs, "bare"), med(runs, "cli"), med(runs, "before")
            target = create_target(op, cli / bare)
            print(
                f"{latency:>6}ms {op:<10} {bare * 1000:6.0f}ms {cli * 1000:6.0f}ms "
                f"{cli / bare:8.2f}x   {old * 1000:10.0f}ms {old / bare:8.2f}x{target}"
            )
    print()
    print("CLI -> bot: the same CLI commands run with the config of the Slack path's")
    print("`serve` (same working directory and database), which takes them over its local")
    print("socket (bot.cli.local_socket): this process parses, sends, waits and prints.")
    print("list: `checkpoint list --vm VM --json` against a bare script running")
    print("`Get-VM -Id … | Get-VMSnapshot`, and (CLI) the same command alone.")
    print(
        f"{'latency':>8} {'operation':<10} {'bare':>8} {'CLI->bot':>9} {'its /bare':>9}"
        f" {'CLI':>8} {'its /bare':>9}"
    )
    for latency, ops in results.items():
        for op, runs in ops.items():
            bare, handed, alone = med(runs, "bare"), med(runs, "handed"), med(runs, "cli")
            target = create_target(op, handed / bare)
            print(
                f"{latency:>6}ms {op:<10} {bare * 1000:6.0f}ms {handed * 1000:7.0f}ms "
                f"{handed / bare:8.2f}x {alone * 1000:6.0f}ms {alone / bare:8.2f}x{target}"
            )
    print()
    print("imports: a fresh interpreter importing only the libraries a CLI create uses")
    print(f"({LIBRARIES}; Huey without the Redis and PostgreSQL clients, as the CLI")
    print("imports it for a SQLite queue), exiting as the CLI does; beside")
    print("the bare script's time at each latency, what that alone costs against it:")
    for latency, ops in results.items():
        runs = ops["create"]
        imports, bare = med(runs, "imports"), med(runs, "bare")
        print(
            f"{latency:>6}ms imports {imports * 1000:6.0f}ms = {imports / bare:4.2f}x bare "
            f"({bare * 1000:.0f}ms); 1.5x bare leaves {(1.5 * bare - imports) * 1000:.0f}ms "
            "for connecting, deciding, recording, re-checking and the checkpoint"
        )
    print()
    print("Slack: a signed /checkpoint create, then the Roll back and Keep & merge clicks,")
    print("each until the thread says active / rolled back / merged; bare+post: the bare")
    print("script and one chat.postMessage to the same recorder (slack_sdk), one process.")
    before = f"  {'Slack ' + args.slack_baseline:>14} {'its ratio':>9}" if slack_baseline else ""
    print(
        f"{'latency':>8} {'operation':<10} {'bare':>8} {'bare+post':>10} {'Slack':>8} "
        f"{'Slack/(bare+post)':>18}{before}"
    )
    for latency, ops in results.items():
        for op, runs in ops.items():
            if op not in OPS:
                continue
            bare, posted, slack = med(runs, "bare"), med(runs, "bare+post"), med(runs, "slack")
            earlier = ""
            if slack_baseline:
                was = med(runs, "slack before")
                earlier = f"  {was * 1000:12.0f}ms {was / posted:8.2f}x"
            target = create_target(op, slack / posted)
            print(
                f"{latency:>6}ms {op:<10} {bare * 1000:6.0f}ms {posted * 1000:8.0f}ms "
                f"{slack * 1000:6.0f}ms {slack / posted:17.2f}x{earlier}{target}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
