"""HTTPS to a host, end to end: the bot's WinRM client against the emulator
serving TLS with a certificate from a CA made in the test.

Validation is on by default (the inventory's `cert_validation: true`, the
system trust store); `ca_bundle:` names the private CA. The right CA lets a
checkpoint be created and listed over NTLM with channel binding; a wrong CA,
no CA (the system store does not know the test CA) and a certificate for
another name each fail with one line that names the host, says what is wrong
and what to set, before any credential is sent.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.clock import ManualClock
from bot.devtools.emulator import (
    DEFAULT_USERS,
    EmulatedFleet,
    EmulatorLog,
    EmulatorServer,
    TlsIdentity,
)
from bot.devtools.emulator.pointing import EMULATOR_PASSWORD_ENV, emulated_inventory
from bot.devtools.hostmodel import (
    HostModel,
    HostSpec,
    InMemoryHostStateStore,
    ModelHost,
    VMSpec,
    VolumeSpec,
    demo_hosts_path,
    load_host_model,
    seed_missing,
)
from bot.hyperv.errors import HostAuthError
from bot.hyperv.winrm.connect import Credentials
from bot.hyperv.winrm.host import WinRMHost
from bot.hyperv.winrm.pool import WinRMTimeouts
from bot.inventory import Inventory, demo_inventory_path, load_inventory
from tests.cli_support import BOT, one_line_error, run
from tests.tls_support import TestCA

USER, PASSWORD = "hvadmin", "Passw0rd!"
WEB01 = "aaaaaaaa-1111-4111-8111-11111111111b"
MODEL = HostModel(
    hosts=[
        HostSpec(
            name="HV01",
            volumes=[VolumeSpec(path="D:", capacity_gb=2000, used_gb=700)],
            vms=[VMSpec(name="WEB01", vm_id=WEB01)],
        )
    ]
)


@pytest.fixture
def ca() -> TestCA:
    return TestCA.create("Checkpoint Test Root CA")


def _serve(tmp_path: Path, ca: TestCA, names: list[str], clock: ManualClock) -> EmulatorServer:
    store = InMemoryHostStateStore()
    seed_missing(store, MODEL)
    cert, key = ca.issue(names).write(tmp_path / "listener.pem", tmp_path / "listener.key")
    return EmulatorServer(
        ModelHost("HV01", store, clock),
        users={USER: PASSWORD},
        auth=("ntlm",),
        log=EmulatorLog(),
        tls=TlsIdentity(certificate_pem=cert, key_pem=key),
    ).start()


@pytest.fixture
def server(tmp_path: Path, ca: TestCA, clock: ManualClock) -> Iterator[EmulatorServer]:
    emulator = _serve(tmp_path, ca, ["localhost"], clock)
    yield emulator
    emulator.stop()


def host_for(server: EmulatorServer, **fields: object) -> WinRMHost:
    spec = {
        "name": "HV01",
        "address": "localhost",
        "port": server.port,
        # transport https and cert_validation true are the defaults: not set here.
        "auth": "ntlm",
        "credential": {"username": USER, "password_env": "HV_PASSWORD"},
        **fields,
    }
    inventory = Inventory.model_validate({"hosts": [spec], "vms": []})
    host = inventory.host("HV01")
    timeouts = WinRMTimeouts(call=6, connect=2, read=10, operation=2, idle=300, stop_grace=1)
    return WinRMHost(host, Credentials({"HV_PASSWORD": PASSWORD}).for_host(host), timeouts=timeouts)


def test_https_is_validated_by_default() -> None:
    host = Inventory.model_validate(
        {"hosts": [{"name": "HV01", "address": "hv01.corp.example"}], "vms": []}
    ).host("HV01")
    assert host.transport.value == "https" and host.port == 5986
    assert host.cert_validation is True and host.ca_bundle is None


def test_right_ca_creates_and_lists_a_checkpoint(
    server: EmulatorServer, ca: TestCA, tmp_path: Path
) -> None:
    winrm = host_for(server, ca_bundle=str(ca.write(tmp_path / "corp-ca.pem")))
    try:
        created = winrm.create_checkpoint(WEB01, "CHG-0001 over HTTPS")
        listed = winrm.list_checkpoints(WEB01)
    finally:
        winrm.close()
    assert [c.id for c in listed] == [created.id]
    assert listed[0].name == "CHG-0001 over HTTPS"
    # NTLM over TLS; the emulator's acceptor checks the binding to its certificate.
    assert {logon.protocol for logon in server.logons} == {"ntlm"}


def _failure(winrm: WinRMHost) -> HostAuthError:
    # A certificate the bot does not trust fails alike until a person fixes
    # the trust or the certificate: not a host that is down.
    try:
        with pytest.raises(HostAuthError) as caught:
            winrm.list_vms()
    finally:
        winrm.close()
    return caught.value


def test_wrong_ca_fails_with_one_line_naming_the_host(
    server: EmulatorServer, tmp_path: Path
) -> None:
    other = TestCA.create("Some Other CA").write(tmp_path / "other-ca.pem")
    error = _failure(host_for(server, ca_bundle=str(other)))
    message = str(error)
    assert "\n" not in message
    assert message.startswith("HV01: ")
    assert "certificate is not trusted" in message
    assert "set ca_bundle:" in message
    assert error.category == "SecurityError"
    assert server.logons == []  # nothing was authenticated: no credential went out


def test_system_trust_does_not_know_a_private_ca(server: EmulatorServer) -> None:
    message = str(_failure(host_for(server)))
    assert message.startswith("HV01: ") and "certificate is not trusted" in message
    assert "set ca_bundle:" in message and "\n" not in message


def test_certificate_for_another_name_fails_clearly(
    tmp_path: Path, ca: TestCA, clock: ManualClock
) -> None:
    emulator = _serve(tmp_path, ca, ["hv02.corp.example"], clock)
    try:
        winrm = host_for(emulator, ca_bundle=str(ca.write(tmp_path / "corp-ca.pem")))
        message = str(_failure(winrm))
    finally:
        emulator.stop()
    assert message.startswith("HV01: ") and "\n" not in message
    assert "not valid for this name" in message
    assert "set address:" in message
    assert "localhost" in message  # OpenSSL's detail names the name that was asked for


def test_an_expired_certificate_says_so(tmp_path: Path, ca: TestCA, clock: ManualClock) -> None:
    store = InMemoryHostStateStore()
    seed_missing(store, MODEL)
    cert, key = ca.issue(["localhost"], expired=True).write(
        tmp_path / "old.pem", tmp_path / "old.key"
    )
    emulator = EmulatorServer(
        ModelHost("HV01", store, clock),
        users={USER: PASSWORD},
        auth=("ntlm",),
        tls=TlsIdentity(certificate_pem=cert, key_pem=key),
    ).start()
    try:
        winrm = host_for(emulator, ca_bundle=str(ca.write(tmp_path / "corp-ca.pem")))
        message = str(_failure(winrm))
    finally:
        emulator.stop()
    assert message.startswith("HV01: ") and "\n" not in message
    assert "certificate has expired; renew it on the host" in message


def test_the_cli_says_one_line_and_exit_3_for_a_wrong_ca_then_works_with_the_right_one(
    tmp_path: Path, ca: TestCA
) -> None:
    """The emulated demo estate over HTTPS, the inventory `emulator
    --write-inventory --tls-cert ... --ca-bundle ...` writes, and the
    installed `checkpoint-bot` as an operator runs it."""
    cert, key = ca.issue(["localhost"]).write(tmp_path / "cert.pem", tmp_path / "key.pem")
    fleet = EmulatedFleet.start(
        InMemoryHostStateStore(),
        hosts=["HV01"],
        model=load_host_model(demo_hosts_path()),
        tls=TlsIdentity(certificate_pem=cert, key_pem=key),
    )
    try:
        ports = {name: server.port for name, server in fleet.servers.items()}
        env = {EMULATOR_PASSWORD_ENV: DEFAULT_USERS["hvadmin"]}
        config = tmp_path / "bot.yaml"
        config.write_text("inventory: inv.yaml\nhyperv: {backend: winrm}\n", encoding="utf-8")
        inventory = load_inventory(demo_inventory_path())

        def point(bundle: Path) -> None:
            (tmp_path / "inv.yaml").write_text(
                emulated_inventory(
                    inventory, ports, "hvadmin", EMULATOR_PASSWORD_ENV, tls=True, ca_bundle=bundle
                ),
                encoding="utf-8",
            )

        point(TestCA.create("Some Other CA").write(tmp_path / "other-ca.pem"))
        assert run(tmp_path, "--config", str(config), "db", "upgrade", env=env).returncode == 0
        refused = run(
            tmp_path, "--config", str(config), "checkpoint", "create", "WEB01", "-r", "x", env=env
        )
        assert refused.returncode == 3, refused.stderr
        line = one_line_error(refused)
        assert "HV01" in line and "certificate is not trusted" in line
        assert "set ca_bundle:" in line

        point(ca.write(tmp_path / "corp-ca.pem"))
        created = run(
            tmp_path, "--config", str(config), "checkpoint", "create", "WEB01", "-r", "tls",
            env=env,
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        assert "CHG-0001: active — WEB01 on HV01" in created.stdout
        held = [s.name for s in fleet.host("HV01").get_snapshots()]
        assert any(name.startswith("CHG-0001") for name in held), held
    finally:
        fleet.stop()


def test_emulator_cli_tls_options(tmp_path: Path, ca: TestCA) -> None:
    """`checkpoint-bot emulator --tls-cert ... --ca-bundle ... --write-inventory`
    serves HTTPS and writes hosts that validate against the CA; half an
    identity is a usage error (exit 2, one line)."""
    cert, key = ca.issue(["localhost"]).write(tmp_path / "cert.pem", tmp_path / "key.pem")
    bundle = ca.write(tmp_path / "ca.pem")
    half = run(tmp_path, "emulator", "--tls-cert", str(cert))
    assert half.returncode == 2
    assert "--tls-cert and --tls-key go together" in one_line_error(half)

    written = tmp_path / "inv.yaml"
    command = [
        str(BOT), "emulator", "--host", "HV01", "--port", "0", "--tls-cert", str(cert),
        "--tls-key", str(key), "--ca-bundle", str(bundle), "--write-inventory", str(written),
    ]  # fmt: skip
    with subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()  # printed once the listener is up
            assert line.startswith("HV01\thttps://127.0.0.1:"), line
            deadline = time.monotonic() + 60
            while not written.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.2)  # the file is written whole before the next line
            hv01 = next(h for h in load_inventory(written).hosts if h.name == "HV01")
            assert (hv01.address, hv01.transport.value) == ("localhost", "https")
            assert hv01.cert_validation is True and hv01.ca_bundle == bundle.resolve()
            winrm = WinRMHost(
                hv01,
                Credentials({EMULATOR_PASSWORD_ENV: "Passw0rd!"}).for_host(hv01),
                timeouts=WinRMTimeouts(call=8, connect=2, read=10, operation=2, idle=60),
            )
            try:
                assert any(vm.name == "WEB01" for vm in winrm.list_vms())
            finally:
                winrm.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


def test_a_certificate_that_does_not_hold_the_ip_address_says_so(
    tmp_path: Path, ca: TestCA, clock: ManualClock
) -> None:
    # Seen: `address: 127.0.0.1` against a certificate for localhost, with
    # the right ca_bundle, was told the certificate is not trusted and to
    # set ca_bundle. OpenSSL says "IP address mismatch".
    emulator = _serve(tmp_path, ca, ["localhost"], clock)
    try:
        winrm = host_for(
            emulator, address="127.0.0.1", ca_bundle=str(ca.write(tmp_path / "corp-ca.pem"))
        )
        message = str(_failure(winrm))
    finally:
        emulator.stop()
    assert message.startswith("HV01: ") and "\n" not in message
    assert "not valid for this IP address" in message
    assert "not trusted" not in message and "set ca_bundle" not in message
