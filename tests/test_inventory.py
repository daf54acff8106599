"""bot.inventory: the demo estate, located errors, and safe name resolution."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.hyperv.types import CheckpointType
from bot.inventory import (
    FORBIDDEN_CHARACTERS,
    VM,
    AuthMethod,
    Host,
    InvalidName,
    Inventory,
    InventoryError,
    Role,
    Transport,
    UnknownHost,
    UnknownVM,
    demo_inventory_path,
    load_inventory,
    parse_inventory,
)
from bot.inventory.models import HostVolume
from bot.yamlio import YamlValidationError

DEMO_VMS = {
    "CORP-DC01", "CORP-DC02", "LAB-DC01", "SQL01", "SQL02", "EXCH01", "EXCH02", "FS01", "FS02",
    "FC-NODE1", "FC-NODE2", "WEB01", "WEB02", "APP01", "STG-WEB01", "STG-APP01", "REPL-APP01",
    "LEGACY01", "SAN-VM01",
}  # fmt: skip

# Line numbers below are counted in this text: keep it in step with the tests.
BASE = """\
hosts:
  - name: HV01
    address: hv01.corp.example
    credential:
      username_env: HYPERV_USERNAME
      password_env: HYPERV_PASSWORD
    volumes:
      - {path: 'D:\\', capacity_gb: 100, used_gb: 10}
  - name: HV02
    address: hv02.corp.example
    transport: http
vms:
  - name: WEB01
    vm_id: 8B3F6E1A-D9C2-4B07-A6E5-1F4D7C9B2E83
    host: HV01
  - name: APP01
    vm_id: '{2a7c9d4f-e613-4b8a-9d52-6b0e3f8a1c57}'
    host: hv02
    roles: [app]
"""


def problems(text: str) -> list[str]:
    with pytest.raises(InventoryError) as caught:
        parse_inventory(text, "inventory.yaml")
    return [str(p) for p in caught.value.problems]


@pytest.fixture
def demo() -> Inventory:
    return _demo()


# --- the demo estate --------------------------------------------------------


def test_demo_has_exactly_the_documented_estate(demo: Inventory) -> None:
    assert [h.name for h in demo.hosts] == ["HV01", "HV02", "HV03"]
    assert {vm.name for vm in demo.vms} == DEMO_VMS
    assert len(demo.vms) == 19
    assert len({vm.vm_id for vm in demo.vms}) == 19


def test_demo_hosts_are_reachable_over_https_with_references_only(demo: Inventory) -> None:
    for host in demo.hosts:
        assert host.address == f"{host.name.lower()}.corp.example"
        assert (host.transport, host.port, host.auth) == (
            Transport.HTTPS,
            5986,
            AuthMethod.NEGOTIATE,
        )
        assert host.credential is not None
        assert host.credential.username_env == "HYPERV_USERNAME"
        assert host.credential.password_env == "HYPERV_PASSWORD"
        assert host.volumes and host.host_group


def members_of(inventory: Inventory, app_group: str) -> list[VM]:
    wanted = app_group.casefold()
    return [vm for vm in inventory.vms if vm.app_group and vm.app_group.casefold() == wanted]


def volume_of(inventory: Inventory, vm: VM) -> HostVolume | None:
    # Its host's own volume, or its cluster's shared volume (docs/clusters.md).
    return inventory.volume_for(vm)


def test_demo_encodes_the_dangerous_workloads(demo: Inventory) -> None:
    corp_dcs = demo.dcs_in_domain("corp.example")
    assert [vm.name for vm in corp_dcs] == ["CORP-DC01", "CORP-DC02"]
    assert corp_dcs[0].host != corp_dcs[1].host
    assert [vm.name for vm in demo.dcs_in_domain("LAB.EXAMPLE.")] == ["LAB-DC01"]
    sql = members_of(demo, "sql-ag1")
    assert [vm.name for vm in sql] == ["SQL01", "SQL02"]
    assert all(vm.checkpoint_type is CheckpointType.ProductionOnly for vm in sql)
    assert {vm.name for vm in members_of(demo, "EXCH-DAG1")} == {"EXCH01", "EXCH02"}
    assert all(Role.DFSR_MEMBER in demo.vm(n).roles for n in ("FS01", "FS02"))
    assert all(demo.vm(n).disks.shared_vhdx for n in ("FC-NODE1", "FC-NODE2"))
    assert demo.vm("REPL-APP01").hyperv_replica
    assert demo.vm("LEGACY01").checkpoint_type is CheckpointType.Disabled
    assert demo.vm("SAN-VM01").disks.passthrough
    assert {demo.vm(n).tags["env"] for n in ("WEB01", "WEB02", "APP01", "REPL-APP01")} == {"prod"}
    assert {demo.vm(n).tags["env"] for n in ("STG-WEB01", "STG-APP01")} == {"staging"}


def test_demo_keeps_the_everyday_vms_healthy(demo: Inventory) -> None:
    for name in ("WEB01", "APP01"):
        vm = demo.vm(name)
        assert vm.roles in ([Role.WEB], [Role.APP])
        assert vm.checkpoint_type is CheckpointType.Production
        volume = volume_of(demo, vm)
        assert (
            volume is not None and (volume.capacity_gb - volume.used_gb) / volume.capacity_gb > 0.5
        )


def test_every_demo_vm_has_a_volume_on_its_host(demo: Inventory) -> None:
    for vm in demo.vms:
        assert volume_of(demo, vm) is not None, vm.name


def test_defaults_and_normalisation() -> None:
    inventory = parse_inventory(BASE, "inventory.yaml")
    hv01, hv02 = inventory.hosts
    assert (hv01.port, hv02.port) == (5986, 5985)
    assert hv01.cert_validation and hv01.auth is AuthMethod.NEGOTIATE
    web, app = inventory.vms
    assert web.vm_id == "8b3f6e1a-d9c2-4b07-a6e5-1f4d7c9b2e83"
    assert app.vm_id == "2a7c9d4f-e613-4b8a-9d52-6b0e3f8a1c57"
    assert web.volume == "D:\\"  # the host's first volume
    assert app.host == "HV02" and app.volume is None  # canonical host name; HV02 has none
    assert web.checkpoint_type is CheckpointType.Production
    assert inventory.vm_by_id("{8B3F6E1A-D9C2-4B07-A6E5-1F4D7C9B2E83}") is web
    assert [vm.name for vm in inventory.vms_on_host("hv02")] == ["APP01"]


def test_checkpoint_type_is_case_insensitive() -> None:
    text = BASE + "    checkpoint_type: productiononly\n"
    assert parse_inventory(text, "i.yaml").vms[1].checkpoint_type is CheckpointType.ProductionOnly


def test_models_can_be_built_in_python_and_are_checked() -> None:
    host = Host(name="HV01", address="hv01")
    vm = VM(name="WEB01", vm_id="8b3f6e1a-d9c2-4b07-a6e5-1f4d7c9b2e83", host="HV09")
    with pytest.raises(ValueError, match=r"vms\[0\]\.host: unknown host 'HV09'"):
        Inventory(hosts=[host], vms=[vm])


# --- errors with lines and fields ---------------------------------------------


def test_unknown_host() -> None:
    assert problems(BASE.replace("host: hv02", "host: HV9")) == [
        "inventory.yaml:18: vms[1].host: unknown host 'HV9' (expected one of: HV01, HV02)"
    ]


def test_bad_guid() -> None:
    text = BASE.replace("8B3F6E1A-D9C2-4B07-A6E5-1F4D7C9B2E83", "8b3f6e1a-d9c2")
    assert problems(text) == [
        "inventory.yaml:14: vms[0].vm_id: expected a GUID like "
        "3f2504e0-4f89-41d3-9a0c-0305e82c3301, got '8b3f6e1a-d9c2'"
    ]


def test_duplicate_vm_name_and_id() -> None:
    text = BASE + (
        "  - name: web01\n    vm_id: 8b3f6e1a-d9c2-4b07-a6e5-1f4d7c9b2e83\n    host: HV01\n"
    )
    assert problems(text) == [
        "inventory.yaml:20: vms[2].name: duplicate VM name (first defined on line 13)",
        "inventory.yaml:21: vms[2].vm_id: duplicate vm_id (first used on line 14)",
    ]


def test_duplicate_host_name() -> None:
    text = BASE.replace("name: HV02", "name: hv01")
    assert problems(text)[0] == (
        "inventory.yaml:9: hosts[1].name: duplicate host name (first defined on line 2)"
    )


def test_duplicate_key() -> None:
    assert problems(BASE + "    host: HV01\n") == [
        "inventory.yaml:20: duplicate key 'host' in vms[1] (first defined on line 18)"
    ]


def test_malformed_yaml() -> None:
    assert problems(BASE.replace("    host: HV01\n", "    host: HV01: x\n")) == [
        "inventory.yaml:15: could not parse YAML: mapping values are not allowed here"
    ]


def test_missing_required_field() -> None:
    text = BASE.replace("    address: hv02.corp.example\n", "")
    assert problems(text) == ["inventory.yaml:9: hosts[1].address: field required"]


def test_unknown_field() -> None:
    (problem,) = problems(BASE.replace("transport: http", "transprt: http"))
    assert problem.startswith(
        "inventory.yaml:11: hosts[1].transprt: unknown field 'transprt' "
        "(expected one of: name, address, transport, port, allow_basic, auth, credential,"
    )


def test_literal_password_is_refused_and_not_echoed() -> None:
    text = BASE.replace("password_env: HYPERV_PASSWORD", "password: hunter2")
    with pytest.raises(InventoryError) as caught:
        parse_inventory(text, "inventory.yaml")
    assert [str(p) for p in caught.value.problems] == [
        "inventory.yaml:6: hosts[0].credential.password: a literal password is not allowed "
        "in the inventory; use password_env (an environment variable's name) or "
        "password_file (a file's path)"
    ]
    assert "hunter2" not in repr(caught.value) and caught.value.__cause__ is None


def test_basic_auth_needs_opt_in() -> None:
    text = BASE.replace("    credential:", "    auth: basic\n    credential:")
    (problem,) = problems(text)
    assert problem.startswith("inventory.yaml:4: hosts[0].auth: basic auth sends the password")
    assert "allow_basic: true" in problem
    allowed = text.replace("    auth: basic", "    allow_basic: true\n    auth: basic")
    assert parse_inventory(allowed, "i.yaml").hosts[0].auth is AuthMethod.BASIC


FIELD_ERRORS = [
    ("capacity_gb: 100,", "capacity_gb: lots,",
     "8: hosts[0].volumes[0].capacity_gb: expected a number, got 'lots'"),
    ("used_gb: 10}", "used_gb: 500}",
     "8: hosts[0].volumes[0]: used_gb (500) is more than capacity_gb (100)"),
    ("transport: http", "transport: ftp",
     "11: hosts[1].transport: expected one of: https, http, got 'ftp'"),
    ("roles: [app]", "roles: [dc]",
     "19: vms[1].roles[0]: expected one of: domain_controller,"),
    ("roles: [app]", "roles: [domain_controller]",
     "19: vms[1].roles: a domain controller needs `domain:`"),
    ("    host: HV01\n", "    host: HV01\n    volume: 'F:'\n",
     "16: vms[0].volume: host HV01 has no volume 'F:\\' (expected one of: D:\\)"),
    ("    host: HV01\n", "    host: HV01\n    tags: {env: no}\n",
     "16: vms[0].tags.env: expected text, got false"),
    ("name: WEB01", "name: 'WEB;01'",
     "13: vms[0].name: name 'WEB;01' contains ';'"),
    ("password_env: HYPERV_PASSWORD", "password_env: my secret",
     "6: hosts[0].credential.password_env: is not the name of an environment variable"),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "expected"), FIELD_ERRORS)
def test_field_errors(old: str, new: str, expected: str) -> None:
    assert old in BASE
    (problem,) = problems(BASE.replace(old, new, 1))
    assert problem.startswith(f"inventory.yaml:{expected}")


def test_all_problems_reported_in_file_order() -> None:
    text = BASE.replace("capacity_gb: 100", "capacity_gb: x").replace("host: hv02", "hostt: 1")
    found = problems(text)
    assert [p.split(":")[1] for p in found] == ["8", "16", "18"]


def test_empty_and_non_mapping_files() -> None:
    assert problems("") == ["inventory.yaml: expected a mapping (key: value lines), got nothing"]
    assert problems("- a\n") == [
        "inventory.yaml:1: expected a mapping (key: value lines), got a list"
    ]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="the inventory file cannot be read"):
        load_inventory(tmp_path / "nope.yaml")


def test_inventory_error_is_a_yaml_validation_error() -> None:
    assert issubclass(InventoryError, YamlValidationError)


# --- name resolution ------------------------------------------------------------


def test_vm_lookup_is_case_insensitive(demo: Inventory) -> None:
    assert demo.vm("web01").name == "WEB01"
    assert demo.vm("Corp-Dc01").name == "CORP-DC01"
    assert demo.host("hv02").name == "HV02"


def test_unknown_vm_suggests_close_names(demo: Inventory) -> None:
    with pytest.raises(UnknownVM) as caught:
        demo.vm("WEB1")
    assert str(caught.value) == "no VM named 'WEB1' in the inventory; did you mean WEB01, WEB02?"
    assert caught.value.suggestions == ["WEB01", "WEB02"]
    with pytest.raises(UnknownVM, match=r"did you mean CORP-DC01, LAB-DC01\?"):
        demo.vm("dc01")
    with pytest.raises(UnknownVM) as nothing_close:
        demo.vm("zzzz")
    assert str(nothing_close.value) == "no VM named 'zzzz' in the inventory"


def test_unknown_host_and_id(demo: Inventory) -> None:
    with pytest.raises(
        UnknownHost, match=r"no host named 'HV1' in the inventory; did you mean HV01\?"
    ):
        demo.host("HV1")
    with pytest.raises(UnknownVM, match="no VM with id"):
        demo.vm_by_id("00000000-0000-0000-0000-000000000000")
    with pytest.raises(InvalidName, match="is not a VM id"):
        demo.vm_by_id("WEB01")


@pytest.mark.parametrize("char", sorted(FORBIDDEN_CHARACTERS | {"\n", "\r", "\x00", "\u2028"}))
def test_every_metacharacter_is_rejected(demo: Inventory, char: str) -> None:
    for name in (f"WEB01{char}", f"{char}WEB01", f"WEB{char}01"):
        with pytest.raises(InvalidName) as caught:
            demo.vm(name)
        assert "contains" in str(caught.value)
        with pytest.raises(InvalidName):
            demo.host(name)


@pytest.mark.parametrize("char", list("*?[];|$`&<>'\""))
def test_the_documented_set_is_forbidden(char: str) -> None:
    assert char in FORBIDDEN_CHARACTERS


def test_bad_character_is_named(demo: Inventory) -> None:
    with pytest.raises(InvalidName, match=r"contains '\*'"):
        demo.vm("WEB*")
    with pytest.raises(InvalidName, match="contains a newline"):
        demo.vm("WEB01\nStop-VM")


def test_length_and_emptiness(demo: Inventory) -> None:
    with pytest.raises(InvalidName, match="65 characters long; at most 64"):
        demo.vm("A" * 65)
    with pytest.raises(InvalidName, match="empty"):
        demo.vm("")
    with pytest.raises(UnknownVM):
        demo.vm("A" * 64)


@functools.cache
def _demo() -> Inventory:
    # Not a fixture: hypothesis runs many examples per test, and one load is enough.
    return load_inventory(demo_inventory_path())


@given(
    st.text(max_size=30),
    st.sampled_from(sorted(FORBIDDEN_CHARACTERS | {"\n", "\r"})),
    st.text(max_size=30),
)
def test_names_with_forbidden_characters_never_resolve(head: str, bad: str, tail: str) -> None:
    with pytest.raises(InvalidName):
        _demo().vm(head + bad + tail)


@given(st.text(max_size=80))
def test_lookup_raises_only_documented_errors(name: str) -> None:
    try:
        vm = _demo().vm(name)
    except (InvalidName, UnknownVM):
        return
    assert vm.name.casefold() == name.casefold()
    assert not set(name) & FORBIDDEN_CHARACTERS


@given(st.data())
def test_mangled_inventory_fails_only_with_inventory_error(data: st.DataObject) -> None:
    lines = BASE.splitlines(keepends=True)
    index = data.draw(st.integers(0, len(lines) - 1))
    replacement = data.draw(st.text(alphabet=" -:{}[]'\"\n#&*!|>x1", max_size=12))
    text = "".join(lines[:index]) + replacement + "".join(lines[index + 1 :])
    try:
        parse_inventory(text, "inventory.yaml")
    except InventoryError as exc:
        assert all(str(p).startswith("inventory.yaml") for p in exc.problems)
        assert exc.problems


@pytest.mark.parametrize(
    ("auth", "credential", "expected"),
    [
        ("ntlm", "", "ntlm auth needs username (or username_env) and password_env"),
        ("ntlm", "    credential: {username: u}\n", "ntlm auth needs username"),
        ("certificate", "", "certificate auth needs certificate_pem and certificate_key_pem"),
        ("kerberos", "    credential: {password_env: P}\n", "needs username or username_env"),
        ("kerberos", "", None),
        ("NTLM", "    credential: {username: u, password_file: /run/secrets/p}\n", None),
    ],
)
def test_credential_must_fit_the_auth_method(
    auth: str, credential: str, expected: str | None
) -> None:
    text = f"hosts:\n  - name: H\n    address: h\n    auth: {auth}\n{credential}vms: []\n"
    if expected is None:
        parse_inventory(text, "i.yaml")
        return
    with pytest.raises(InventoryError) as caught:
        parse_inventory(text, "i.yaml")
    assert f"hosts[0].credential: {expected}" in str(caught.value)
