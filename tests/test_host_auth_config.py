"""How a host's authentication is configured: what the inventory accepts,
refuses (credssp, kerberos to an IP address) and what the operator is told,
and what the client is given (the SPN's service class, the credential)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from bot.hyperv.errors import HostAuthError
from bot.hyperv.winrm.connect import Credentials, wsman_factory, wsman_options
from bot.hyperv.winrm.pool import WinRMTimeouts
from bot.inventory import Inventory, load_inventory
from bot.inventory.models import CREDSSP_REFUSED
from tests.cli_support import invoke, one_line_error
from tests.tls_support import TestCA


def _host(**fields: Any) -> Any:
    spec = {"name": "HV01", "address": "hv01.corp.example", **fields}
    return Inventory.model_validate({"hosts": [spec], "vms": []}).host("HV01")


def test_credssp_is_refused_with_what_to_use_instead() -> None:
    with pytest.raises(ValidationError) as caught:
        _host(auth="CredSSP", credential={"username": "u", "password_env": "P"})
    message = str(caught.value)
    assert "credssp is not supported" in message
    assert "delegates" in message and "use kerberos" in message


def test_credssp_in_an_inventory_file_is_one_line_on_the_cli(tmp_path: Path) -> None:
    (tmp_path / "inv.yaml").write_text(
        "hosts:\n"
        "  - name: HV01\n"
        "    address: hv01.corp.example\n"
        "    auth: credssp\n"
        "    credential: {username: svc, password_env: HV_PASSWORD}\n"
        "vms: []\n",
        encoding="utf-8",
    )
    (tmp_path / "bot.yaml").write_text(
        "inventory: inv.yaml\nhyperv: {backend: winrm}\n", encoding="utf-8"
    )
    result = invoke(tmp_path, "--config", str(tmp_path / "bot.yaml"), "inventory", "show")
    assert result.returncode == 2
    line = one_line_error(result)
    assert "inv.yaml:4" in line and CREDSSP_REFUSED in line


def test_kerberos_needs_a_name_not_an_ip_address() -> None:
    with pytest.raises(ValidationError) as caught:
        _host(address="10.0.0.5", auth="kerberos")
    assert "kerberos auth needs the host's DNS name" in str(caught.value)
    assert "HTTP/<name>" in str(caught.value)
    _host(address="10.0.0.5", auth="negotiate")  # may fall back to NTLM, as Windows does


def test_keytab_file_is_for_kerberos_only() -> None:
    with pytest.raises(ValidationError, match="keytab_file is for kerberos auth, not ntlm"):
        _host(auth="ntlm", credential={"username": "u", "keytab_file": "/k"})
    with pytest.raises(ValidationError, match="keytab_file or a password, not both"):
        _host(auth="kerberos", credential={"keytab_file": "/k", "password_env": "P"})
    host = _host(auth="kerberos", credential={"keytab_file": "/etc/bot.keytab"})
    assert Credentials({}).for_host(host).keytab == Path("/etc/bot.keytab")


def test_kerberos_asks_for_the_http_service_principal() -> None:
    options = wsman_options(
        _host(auth="kerberos"), Credentials({}).for_host(_host()), WinRMTimeouts()
    )
    assert options["negotiate_service"] == "HTTP"
    assert options["server"] == "hv01.corp.example"
    assert options["cert_validation"] is True and options["ssl"] is True


def test_credentials_come_from_the_environment_handed_in(tmp_path: Path) -> None:
    host = _host(auth="kerberos")
    keytab = tmp_path / "bot.keytab"
    keytab.write_bytes(b"\x05\x02")
    assert Credentials({"KRB5_CLIENT_KTNAME": f"FILE:{keytab}"}).for_host(host).keytab == keytab
    from_ccache = Credentials({"KRB5CCNAME": "FILE:/tmp/krb5cc_bot"}).for_host(host)
    assert from_ccache.ccache == "FILE:/tmp/krb5cc_bot" and from_ccache.keytab is None
    assert Credentials({}).for_host(host).keytab is None


def test_a_missing_keytab_is_named_before_any_connection(tmp_path: Path) -> None:
    host = _host(auth="kerberos", credential={"keytab_file": str(tmp_path / "gone.keytab")})
    with pytest.raises(HostAuthError) as caught:
        wsman_factory(host, Credentials({}).for_host(host), WinRMTimeouts())
    message = str(caught.value)
    assert message.startswith("HV01: ") and "gone.keytab does not exist" in message
    assert "keytab_file" in message


def test_a_missing_ca_bundle_is_one_line_not_an_oserror(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"corp-ca\.pem does not exist"):
        _host(auth="kerberos", ca_bundle=str(tmp_path / "corp-ca.pem"))
    # One gone since the inventory was read (or a Host built in code).
    host = _host(auth="kerberos").model_copy(update={"ca_bundle": tmp_path / "corp-ca.pem"})
    with pytest.raises(HostAuthError) as caught:
        wsman_factory(host, Credentials({}).for_host(host), WinRMTimeouts())
    message = str(caught.value)
    assert message.startswith("HV01: ca_bundle ") and "corp-ca.pem does not exist" in message
    assert "name the PEM file of the CA" in message


def test_a_group_shares_its_settings_through_a_yaml_anchor(tmp_path: Path) -> None:
    """docs/connect-hosts.md, "Settings for a group of hosts"."""
    # The bundle must be a PEM file of certificates: the inventory checks it.
    bundle = TestCA.create("Corp Root CA").write(tmp_path / "corp-root-ca.pem")
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "hosts:\n"
        "  - &prod-host\n"
        "    name: HV01\n"
        "    address: hv01.corp.example\n"
        "    host_group: prod-cluster\n"
        "    auth: kerberos\n"
        f"    ca_bundle: {bundle}\n"
        "    credential: {keytab_file: /etc/checkpoint-bot/bot.keytab}\n"
        "  - <<: *prod-host\n"
        "    name: HV02\n"
        "    address: hv02.corp.example\n"
        "vms: []\n",
        encoding="utf-8",
    )
    hv01, hv02 = load_inventory(inventory).hosts
    assert (hv02.name, hv02.address) == ("HV02", "hv02.corp.example")
    for host in (hv01, hv02):
        assert host.ca_bundle == bundle
        assert host.auth == "kerberos" and host.host_group == "prod-cluster"
        assert Credentials({}).for_host(host).keytab == Path("/etc/checkpoint-bot/bot.keytab")
