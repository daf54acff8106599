"""`cert_validation: false` is said aloud, every time it is in force.

A host whose WinRM certificate the bot does not check is one where whoever
answers at its address gets the bot's login (NTLM, here) and its commands.
Until 2026-12-05 nothing said so: `checkpoint list`, `checkpoint create`,
`policy explain` and the start of `serve` and `worker` were silent. Now every
command that reads the inventory says it first, on stderr, in one line that
names the hosts (as a simulated deployment says SIMULATED HOSTS), `serve` and
`worker` say it at each start and reload, and
`checkpoint_bot_hosts_without_cert_validation` counts them.

Real components: the emulated demo estate over HTTPS, its certificate from a
CA made in the test (the system trust store does not know it: only a host
that checks nothing, or one with the CA as its `ca_bundle`, connects), the
CLI in this process and `serve`/`worker` as processes of their own.
"""

from __future__ import annotations

import os
import re
import signal
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.config import load_settings
from bot.context import build_context
from bot.devtools.emulator import DEFAULT_USERS, EmulatedFleet, TlsIdentity
from bot.devtools.emulator.pointing import EMULATOR_PASSWORD_ENV, emulated_inventory
from bot.devtools.hostmodel import InMemoryHostStateStore, demo_hosts_path, load_host_model
from bot.inventory import Inventory, demo_inventory_path, load_inventory
from tests.cli_support import CliResult, invoke, run_reporting_heavy
from tests.multiproc_support import Cluster, process_env, wait_until
from tests.slack_support import BOT_TOKEN, SIGNING_SECRET, FakeSlackApi
from tests.tls_support import TestCA

ENV = {EMULATOR_PASSWORD_ENV: DEFAULT_USERS["hvadmin"], "CHECKPOINT_BOT_SOCKET": "off"}
WARNING = (
    "checkpoint-bot: TLS CERTIFICATES NOT CHECKED — inventory.yaml sets cert_validation: false "
    "for HV01, HV02; whoever answers at their addresses is trusted with the bot's login and "
    "commands. Remove it, with ca_bundle: for a private CA (docs/connect-hosts.md)."
)
GAUGE = "checkpoint_bot_hosts_without_cert_validation"


@dataclass
class Estate:
    """The demo estate over HTTPS, a config aimed at it, in `workdir`."""

    workdir: Path
    fleet: EmulatedFleet
    bundle: Path

    @property
    def inventory(self) -> Path:
        return self.workdir / "inventory.yaml"

    def point(self, unchecked: tuple[str, ...], *, bundle_too: tuple[str, ...] = ()) -> None:
        """Every host trusts the test CA (`ca_bundle`), but `unchecked`
        say `cert_validation: false` instead; `bundle_too` say both (the
        bundle is validated against whatever cert_validation says)."""
        ports = {name: server.port for name, server in self.fleet.servers.items()}
        text = emulated_inventory(
            load_inventory(demo_inventory_path()),
            ports,
            "hvadmin",
            EMULATOR_PASSWORD_ENV,
            tls=True,
            ca_bundle=self.bundle,
        )
        doc = yaml.safe_load(text)
        for host in doc["hosts"]:
            if host["name"] in unchecked:
                host["cert_validation"] = False
                host.pop("ca_bundle")
            elif host["name"] in bundle_too:
                host["cert_validation"] = False
        self.inventory.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")

    def config(self, backend: str = "winrm", **extra: Any) -> Path:
        config = self.workdir / "bot.yaml"
        data = {
            "inventory": "inventory.yaml",
            "database_url": f"sqlite:///{self.workdir / 'bot.db'}",
            "hyperv": {"backend": backend, "call_timeout": "60s"},
            "sweep": {"enabled": False},
            **extra,
        }
        config.write_text(yaml.safe_dump(data), encoding="utf-8")
        return config

    def cli(self, *args: str) -> CliResult:
        return invoke(self.workdir, "-c", "bot.yaml", *args, env=ENV)


@pytest.fixture
def estate(tmp_path: Path) -> Iterator[Estate]:
    ca = TestCA.create("Checkpoint Test Root CA")
    cert, key = ca.issue(["localhost"]).write(tmp_path / "cert.pem", tmp_path / "key.pem")
    fleet = EmulatedFleet.start(
        InMemoryHostStateStore(),
        model=load_host_model(demo_hosts_path()),
        tls=TlsIdentity(certificate_pem=cert, key_pem=key),
    )
    try:
        found = Estate(tmp_path, fleet, ca.write(tmp_path / "corp-ca.pem"))
        found.point(("HV01", "HV02"), bundle_too=("HV03",))
        found.config()
        upgraded = found.cli("db", "upgrade")
        assert upgraded.returncode == 0, upgraded.stderr
        yield found
    finally:
        fleet.stop()


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "TLS CERTIFICATES NOT CHECKED" in line]


# --- which hosts ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "unchecked"),
    [
        ({}, False),  # validated against the system store: the default
        ({"cert_validation": False}, True),
        ({"cert_validation": False, "ca_bundle": "CA"}, False),
        ({"ca_bundle": "CA"}, False),
        # Plain HTTP has no certificate; its messages are sealed by the auth.
        ({"transport": "http", "cert_validation": False}, False),
    ],
)
def test_a_host_is_unchecked_only_over_https_with_validation_off_and_no_bundle(
    fields: dict[str, Any], unchecked: bool, tmp_path: Path
) -> None:
    if fields.get("ca_bundle") == "CA":  # a real PEM file: the inventory checks it
        fields = {**fields, "ca_bundle": str(TestCA.create("Corp CA").write(tmp_path / "ca.pem"))}
    spec = {"name": "HV01", "address": "hv01.corp.example", **fields}
    inventory = Inventory.model_validate({"hosts": [spec], "vms": []})
    assert inventory.host("HV01").certificate_unchecked is unchecked
    assert inventory.unchecked_certificates == (("HV01",) if unchecked else ())


# --- every command that reads the inventory -----------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ("checkpoint", "list"),
        ("checkpoint", "list", "--json"),
        ("checkpoint", "create", "WEB01", "-r", "KB5044284"),
        ("policy", "explain", "WEB01"),
        ("inventory", "show"),
    ],
)
def test_every_command_that_reads_the_inventory_says_which_hosts_go_unchecked(
    estate: Estate, command: tuple[str, ...]
) -> None:
    done = estate.cli(*command)
    assert done.returncode == 0, done.stderr
    # Once, first, on stderr: stdout (and --json) stay what they were.
    assert warnings(done.stderr) == [WARNING]
    assert done.stderr.splitlines()[0] == WARNING
    assert "TLS CERTIFICATES" not in done.stdout


def test_the_create_it_warns_of_did_log_in_to_the_unchecked_host(estate: Estate) -> None:
    """Not a warning about nothing: the bot's NTLM login went to a host
    whose certificate it never checked (a CA no trust store here knows)."""
    done = estate.cli("checkpoint", "create", "WEB01", "-r", "KB5044284")
    assert done.returncode == 0, done.stderr
    assert "CHG-0001: active — WEB01 on HV01" in done.stdout
    assert {logon.protocol for logon in estate.fleet.server("HV01").logons} == {"ntlm"}
    assert warnings(done.stderr) == [WARNING]


def test_with_every_certificate_checked_nothing_is_said(estate: Estate) -> None:
    estate.point((), bundle_too=("HV03",))
    for command in (("checkpoint", "list"), ("policy", "explain", "WEB01")):
        done = estate.cli(*command)
        assert done.returncode == 0, done.stderr
        assert warnings(done.stderr) == []


def test_one_host_is_named_in_the_singular(estate: Estate) -> None:
    estate.point(("HV02",))
    done = estate.cli("checkpoint", "list", "HV02")
    assert done.returncode == 0, done.stderr
    assert warnings(done.stderr) == [
        "checkpoint-bot: TLS CERTIFICATES NOT CHECKED — inventory.yaml sets cert_validation: "
        "false for HV02; whoever answers at its address is trusted with the bot's login and "
        "commands. Remove it, with ca_bundle: for a private CA (docs/connect-hosts.md)."
    ]


def test_the_simulator_reaches_no_host_and_says_nothing_of_certificates(
    estate: Estate,
) -> None:
    estate.config(backend="simulator")
    done = estate.cli("checkpoint", "list")
    assert done.returncode == 0, done.stderr
    assert "SIMULATED HOSTS" in done.stderr and warnings(done.stderr) == []


def test_a_command_that_never_reads_the_inventory_does_not_say_it(estate: Estate) -> None:
    # `change list` reads the record alone (bot.context `_Parts`).
    done = estate.cli("change", "list")
    assert done.returncode == 0, done.stderr
    assert warnings(done.stderr) == []


# --- the gauge ------------------------------------------------------------------


def _gauge(estate: Estate) -> float:
    settings = load_settings(estate.workdir / "bot.yaml", {}, estate.workdir)
    ctx = build_context(settings, env=ENV)
    try:
        body, _ = ctx.metrics.exposition()
    finally:
        ctx.close()
    [value] = re.findall(rf"^{GAUGE} (\S+)$", body.decode(), re.MULTILINE)
    return float(value)


def test_the_gauge_counts_the_unchecked_hosts_and_is_zero_otherwise(estate: Estate) -> None:
    assert _gauge(estate) == 2.0
    estate.point((), bundle_too=("HV03",))
    assert _gauge(estate) == 0.0
    estate.point(("HV01", "HV02", "HV03"))
    assert _gauge(estate) == 3.0
    estate.config(backend="simulator")
    assert _gauge(estate) == 0.0


# --- serve and worker, at each start -------------------------------------------------


def test_the_worker_says_it_at_start_and_again_at_each_reload(estate: Estate) -> None:
    with Cluster(estate.workdir) as cluster:
        # process_env keeps this run's XDG_RUNTIME_DIR: the worker's CLI
        # socket goes there (tests/conftest.py).
        worker = cluster.worker(estate.workdir / "bot.yaml", process_env())
        worker.wait_for_output(re.escape(WARNING), timeout=30)
        assert warnings(worker.output()) == [WARNING]
        # The warning comes before the worker says it runs jobs.
        output = worker.output()
        assert output.index(WARNING) < output.index("running jobs from the queue")
        # A command the running worker answers for the CLI says it too,
        # though the CLI never reads the inventory then (nothing heavy is
        # imported here: the worker did the work).
        env = process_env(**{EMULATOR_PASSWORD_ENV: ENV[EMULATOR_PASSWORD_ENV]})
        config = str(estate.workdir / "bot.yaml")
        answered = run_reporting_heavy(
            estate.workdir, env, "--config", config, "checkpoint", "list", "--json"
        )
        assert answered.code == 0 and answered.heavy == [], answered.stderr
        # The bot names the inventory by its whole path (the SIMULATED HOSTS
        # line it hands over names the config so too).
        assert warnings(answered.stderr) == [
            WARNING.replace("— inventory.yaml", f"— {estate.workdir / 'inventory.yaml'}")
        ]
        os.kill(worker.pid, signal.SIGHUP)
        wait_until(
            lambda: len(re.findall(r"worker \S+: running jobs", worker.output())) == 2,
            60,
            "the worker to start again",
            explain=worker.tail,
        )
        # The reload's check reads the files without a word; the process it
        # starts again says it, as at any start.
        assert warnings(worker.output()) == [WARNING, WARNING]


def test_serve_says_it_at_start_and_its_metrics_count_the_hosts(estate: Estate) -> None:
    with FakeSlackApi() as api, Cluster(estate.workdir) as cluster:
        config = estate.config(slack={"api_url": api.api_url, "team_ids": ["T0TEST"]})
        env = process_env(SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET)
        bot = cluster.serve(config, env)
        assert warnings(bot.proc.output()) == [WARNING]
        with urllib.request.urlopen(f"{bot.url}/metrics", timeout=10) as answer:  # noqa: S310
            body = answer.read().decode()
        assert f"\n{GAUGE} 2.0\n" in body
