"""An IP address is refused for `auth: kerberos` at load in every form a
resolver takes (README: "an IP address with auth: kerberos is refused at load
time"), and a Kerberos failure for an SPN names the SPN it asked for; for an
address that is an IP, it says Kerberos needs the host's DNS name instead of
asking for a `setspn` for the IP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.clock import ManualClock
from bot.devtools.emulator import EmulatorServer
from bot.hyperv.errors import HostAuthError
from bot.hyperv.winrm.connect import Credentials
from bot.hyperv.winrm.host import WinRMHost
from bot.hyperv.winrm.pool import WinRMTimeouts
from bot.inventory import Inventory
from tests.cli_support import invoke, one_line_error
from tests.kerberos_support import REALM, KerberosRealm, isolated_realm, kerberos_emulator

BOT_PRINCIPAL = f"checkpoint-bot@{REALM}"


@pytest.mark.parametrize(
    ("address", "canonical"),
    [
        ("127.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("10.5", "10.0.0.5"),
        ("127.0.0.1", "127.0.0.1"),
    ],
)
def test_every_form_of_an_ip_address_is_refused_at_load(
    tmp_path: Path, address: str, canonical: str
) -> None:
    (tmp_path / "inv.yaml").write_text(
        f"hosts:\n  - name: HV01\n    address: '{address}'\n    auth: kerberos\nvms: []\n",
        encoding="utf-8",
    )
    (tmp_path / "bot.yaml").write_text(
        "inventory: inv.yaml\nhyperv: {backend: winrm}\n", encoding="utf-8"
    )
    result = invoke(tmp_path, "--config", str(tmp_path / "bot.yaml"), "inventory", "show")
    assert result.returncode == 2, result.stderr
    line = one_line_error(result)
    assert "inv.yaml:2" in line and "kerberos auth needs the host's DNS name" in line
    assert canonical in line


@pytest.mark.parametrize("address", ["hv01.corp.example", "hv01", "deadbeef", "a1.b2", "0x"])
def test_names_are_still_names(address: str) -> None:
    spec = {"name": "HV01", "address": address, "auth": "kerberos"}
    assert Inventory.model_validate({"hosts": [spec], "vms": []}).host("HV01").address == address


@pytest.fixture
def realm(tmp_path: Path) -> Iterator[KerberosRealm]:
    with isolated_realm(tmp_path / "realm") as started:
        yield started


def _failure(server: EmulatorServer, address: str, keytab: Path, auth: str) -> str:
    spec = {
        "name": "HV01",
        "address": address,
        "transport": "http",
        "port": server.port,
        "auth": auth,
    }
    host = Inventory.model_validate({"hosts": [spec], "vms": []}).host("HV01")
    timeouts = WinRMTimeouts(call=8, connect=2, read=10, operation=2, idle=300, stop_grace=1)
    winrm = WinRMHost(
        host, Credentials({"KRB5_CLIENT_KTNAME": str(keytab)}).for_host(host), timeouts=timeouts
    )
    try:
        with pytest.raises(HostAuthError) as caught:
            winrm.list_vms()
    finally:
        winrm.close()
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_negotiate_to_an_ip_address_says_kerberos_needs_a_name(
    realm: KerberosRealm, clock: ManualClock
) -> None:
    emulator = kerberos_emulator(realm.service_keytab("localhost"), clock)
    try:
        message = _failure(
            emulator, "127.0.0.1", realm.client_keytab("checkpoint-bot"), "negotiate"
        )
    finally:
        emulator.stop()
    assert "Kerberos needs the host's DNS name" in message, message
    assert "HTTP/127.0.0.1" in message
    assert "setspn" not in message and "<address>" not in message


def test_an_unregistered_spn_is_named_in_the_hint(realm: KerberosRealm, clock: ManualClock) -> None:
    emulator = kerberos_emulator(realm.service_keytab("hv02.corp.example"), clock)
    try:
        message = _failure(emulator, "localhost", realm.client_keytab("checkpoint-bot"), "kerberos")
    finally:
        emulator.stop()
    assert "the realm has no service principal HTTP/localhost:" in message, message
    assert "setspn -S HTTP/localhost" in message
    assert "<address>" not in message
