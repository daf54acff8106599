"""Kerberos failures in the words an operator acts on, against a real MIT
KDC (tests/kerberos_support.py) and the emulator accepting Kerberos only.

Seen 2026-12-06 (docs/connect-hosts.md promises "one line with GSSAPI's own
reason and a hint"):

- a KDC that does not answer (a domain controller rebooting for patching)
  was reported as a bad credential: "trying again will not help until the
  credential is fixed", and `checkpoint list` said "could not be logged in
  to". It is transient: the host could not be reached through it;
- a krb5.conf without the realm under [realms] said "Cannot find KDC for
  realm "CHECKPOINT.TEST" -1765328230", with no hint and a raw code;
- KRB5CCNAME naming a cache that does not exist said "No credentials cache
  found", with no hint;
- `keytab_file` with a principal of another realm said "Keytab contains no
  suitable keys for checkpoint-bot@CORP.EXAMPLE -1765328203".

Skipped without the Kerberos tools, except in CI (as tests/test_winrm_kerberos.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.clock import ManualClock
from bot.devtools.emulator import EmulatorServer
from bot.hyperv.errors import HostAuthError, HostUnreachable, HyperVError
from bot.hyperv.winrm.connect import Credentials
from bot.hyperv.winrm.host import WinRMHost
from bot.hyperv.winrm.pool import WinRMTimeouts
from bot.inventory import Inventory
from tests.cli_support import one_line_error, run
from tests.helpers import refused_port
from tests.kerberos_support import (
    REALM,
    KerberosRealm,
    isolated_realm,
    kerberos_deployment,
    kerberos_emulator,
)

BOT = "checkpoint-bot"
# MIT krb5's error codes, as the `krb5` package appends them to its messages.
RAW_CODE = re.compile(r"-17653\d{5}")


@pytest.fixture
def realm(tmp_path: Path) -> Iterator[KerberosRealm]:
    with isolated_realm(tmp_path / "realm") as started:
        yield started


@pytest.fixture
def server(realm: KerberosRealm, clock: ManualClock) -> Iterator[EmulatorServer]:
    emulator = kerberos_emulator(realm.service_keytab("localhost"), clock)
    yield emulator
    emulator.stop()


def _kdc_down_config(realm: KerberosRealm, tmp_path: Path) -> tuple[Path, int]:
    """The realm's krb5.conf with its KDC on a port nothing listens on."""
    port = refused_port()
    text = (realm.root / "krb5.conf").read_text(encoding="utf-8")
    down = tmp_path / "kdc-down.conf"
    down.write_text(text.replace(f"127.0.0.1:{realm.port}", f"127.0.0.1:{port}"), "utf-8")
    return down, port


def _kdc_said(port: int) -> str:
    return (
        "Kerberos KDC could not be reached: "
        f"no KDC of realm {REALM} answered (kdc 127.0.0.1:{port})"
    )


def _failure(server: EmulatorServer, env: dict[str, str], **fields: object) -> HyperVError:
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
    winrm = WinRMHost(host, Credentials(env).for_host(host), timeouts=timeouts)
    try:
        with pytest.raises(HyperVError) as caught:
            winrm.list_vms()
    finally:
        winrm.close()
    message = str(caught.value)
    assert message.startswith("HV01: ") and "\n" not in message
    assert not RAW_CODE.search(message), message
    assert server.logons == []
    return caught.value


# --- the KDC does not answer: the host could not be reached, for now -----------


def test_a_kdc_that_does_not_answer_is_transient_not_a_credential(
    realm: KerberosRealm,
    server: EmulatorServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keytab = realm.client_keytab(BOT)
    down, port = _kdc_down_config(realm, tmp_path)
    monkeypatch.setenv("KRB5_CONFIG", str(down))
    for env, fields in (
        ({"KRB5_CLIENT_KTNAME": str(keytab)}, {}),
        ({}, {"credential": {"username": BOT, "keytab_file": str(keytab)}}),
    ):
        error = _failure(server, env, **fields)
        assert isinstance(error, HostUnreachable), error
        assert not isinstance(error, HostAuthError)
        message = str(error)
        assert _kdc_said(port) in message
        assert "try again" in message
        # GSSAPI's own words, without the library's error code.
        assert f"Cannot contact any KDC for realm '{REALM}'" in message


def test_the_cli_says_the_kdc_could_not_be_reached_and_to_try_again(
    realm: KerberosRealm, tmp_path: Path
) -> None:
    """`checkpoint create` and `checkpoint list` as a service runs them (the
    installed script, KRB5_CONFIG and KRB5_CLIENT_KTNAME in its environment)
    while the realm's KDC is down: exit 3 (unreachable), nothing decided,
    and "could not be reached", never "could not be logged in to"."""
    with kerberos_deployment(realm, tmp_path) as (config, _fleet):
        down, port = _kdc_down_config(realm, tmp_path)
        env = {
            "KRB5_CONFIG": str(down),
            "KRB5_CLIENT_KTNAME": f"FILE:{realm.client_keytab(BOT)}",
            "KRB5CCNAME": f"FILE:{tmp_path / 'empty-ccache'}",
            "CHECKPOINT_BOT_SOCKET": "off",
        }
        assert run(tmp_path, "-c", str(config), "db", "upgrade", env=env).returncode == 0
        kdc = _kdc_said(port)

        create = ("checkpoint", "create", "STG-APP01", "-r", "x")
        created = run(tmp_path, "-c", str(config), *create, env=env)
        assert created.returncode == 3, created.stdout + created.stderr
        line = one_line_error(created)
        assert line.startswith(
            "checkpoint-bot: error: could not check STG-APP01: HV03 could not be reached ("
        )
        assert kdc in line and "try again" in line
        assert "credential" not in line and "logged in" not in line
        assert not RAW_CODE.search(line)
        assert "REFUSED" not in created.stdout

        listed = run(tmp_path, "-c", str(config), "checkpoint", "list", env=env)
        assert listed.returncode == 3, listed.stdout + listed.stderr
        assert "logged in" not in listed.stdout + listed.stderr
        assert one_line_error(listed) == (
            "checkpoint-bot: error: HV01, HV02, HV03 could not be reached: no host answered, "
            "so no checkpoint could be listed"
        )
        assert "! HV03 could not be reached: " in listed.stdout, listed.stdout
        assert kdc in listed.stdout
        as_json = run(tmp_path, "-c", str(config), "checkpoint", "list", "--json", env=env)
        assert as_json.returncode == 3
        problems = json.loads(as_json.stdout)["unreachable"]
        assert [p["login_failed"] for p in problems] == [False, False, False]


# --- configuration and credential mistakes: a hint naming what to fix ----------


def test_a_realm_krb5_conf_does_not_list_says_where_to_add_it(
    realm: KerberosRealm, server: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (realm.root / "krb5.conf").read_text(encoding="utf-8")
    bare = tmp_path / "no-realms.conf"
    bare.write_text(text[: text.index("[realms]")], encoding="utf-8")
    monkeypatch.setenv("KRB5_CONFIG", str(bare))
    error = _failure(server, {"KRB5_CLIENT_KTNAME": str(realm.client_keytab(BOT))})
    assert isinstance(error, HostAuthError)  # it stays so until krb5.conf is fixed
    message = str(error)
    assert f"krb5.conf names no KDC for realm {REALM}: add it under [realms]" in message
    assert f'(Cannot find KDC for realm "{REALM}")' in message


def test_a_missing_credentials_cache_says_to_run_kinit(
    realm: KerberosRealm, server: EmulatorServer, tmp_path: Path
) -> None:
    error = _failure(server, {"KRB5CCNAME": f"FILE:{tmp_path / 'none.cc'}"})
    assert isinstance(error, HostAuthError)
    message = str(error)
    assert "the credentials cache KRB5CCNAME names does not exist" in message
    assert "kinit" in message and "(No credentials cache found)" in message


def test_a_keytab_without_the_principals_keys_says_to_check_the_name(
    realm: KerberosRealm, server: EmulatorServer
) -> None:
    keytab = realm.client_keytab(BOT)
    credential = {"username": f"{BOT}@CORP.EXAMPLE", "keytab_file": str(keytab)}
    error = _failure(server, {}, credential=credential)
    assert isinstance(error, HostAuthError)
    message = str(error)
    assert "the keytab holds no keys for this principal" in message
    assert "klist -k" in message
    assert f"(Keytab contains no suitable keys for {BOT}@CORP.EXAMPLE)" in message
