"""A password typed where the inventory wants the NAME of where it is
(`password_env`, `password_file`) is never printed back: not by the
inventory's check (exit 2, one line), not when the credential is read for a
host, not in -v logs. The real CLI, in-process, against an emulated host."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.devtools.emulator import EmulatedFleet
from bot.devtools.hostmodel import InMemoryHostStateStore, demo_hosts_path, load_host_model
from tests.cli_support import CliResult, invoke, one_line_error

INVENTORY = """\
hosts:
  - name: HV01
    address: 127.0.0.1
    port: {port}
    transport: http
    auth: ntlm
    credential: {{username: hvadmin, {field}: '{value}'}}
vms:
  - name: WEB01
    vm_id: 8b3f6e1a-d9c2-4b07-a6e5-1f4d7c9b2e83
    host: HV01
"""


@pytest.fixture
def port() -> Iterator[int]:
    fleet = EmulatedFleet.start(
        InMemoryHostStateStore(), hosts=["HV01"], model=load_host_model(demo_hosts_path())
    )
    try:
        yield fleet.port_of("HV01")
    finally:
        fleet.stop()


def _run(tmp_path: Path, port: int, field: str, value: str, *args: str) -> CliResult:
    (tmp_path / "inv.yaml").write_text(
        INVENTORY.format(port=port, field=field, value=value), encoding="utf-8"
    )
    config = tmp_path / "bot.yaml"
    config.write_text("inventory: inv.yaml\nhyperv: {backend: winrm}\n", encoding="utf-8")
    upgraded = invoke(tmp_path, "--config", str(config), "db", "upgrade")
    assert upgraded.returncode in (0, 2), upgraded.stderr
    return invoke(tmp_path, "-v", "--config", str(config), *args)


@pytest.mark.parametrize("password", ["Summer2026!", "p@ss word", "9lives"])
def test_a_password_in_password_env_is_refused_without_echo(
    tmp_path: Path, port: int, password: str
) -> None:
    result = _run(tmp_path, port, "password_env", password, "inventory", "show")
    assert result.returncode == 2
    line = one_line_error(result)
    assert "hosts[0].credential.password_env" in line
    assert "not the name of an environment variable" in line
    assert "not shown" in line
    assert password not in result.stdout + result.stderr


def test_a_password_shaped_like_a_name_is_not_echoed_when_unset(tmp_path: Path, port: int) -> None:
    secret = "S3cretPassw0rd"
    result = _run(tmp_path, port, "password_env", secret, "checkpoint", "list", "--host", "HV01")
    said = result.stdout + result.stderr
    assert result.returncode == 3, said
    assert "Traceback" not in said
    assert "HV01 could not be logged in to" in said
    assert "password_env" in said and "is not set" in said
    assert secret not in said


def test_a_password_in_password_file_is_not_echoed(tmp_path: Path, port: int) -> None:
    secret = "S3cretPassw0rd"
    result = _run(tmp_path, port, "password_file", secret, "checkpoint", "list", "--host", "HV01")
    said = result.stdout + result.stderr
    assert result.returncode == 3, said
    assert "Traceback" not in said
    assert "the file password_file names does not exist" in said
    assert "does not look like a path" in said
    assert secret not in said


def test_an_unset_conventional_name_is_still_named(tmp_path: Path, port: int) -> None:
    result = _run(
        tmp_path, port, "password_env", "HV_PASSWORD", "checkpoint", "list", "--host", "HV01"
    )
    said = result.stdout + result.stderr
    assert result.returncode == 3, said
    assert "$HV_PASSWORD is not set" in said
