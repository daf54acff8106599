"""Kerberos failures the bot can tell from here are said in words, one line,
with what to do and without MIT's numeric codes: a keytab that is a
directory, a file that is not a keytab, a ccache that holds a ticket for
another principal than `username:`. Against a real MIT realm and the
Kerberos-only emulator (tests/kerberos_support.py)."""

from __future__ import annotations

import re
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
from tests.kerberos_support import REALM, KerberosRealm, isolated_realm, kerberos_emulator

BOT_PRINCIPAL = f"checkpoint-bot@{REALM}"


@pytest.fixture
def realm(tmp_path: Path) -> Iterator[KerberosRealm]:
    with isolated_realm(tmp_path / "realm") as started:
        yield started


@pytest.fixture
def server(realm: KerberosRealm, clock: ManualClock) -> Iterator[EmulatorServer]:
    emulator = kerberos_emulator(realm.service_keytab("localhost"), clock)
    yield emulator
    emulator.stop()


def _said(server: EmulatorServer, env: dict[str, str], **fields: object) -> str:
    """The one line the bot gives, whether it is raised before connecting
    or by the handshake."""
    spec = {
        "name": "HV01",
        "address": "localhost",
        "transport": "http",
        "port": server.port,
        "auth": "kerberos",
        **fields,
    }
    host = Inventory.model_validate({"hosts": [spec], "vms": []}).host("HV01")
    timeouts = WinRMTimeouts(call=8, connect=2, read=10, operation=2, idle=300, stop_grace=1)
    with pytest.raises(HostAuthError) as caught:
        winrm = WinRMHost(host, Credentials(env).for_host(host), timeouts=timeouts)
        try:
            winrm.list_vms()
        finally:
            winrm.close()
    message = str(caught.value)
    assert message.startswith("HV01: ") and "\n" not in message
    assert not re.search(r"\s-?\d+\)?$", message), message  # no MIT/errno code at the end
    assert server.logons == []
    return message


@pytest.mark.parametrize("where", ["KRB5_CLIENT_KTNAME", "keytab_file"])
def test_a_keytab_that_is_a_directory(server: EmulatorServer, tmp_path: Path, where: str) -> None:
    folder = tmp_path / "keytabs"
    folder.mkdir()
    if where == "keytab_file":
        message = _said(
            server, {}, credential={"username": BOT_PRINCIPAL, "keytab_file": str(folder)}
        )
    else:
        message = _said(server, {"KRB5_CLIENT_KTNAME": f"FILE:{folder}"})
    assert "keytabs is a directory" in message, message
    assert "Is a directory 21" not in message
    assert where in message and "keytab file" in message


def test_a_file_that_is_not_a_keytab(server: EmulatorServer, tmp_path: Path) -> None:
    text = tmp_path / "bot.keytab"
    text.write_text("checkpoint-bot@CHECKPOINT.TEST password\n", encoding="utf-8")
    message = _said(server, {}, credential={"username": BOT_PRINCIPAL, "keytab_file": str(text)})
    assert "bot.keytab is not a keytab" in message, message
    assert "ktutil" in message or "ktpass" in message


def test_a_ccache_for_another_principal_names_both(
    realm: KerberosRealm, server: EmulatorServer, tmp_path: Path
) -> None:
    ccache = tmp_path / "krb5cc_bot"
    realm.kinit("checkpoint-bot", realm.client_keytab("checkpoint-bot"), ccache)
    message = _said(server, {"KRB5CCNAME": f"FILE:{ccache}"}, credential={"username": "alice"})
    assert BOT_PRINCIPAL in message, message
    assert f"alice@{REALM}" in message
    assert "kinit" in message
