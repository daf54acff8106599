"""A `ca_bundle:` the bot itself cannot use (no such file, a directory, a
file holding no certificate) is the inventory's mistake, said as one at
load: exit 2, one line naming the host, what is wrong and what would be
right, and no host is asked. A bundle of the wrong CA is only found in the
handshake: the host is not trusted, and trying again will not help until
the CA is fixed, so the bot does not say "try again". The real CLI,
in-process, against an emulated host serving HTTPS."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.devtools.emulator import DEFAULT_USERS, EmulatedFleet, TlsIdentity
from bot.devtools.emulator.pointing import EMULATOR_PASSWORD_ENV, emulated_inventory
from bot.devtools.hostmodel import InMemoryHostStateStore, demo_hosts_path, load_host_model
from bot.inventory import demo_inventory_path, load_inventory
from tests.cli_support import CliResult, invoke, one_line_error
from tests.tls_support import TestCA

ENV = {EMULATOR_PASSWORD_ENV: DEFAULT_USERS["hvadmin"]}
Point = Callable[[Path], CliResult]


@pytest.fixture
def ca() -> TestCA:
    return TestCA.create("Checkpoint Test Root CA")


@pytest.fixture
def point(tmp_path: Path, ca: TestCA) -> Iterator[Point]:
    """Writes the inventory with HV01's `ca_bundle:` set to a path, then runs
    `checkpoint create WEB01` against it."""
    cert, key = ca.issue(["localhost"]).write(tmp_path / "cert.pem", tmp_path / "key.pem")
    fleet = EmulatedFleet.start(
        InMemoryHostStateStore(),
        hosts=["HV01"],
        model=load_host_model(demo_hosts_path()),
        tls=TlsIdentity(certificate_pem=cert, key_pem=key),
    )
    config = tmp_path / "bot.yaml"
    config.write_text("inventory: inv.yaml\nhyperv: {backend: winrm}\n", encoding="utf-8")
    inventory = load_inventory(demo_inventory_path())
    ports = {name: server.port for name, server in fleet.servers.items()}

    def run(bundle: Path) -> CliResult:
        (tmp_path / "inv.yaml").write_text(
            emulated_inventory(inventory, ports, "hvadmin", EMULATOR_PASSWORD_ENV, tls=True)
            # emulated_inventory resolves a bundle's path; these must stay as written.
            .replace("cert_validation: true", f"cert_validation: true\n  ca_bundle: '{bundle}'"),
            encoding="utf-8",
        )
        return invoke(
            tmp_path, "--config", str(config), "checkpoint", "create", "WEB01", "-r", "x", env=ENV
        )

    try:
        assert invoke(tmp_path, "--config", str(config), "db", "upgrade", env=ENV).returncode == 0
        yield run
    finally:
        fleet.stop()
    assert fleet.log.entries == []  # no request reached the host


def _refused(result: CliResult) -> str:
    assert result.returncode == 2, result.stderr
    line = one_line_error(result)
    assert "hosts[0]" in line and "HV01" in line
    assert "could not be reached" not in line and "try again" not in line
    assert "TLS failed" not in line and "HTTPSConnectionPool" not in line
    return line


def test_a_missing_bundle(point: Point, tmp_path: Path) -> None:
    line = _refused(point(tmp_path / "missing.pem"))
    assert "ca_bundle" in line and "missing.pem does not exist" in line
    assert "the PEM file of the CA that signed the host's certificate" in line


def test_a_directory(point: Point, tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    line = _refused(point(tmp_path / "certs"))
    assert "certs is a directory" in line and "cannot be read" not in line
    assert "name the PEM file of the CA that signed the host's certificate" in line


@pytest.mark.parametrize("kind", ["empty", "private-key", "text"])
def test_a_file_holding_no_certificate(point: Point, tmp_path: Path, kind: str) -> None:
    bundle = tmp_path / "bundle.pem"
    # The listener's own private key (a PEM file, but no certificate in it).
    key = (tmp_path / "key.pem").read_bytes()
    bundle.write_bytes({"empty": b"", "private-key": key, "text": b"not a certificate\n"}[kind])
    line = _refused(point(bundle))
    assert "bundle.pem holds no certificate" in line
    assert "BEGIN CERTIFICATE" in line


def test_the_wrong_ca_keeps_its_hint_and_does_not_say_try_again(tmp_path: Path, ca: TestCA) -> None:
    cert, key = ca.issue(["localhost"]).write(tmp_path / "cert.pem", tmp_path / "key.pem")
    fleet = EmulatedFleet.start(
        InMemoryHostStateStore(),
        hosts=["HV01"],
        model=load_host_model(demo_hosts_path()),
        tls=TlsIdentity(certificate_pem=cert, key_pem=key),
    )
    try:
        ports = {name: server.port for name, server in fleet.servers.items()}
        other = TestCA.create("Some Other CA").write(tmp_path / "other-ca.pem")
        (tmp_path / "inv.yaml").write_text(
            emulated_inventory(
                load_inventory(demo_inventory_path()),
                ports,
                "hvadmin",
                EMULATOR_PASSWORD_ENV,
                tls=True,
                ca_bundle=other,
            ),
            encoding="utf-8",
        )
        config = tmp_path / "bot.yaml"
        config.write_text("inventory: inv.yaml\nhyperv: {backend: winrm}\n", encoding="utf-8")
        assert invoke(tmp_path, "--config", str(config), "db", "upgrade", env=ENV).returncode == 0
        made = invoke(
            tmp_path, "--config", str(config), "checkpoint", "create", "WEB01", "-r", "x", env=ENV
        )
        listed = invoke(tmp_path, "--config", str(config), "checkpoint", "list", env=ENV)
    finally:
        fleet.stop()
    assert made.returncode == 3, made.stderr
    line = one_line_error(made)
    assert "certificate is not trusted" in line and "set ca_bundle:" in line
    assert "try again once it answers" not in line
    assert "trying again will not help" in line
    assert "certificate is not trusted" in listed.stdout + listed.stderr
    assert "HV01 could not be reached" not in listed.stdout + listed.stderr
