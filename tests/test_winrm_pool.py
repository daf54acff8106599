"""WinRM connection plumbing without an emulator: credentials, WSMan options,
deadlines against a silent socket and a refused port, the fleet's fan-out."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from requests.utils import resolve_proxies

from bot.hyperv.errors import HostAuthError, HostTimeout, HostUnreachable, HyperVError
from bot.hyperv.fanout import ask_hosts
from bot.hyperv.winrm import commands
from bot.hyperv.winrm.connect import Credentials, HostCredential, wsman_factory, wsman_options
from bot.hyperv.winrm.host import WinRMFleet, WinRMHost
from bot.hyperv.winrm.pool import WinRMTimeouts, describe
from bot.inventory import Host, Inventory

VM_ID = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
PASSWORD = "S3cret-Passw0rd!"


def make_host(**overrides: object) -> Host:
    data: dict[str, object] = {
        "name": "HV01",
        "address": "127.0.0.1",
        "transport": "http",
        "port": 5985,
        "auth": "ntlm",
        "credential": {"username": "hvadmin", "password_env": "HV_PASSWORD"},
    }
    data.update(overrides)
    return Host.model_validate(data)


# -- credentials and options --------------------------------------------------------


def test_credentials_from_env_and_file(tmp_path: Path) -> None:
    creds = Credentials({"HV_PASSWORD": PASSWORD, "HV_USER": "svc"})
    resolved = creds.for_host(make_host())
    assert resolved.username == "hvadmin"
    assert resolved.password is not None and resolved.password.reveal() == PASSWORD
    assert PASSWORD not in repr(resolved)

    secret = tmp_path / "hv.pw"
    secret.write_text(PASSWORD + "\n", encoding="utf-8")
    host = make_host(credential={"username_env": "HV_USER", "password_file": str(secret)})
    from_file = creds.for_host(host)
    assert from_file.username == "svc"
    assert from_file.password is not None and from_file.password.reveal() == PASSWORD


def test_missing_secrets_are_auth_errors_without_values(tmp_path: Path) -> None:
    with pytest.raises(HostAuthError, match=r"\$HV_PASSWORD is not set"):
        Credentials({}).for_host(make_host())
    missing = make_host(credential={"username": "u", "password_file": str(tmp_path / "nope")})
    with pytest.raises(HostAuthError, match="the file password_file names does not exist"):
        Credentials({}).for_host(missing)


def test_wsman_options_https_default_basic_http_and_ca_bundle(tmp_path: Path) -> None:
    timeouts = WinRMTimeouts(call=10, connect=2, read=30, operation=20)
    https = Host.model_validate(
        {"name": "HV02", "address": "hv02.corp.example", "credential": {"username": "u"}}
    )
    options = wsman_options(https, HostCredential(username="u"), timeouts)
    assert options["ssl"] is True and options["port"] == 5986
    assert options["cert_validation"] is True and options["auth"] == "negotiate"
    assert options["reconnection_retries"] == 0
    assert "password" not in options

    bundle = tmp_path / "ca.pem"
    with_ca = https.model_copy(update={"ca_bundle": bundle})
    assert wsman_options(with_ca, HostCredential(), timeouts)["cert_validation"] == str(bundle)

    basic = make_host(auth="basic", allow_basic=True)
    assert wsman_options(basic, HostCredential(username="u"), timeouts)["encryption"] == "never"
    assert wsman_options(make_host(), HostCredential(username="u"), timeouts)["encryption"] == (
        "auto"
    )
    sneaky = make_host().model_copy(update={"auth": "basic"})  # bypasses the model check
    with pytest.raises(HostAuthError, match="allow_basic"):
        wsman_options(sneaky, HostCredential(username="u"), timeouts)


@pytest.mark.parametrize("auth", ["ntlm", "basic"])
def test_connection_reads_proxy_variables_once_and_uses_none(
    auth: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The session is built with the connection, and no longer reads the
    # environment per request: its answer was already pinned (no proxy).
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "")
    host = make_host(auth=auth, allow_basic=auth == "basic")
    creds = Credentials({"HV_PASSWORD": PASSWORD}).for_host(host)
    wsman = wsman_factory(host, creds, WinRMTimeouts())()
    session = wsman.transport.session
    assert session is not None and session.trust_env is False
    request = session.prepare_request(
        requests.Request("POST", wsman.transport.endpoint, data=b"<s:Envelope/>")
    )
    # What requests would have resolved per request with the environment on.
    assert resolve_proxies(request, session.proxies, True) == {"http": False}
    assert resolve_proxies(request, session.proxies, False) == {"http": False}


# -- deadlines against misbehaving servers ---------------------------------------------


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(timeout=2)
    for conn in held:
        conn.close()
    server.close()


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


def winrm_host(port: int, call: float) -> WinRMHost:
    host = make_host(port=port)
    creds = Credentials({"HV_PASSWORD": PASSWORD}).for_host(host)
    timeouts = WinRMTimeouts(call=call, connect=1, read=5, operation=2, stop_grace=0.5)
    return WinRMHost(host, creds, timeouts=timeouts)


def test_silent_host_times_out_within_the_deadline(silent_port: int) -> None:
    host = winrm_host(silent_port, call=1.5)
    started = time.monotonic()
    with pytest.raises(HostTimeout) as caught:
        host.list_vms()
    elapsed = time.monotonic() - started
    assert elapsed < 1.5 + 0.5 + 0.5, elapsed  # call + stop grace + slack
    assert PASSWORD not in str(caught.value)
    assert caught.value.host == "HV01"
    host.close()


def test_refused_connection_is_unreachable_at_once() -> None:
    host = winrm_host(closed_port(), call=5)
    started = time.monotonic()
    with pytest.raises(HostUnreachable) as caught:
        host.get_vm(VM_ID)
    assert time.monotonic() - started < 2
    assert PASSWORD not in str(caught.value)
    host.close()


def test_closed_host_refuses_calls() -> None:
    host = winrm_host(closed_port(), call=2)
    host.close()
    with pytest.raises(HyperVError, match="closed"):
        host.list_vms()


# -- fleet -------------------------------------------------------------------------------


def test_fleet_caches_hosts_and_reports_each_hosts_error() -> None:
    hosts = [
        make_host(name=f"HV{i:02d}", port=closed_port()).model_dump(mode="json") for i in range(5)
    ]
    hosts[0]["credential"] = {"username": "hvadmin", "password_env": "UNSET_PASSWORD"}
    inventory = Inventory.model_validate({"hosts": hosts})
    fleet = WinRMFleet(inventory, {"HV_PASSWORD": PASSWORD}, fanout=2, call_timeout=3)
    try:
        assert fleet.host("hv01") is fleet.host("HV01")
        names = [h.name for h in inventory.hosts]
        results = dict(ask_hosts(fleet.host, names, lambda h: h.list_checkpoints(), fanout=2))
        assert list(results) == [f"HV{i:02d}" for i in range(5)]
        assert isinstance(results["HV00"], HostAuthError)
        assert all(isinstance(results[f"HV{i:02d}"], HostUnreachable) for i in range(1, 5))
    finally:
        fleet.close()


# -- how a call is named in errors --------------------------------------------------------


def test_a_call_of_several_statements_is_named_by_its_cmdlets_not_as_one_pipeline() -> None:
    """Seen: "HVA could not be reached (Get-VM | Get-VM | Get-VMHardDiskDrive
    | Get-CimInstance | Get-VM | Get-VMSnapshot | Get-Volume on HVA: …)", a
    pipeline no one ran, for the one call that asks a decision's facts."""
    vm = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
    assert describe(commands.vm_facts(vm)) == (
        "Get-VM, Get-VMHardDiskDrive, Get-VMFibreChannelHba, Get-CimInstance, Get-VMSnapshot, "
        "Get-Volume"
    )
    assert describe(commands.create_checkpoint(vm, "cb-CHG-0001")) == "Get-VM | Checkpoint-VM"
    assert describe(commands.list_checkpoints(None)) == "Get-VM | Get-VMSnapshot"
