"""Kerberos to a host, end to end, against a real MIT Kerberos KDC.

Each test makes a realm in its temp dir (tests/kerberos_support.py: Debian's
krb5kdc on a free loopback port, its own krb5.conf and kdc.conf), the
emulated host's service principal HTTP/localhost with a keytab the emulator
accepts with (pyspnego's acceptor), and a client principal for the bot. The
bot's WinRM client gets its ticket from the KDC the three ways an operator
can give it one: a client keytab named by KRB5_CLIENT_KTNAME, a ccache that
`kinit` filled named by KRB5CCNAME, or `keytab_file:` on the host's
credential; and then creates and lists a checkpoint. The emulator accepts
Kerberos only (Auth/Kerberos on, NTLM off) and records who logged on, so a
pass proves the ticket, not a fallback, authenticated the bot.

Skipped when the Kerberos tools or pyspnego's Kerberos support are missing,
except in CI, where that fails (`make test` installs both).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.clock import ManualClock
from bot.devtools.emulator import EmulatorServer, Logon, TlsIdentity
from bot.hyperv.errors import HostAuthError
from bot.hyperv.winrm.connect import Credentials
from bot.hyperv.winrm.host import WinRMHost
from bot.hyperv.winrm.pool import WinRMTimeouts
from bot.inventory import Inventory
from tests.cli_support import run
from tests.kerberos_support import (
    REALM,
    WEB01,
    KerberosRealm,
    isolated_realm,
    kerberos_deployment,
    kerberos_emulator,
)
from tests.tls_support import TestCA

BOT = "checkpoint-bot"
BOT_PRINCIPAL = f"{BOT}@{REALM}"
EXPECTED_CMDLETS = {"get-vm", "checkpoint-vm", "get-vmsnapshot", "select-object"}


@pytest.fixture
def realm(tmp_path: Path) -> Iterator[KerberosRealm]:
    with isolated_realm(tmp_path / "realm") as started:
        yield started


@pytest.fixture
def server(realm: KerberosRealm, clock: ManualClock) -> Iterator[EmulatorServer]:
    emulator = kerberos_emulator(realm.service_keytab("localhost"), clock)
    yield emulator
    emulator.stop()


def host_for(
    server: EmulatorServer, env: dict[str, str], *, transport: str = "http", **fields: object
) -> WinRMHost:
    spec = {
        "name": "HV01",
        # The name the ticket is asked for: HTTP/localhost, as HTTP/hv01.corp.example
        # would be for a real host.
        "address": "localhost",
        "transport": transport,
        "port": server.port,
        "auth": "kerberos",
        **fields,
    }
    host = Inventory.model_validate({"hosts": [spec], "vms": []}).host("HV01")
    timeouts = WinRMTimeouts(call=8, connect=2, read=10, operation=2, idle=300, stop_grace=1)
    return WinRMHost(host, Credentials(env).for_host(host), timeouts=timeouts)


def create_and_list(winrm: WinRMHost, name: str) -> None:
    try:
        created = winrm.create_checkpoint(WEB01, name)
        listed = winrm.list_checkpoints(WEB01)
    finally:
        winrm.close()
    assert [(c.id, c.name) for c in listed] == [(created.id, name)]


def assert_kerberos_logons(server: EmulatorServer) -> None:
    assert server.logons, "nobody logged on"
    assert set(server.logons) == {Logon(protocol="kerberos", principal=BOT_PRINCIPAL)}
    arrived = {entry.cmdlet.casefold() for entry in server.log.entries}
    assert arrived <= EXPECTED_CMDLETS and "checkpoint-vm" in arrived


@pytest.mark.parametrize("auth", ["kerberos", "negotiate"])
def test_client_keytab_from_krb5_client_ktname(
    realm: KerberosRealm, server: EmulatorServer, auth: str
) -> None:
    keytab = realm.client_keytab(BOT)
    winrm = host_for(server, {"KRB5_CLIENT_KTNAME": f"FILE:{keytab}"}, auth=auth)
    create_and_list(winrm, "CHG-0001 Kerberos from a keytab")
    # Over HTTP every message was sealed with the Kerberos session key.
    assert_kerberos_logons(server)


def test_kinit_ccache_from_krb5ccname(
    realm: KerberosRealm, server: EmulatorServer, tmp_path: Path
) -> None:
    ccache = tmp_path / "krb5cc_bot"
    realm.kinit(BOT, realm.client_keytab(BOT), ccache)
    winrm = host_for(server, {"KRB5CCNAME": f"FILE:{ccache}"})
    create_and_list(winrm, "CHG-0002 Kerberos from kinit")
    assert_kerberos_logons(server)


def test_keytab_file_on_the_hosts_credential(realm: KerberosRealm, server: EmulatorServer) -> None:
    keytab = realm.client_keytab(BOT)
    winrm = host_for(server, {}, credential={"username": BOT_PRINCIPAL, "keytab_file": str(keytab)})
    create_and_list(winrm, "CHG-0003 keytab_file")
    assert_kerberos_logons(server)


def test_kerberos_over_https_with_a_ca_bundle(
    realm: KerberosRealm, clock: ManualClock, tmp_path: Path
) -> None:
    ca = TestCA.create("Corp Test Root CA")
    cert, key = ca.issue(["localhost"]).write(tmp_path / "hv01.pem", tmp_path / "hv01.key")
    emulator = kerberos_emulator(
        realm.service_keytab("localhost"), clock, TlsIdentity(certificate_pem=cert, key_pem=key)
    )
    try:
        keytab = realm.client_keytab(BOT)
        winrm = host_for(
            emulator,
            {"KRB5_CLIENT_KTNAME": str(keytab)},
            transport="https",
            ca_bundle=str(ca.write(tmp_path / "ca.pem")),
        )
        # The ticket is bound to the listener's certificate (channel binding).
        create_and_list(winrm, "CHG-0004 Kerberos over HTTPS")
        assert_kerberos_logons(emulator)
    finally:
        emulator.stop()


def _auth_failure(winrm: WinRMHost) -> HostAuthError:
    try:
        with pytest.raises(HostAuthError) as caught:
            winrm.list_vms()
    finally:
        winrm.close()
    message = str(caught.value)
    assert message.startswith("HV01: ") and "\n" not in message
    return caught.value


def test_no_ticket_says_how_to_get_one(realm: KerberosRealm, server: EmulatorServer) -> None:
    message = str(_auth_failure(host_for(server, {})))
    assert "Kerberos authentication failed" in message
    assert "kinit" in message and "KRB5_CLIENT_KTNAME" in message
    assert server.logons == []


def test_unregistered_service_principal(realm: KerberosRealm, clock: ManualClock) -> None:
    # The host listens with keys for another name; the realm has no HTTP/localhost.
    emulator = kerberos_emulator(realm.service_keytab("hv02.corp.example"), clock)
    try:
        keytab = realm.client_keytab(BOT)
        message = str(_auth_failure(host_for(emulator, {"KRB5_CLIENT_KTNAME": str(keytab)})))
    finally:
        emulator.stop()
    assert "no service principal HTTP/localhost:" in message
    assert "HTTP/localhost" in message  # GSSAPI's own detail names the SPN asked for


def test_host_with_other_keys_rejects_the_ticket(
    realm: KerberosRealm, clock: ManualClock, tmp_path: Path
) -> None:
    # HTTP/localhost is registered, but the listener holds an older key version
    # (a re-keyed computer account whose keytab was not refreshed).
    stale = realm.service_keytab("localhost")
    stale_copy = tmp_path / "stale.keytab"
    stale_copy.write_bytes(stale.read_bytes())
    realm.rekey("HTTP/localhost", stale)
    emulator = kerberos_emulator(stale_copy, clock)
    try:
        keytab = realm.client_keytab(BOT)
        message = str(_auth_failure(host_for(emulator, {"KRB5_CLIENT_KTNAME": str(keytab)})))
    finally:
        emulator.stop()
    assert "rejected the credentials" in message
    assert emulator.logons == []


def test_a_kerberos_only_listener_refuses_ntlm(server: EmulatorServer) -> None:
    winrm = host_for(
        server,
        {"HV_PASSWORD": "Passw0rd!"},
        auth="ntlm",
        credential={"username": "hvadmin", "password_env": "HV_PASSWORD"},
    )
    _auth_failure(winrm)
    assert server.logons == []


def test_missing_keytab_is_named_before_connecting(
    realm: KerberosRealm, server: EmulatorServer, tmp_path: Path
) -> None:
    with pytest.raises(HostAuthError) as caught:
        host_for(server, {"KRB5_CLIENT_KTNAME": str(tmp_path / "nope.keytab")})
    message = str(caught.value)
    assert "nope.keytab does not exist" in message and "KRB5_CLIENT_KTNAME" in message


def test_without_the_kerberos_extra_the_error_says_what_to_install(tmp_path: Path) -> None:
    """A child interpreter that cannot import gssapi (as after a plain
    `pip install checkpoint-bot`) gets one line naming the extra."""
    script = textwrap.dedent(
        """
        import sys
        class Hide:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("gssapi", "krb5"):
                    raise ImportError(name)
                return None
        sys.meta_path.insert(0, Hide())
        from bot.hyperv.errors import HostAuthError
        from bot.hyperv.winrm.connect import Credentials, wsman_factory
        from bot.hyperv.winrm.pool import WinRMTimeouts
        from bot.inventory import Inventory
        host = Inventory.model_validate({"hosts": [{"name": "HV01",
            "address": "hv01.corp.example", "auth": "kerberos"}], "vms": []}).host("HV01")
        try:
            wsman_factory(host, Credentials({}).for_host(host), WinRMTimeouts())
        except HostAuthError as exc:
            print(exc)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "HV01: kerberos auth needs pyspnego's Kerberos support, which is not installed: "
        "pip install 'checkpoint-bot[kerberos]' (docs/connect-hosts.md)"
    )


def test_the_cli_authenticates_with_the_keytab_in_its_environment(
    realm: KerberosRealm, tmp_path: Path
) -> None:
    """The installed `checkpoint-bot`, as a service runs it: KRB5_CLIENT_KTNAME
    and KRB5_CONFIG in its environment, an inventory with `auth: kerberos`
    and no credential (what `emulator --keytab --write-inventory` writes)."""
    with kerberos_deployment(realm, tmp_path, hosts=["HV01"]) as (config, fleet):
        env = {
            **realm.env,
            "KRB5_CLIENT_KTNAME": f"FILE:{realm.client_keytab(BOT)}",
            "KRB5CCNAME": f"FILE:{tmp_path / 'empty-ccache'}",
        }
        assert run(tmp_path, "--config", str(config), "db", "upgrade", env=env).returncode == 0
        created = run(
            tmp_path, "--config", str(config), "checkpoint", "create", "WEB01", "-r", "krb",
            env=env,
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        assert "CHG-0001: active — WEB01 on HV01" in created.stdout
        assert set(fleet.server("HV01").logons) == {
            Logon(protocol="kerberos", principal=BOT_PRINCIPAL)
        }


def test_a_ticket_bound_to_another_certificate_is_refused(
    realm: KerberosRealm, clock: ManualClock, tmp_path: Path
) -> None:
    """A relay that terminates TLS with its own certificate and forwards the
    token: the binding the client computed (the relay's certificate) is not
    the host's, and the host's acceptor refuses the ticket."""
    ca = TestCA.create("Corp Test Root CA")
    relay = ca.issue(["localhost"]).write(tmp_path / "relay.pem", tmp_path / "relay.key")
    host_cert = ca.issue(["localhost"]).write(tmp_path / "host.pem", tmp_path / "host.key")
    emulator = kerberos_emulator(realm.service_keytab("localhost"), clock, TlsIdentity(*relay))
    # The listener the client reaches serves the relay's certificate; the acceptor
    # behind it expects the binding of the host's own.
    emulator.channel_bindings = TlsIdentity(*host_cert).channel_bindings()
    try:
        keytab = realm.client_keytab(BOT)
        winrm = host_for(
            emulator,
            {"KRB5_CLIENT_KTNAME": str(keytab)},
            transport="https",
            ca_bundle=str(ca.write(tmp_path / "ca.pem")),
        )
        assert "rejected the credentials" in str(_auth_failure(winrm))
    finally:
        emulator.stop()
    assert emulator.logons == []


def test_a_password_gets_a_ticket_and_a_wrong_one_is_never_shown(
    realm: KerberosRealm, server: EmulatorServer
) -> None:
    """`auth: kerberos` with `username` and `password_env`: pyspnego asks the KDC
    for a ticket with the password (no NTLM involved)."""
    password, wrong = "S3cret-ticket-pw", "Wr0ng-ticket-pw"
    realm.add_user(BOT, password)
    credential = {"username": BOT_PRINCIPAL, "password_env": "BOT_PASSWORD"}
    create_and_list(
        host_for(server, {"BOT_PASSWORD": password}, credential=credential),
        "CHG-0005 Kerberos with a password",
    )
    assert_kerberos_logons(server)
    error = _auth_failure(host_for(server, {"BOT_PASSWORD": wrong}, credential=credential))
    assert "Kerberos authentication failed" in str(error)
    assert "does not match the principal's keys" in str(error)
    assert wrong not in str(error) and wrong not in repr(error.__cause__)
