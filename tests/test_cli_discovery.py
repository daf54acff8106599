"""`inventory discover` and `inventory diff` as an operator runs them: the
installed console script in a fresh directory (demo mode: the real WinRM
client on the simulated demo hosts), and against a real WinRM host that does
not answer."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from bot.inventory import demo_inventory_path, load_inventory
from bot.inventory.yamledit import Layout, dump_document, load_document
from tests.cli_support import invoke, one_line_error
from tests.test_production_install import Production, production

__all__ = ["production"]  # the fixture, used by name


def test_help_says_what_each_command_does(tmp_path: Path) -> None:
    for command, options in (
        ("discover", ("--host", "--group", "--out", "--merge", "--json")),
        ("diff", ("--host", "--group", "--json")),
    ):
        result = invoke(tmp_path, "inventory", command, "--help")
        assert result.returncode == 0
        for option in options:
            assert option in result.stdout


def test_discover_writes_an_inventory_of_the_demo_estate(tmp_path: Path) -> None:
    out = tmp_path / "discovered.yaml"
    result = invoke(tmp_path, "inventory", "discover", "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["counts"]["added"] == report["counts"]["found"] == 19
    assert report["answered"] == ["HV01", "HV02", "HV03"]
    assert len(report["unknown_roles"]) == 19
    written = load_inventory(out)
    demo = load_inventory(demo_inventory_path())
    assert {vm.vm_id for vm in written.vms} == {vm.vm_id for vm in demo.vms}
    assert written.vm("LAB-DC01").is_domain_controller
    assert written.vm("LAB-DC01").domain == "lab.example"
    (tmp_path / "bot.yaml").write_text(
        f"inventory: discovered.yaml\ndatabase_url: 'sqlite:///{tmp_path / 'show.db'}'\n"
        "hyperv: {backend: simulator}\n",
        encoding="utf-8",
    )
    assert invoke(tmp_path, "-c", "bot.yaml", "db", "upgrade").returncode == 0
    shown = invoke(tmp_path, "-c", "bot.yaml", "inventory", "show")
    assert "Roles unknown — tag these (19): " in shown.stdout
    # The hosts section is the config's, comments included.
    assert "# A standalone host for staging" in out.read_text(encoding="utf-8")


def test_diff_of_the_demo_inventory_changes_nothing(tmp_path: Path) -> None:
    result = invoke(tmp_path, "inventory", "diff")
    assert result.returncode == 0, result.stderr
    assert "19 VMs on HV01, HV02, HV03" in result.stdout
    assert "Nothing to change." in result.stdout


def test_merge_marks_a_vm_no_host_has_and_keeps_the_file_otherwise(tmp_path: Path) -> None:
    target = tmp_path / "inventory.yaml"
    shutil.copy(demo_inventory_path(), target)
    text = target.read_text(encoding="utf-8")
    text += (
        "\n  # Retired last spring, kept for the audit trail.\n"
        "  - name: OLD-APP09\n"
        "    vm_id: 0f0f0f0f-1111-4222-8333-444455556666\n"
        "    host: HV02\n"
        "    roles: [app]   # hand-set\n"
        "    tags: {env: prod}\n"
    )
    target.write_text(text, encoding="utf-8")
    diff = invoke(tmp_path, "inventory", "diff", str(target), "--json")
    assert diff.returncode == 0, diff.stderr
    assert json.loads(diff.stdout)["counts"]["missing"] == 1
    assert target.read_text(encoding="utf-8") == text  # diff writes nothing

    merged = invoke(tmp_path, "inventory", "discover", "--merge", str(target))
    assert merged.returncode == 0, merged.stderr
    assert "Marked missing (1):" in merged.stdout and "OLD-APP09" in merged.stdout
    after = target.read_text(encoding="utf-8")
    assert "# Retired last spring, kept for the audit trail." in after
    assert "roles: [app]   # hand-set" in after
    old = load_inventory(target).vm("OLD-APP09")
    assert old.missing_since is not None
    # Everything else is as it was, byte for byte.
    kept = [ln for ln in after.splitlines(keepends=True) if "missing_since:" not in ln]
    assert "".join(kept) == text
    # `inventory show` on the merged file says which VM no host has.
    (tmp_path / "bot.yaml").write_text(
        f"inventory: inventory.yaml\ndatabase_url: 'sqlite:///{tmp_path / 'show.db'}'\n"
        "hyperv: {backend: simulator}\n",
        encoding="utf-8",
    )
    assert invoke(tmp_path, "-c", "bot.yaml", "db", "upgrade").returncode == 0
    shown = invoke(tmp_path, "-c", "bot.yaml", "inventory", "show")
    assert shown.returncode == 0, shown.stderr
    assert f"Not found on any host by discovery (1): OLD-APP09 (since {old.missing_since})" in (
        shown.stdout
    )


def test_a_merge_with_nothing_to_change_leaves_the_file_untouched(tmp_path: Path) -> None:
    target = tmp_path / "inventory.yaml"
    shutil.copy(demo_inventory_path(), target)
    before = target.read_bytes()
    os.utime(target, (1_600_000_000, 1_600_000_000))
    merged = invoke(tmp_path, "inventory", "discover", "--merge", str(target))
    assert merged.returncode == 0, merged.stderr
    assert f"Nothing to change: {target} left as it was." in merged.stdout
    assert target.read_bytes() == before and target.stat().st_mtime == 1_600_000_000
    as_json = invoke(tmp_path, "inventory", "discover", "--merge", str(target), "--json")
    report = json.loads(as_json.stdout)
    assert (report["written"], report["left_as_it_was"]) == (None, str(target))
    # Asked for another file, it writes that file.
    out = tmp_path / "copy.yaml"
    wrote = invoke(tmp_path, "inventory", "discover", "--merge", str(target), "--out", str(out))
    assert f"Wrote {out}." in wrote.stdout and out.exists()


def test_a_merge_keeps_list_items_at_the_keys_column(tmp_path: Path) -> None:
    """A file that writes `- name:` under `vms:` at the key's own column (as
    many editors and `yq` do) is merged in that layout: the diff is the
    merge's lines, not the whole file."""
    target = tmp_path / "inventory.yaml"
    flush = load_document(demo_inventory_path().read_text(encoding="utf-8"))
    text = dump_document(flush, Layout(mapping=2, sequence=2, offset=0))
    assert "\n- name: HV01\n" in text
    text += (
        "- name: OLD-APP09\n"
        "  vm_id: 0f0f0f0f-1111-4222-8333-444455556666\n"
        "  host: HV02\n"
        "  roles: [app]   # hand-set\n"
    )
    target.write_text(text, encoding="utf-8")
    merged = invoke(tmp_path, "inventory", "discover", "--merge", str(target))
    assert merged.returncode == 0, merged.stderr
    after = target.read_text(encoding="utf-8")
    kept = [ln for ln in after.splitlines(keepends=True) if "missing_since:" not in ln]
    assert "".join(kept) == text
    assert "\n  missing_since: " in after


def test_bad_input_is_one_line_and_nothing_is_written(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("hosts: [\n", encoding="utf-8")
    result = invoke(tmp_path, "inventory", "discover", "--merge", str(broken))
    assert result.returncode == 2
    assert "broken.yaml" in one_line_error(result)
    assert broken.read_text(encoding="utf-8") == "hosts: [\n"
    for args in (("--host", "NOPE"), ("--group", "no-such-group")):
        result = invoke(tmp_path, "inventory", "discover", *args, "--out", "x.yaml")
        assert result.returncode == 2
        one_line_error(result)
        assert not (tmp_path / "x.yaml").exists()
    result = invoke(tmp_path, "inventory", "discover", "--out", str(tmp_path / "no" / "x.yaml"))
    assert result.returncode == 2
    assert "cannot write" in one_line_error(result)


def test_a_host_that_does_not_answer_is_exit_3_and_its_vms_are_left_alone(
    tmp_path: Path,
) -> None:
    inventory = {
        "hosts": [
            {
                "name": "HV09",
                "address": "127.0.0.1",
                "transport": "http",
                "port": 9,  # discard: nothing listens on loopback
                "auth": "basic",
                "allow_basic": True,
                "credential": {"username": "hvadmin", "password_env": "HV_PASSWORD"},
            }
        ],
        "vms": [{"name": "APP09", "vm_id": "9e9e9e9e-1111-4222-8333-444455556666", "host": "HV09"}],
    }
    (tmp_path / "inventory.yaml").write_text(yaml.safe_dump(inventory), encoding="utf-8")
    (tmp_path / "config.yaml").write_text(
        f"inventory: inventory.yaml\ndatabase_url: 'sqlite:///{tmp_path / 'bot.db'}'\n"
        "hyperv: {backend: winrm}\n",
        encoding="utf-8",
    )
    env = {"HV_PASSWORD": "x"}
    assert invoke(tmp_path, "--config", "config.yaml", "db", "upgrade", env=env).returncode == 0
    result = invoke(tmp_path, "--config", "config.yaml", "inventory", "diff", "--json", env=env)
    assert result.returncode == 3
    assert "HV09 could not be asked" in one_line_error(result)
    report = json.loads(result.stdout)
    assert list(report["unreachable"]) == ["HV09"]
    assert report["counts"]["not_asked"] == 1 and report["counts"]["missing"] == 0


def test_a_merge_that_would_not_be_valid_writes_nothing(tmp_path: Path) -> None:
    """A file that lists only HV01: what HV02 and HV03 hold has nowhere to
    go, so nothing is written; asking HV01 alone works."""
    target = tmp_path / "hv01-only.yaml"
    text = "# only the first host\nhosts:\n  - {name: HV01, address: hv01.corp.example}\nvms: []\n"
    target.write_text(text, encoding="utf-8")
    result = invoke(tmp_path, "inventory", "discover", "--merge", str(target))
    assert result.returncode == 2
    assert "would not be valid, nothing written" in one_line_error(result)
    assert "unknown host 'HV02'" in result.stderr
    assert target.read_text(encoding="utf-8") == text
    assert not list(tmp_path.glob(".hv01-only.yaml.*"))  # no temporary file left
    result = invoke(tmp_path, "inventory", "discover", "--host", "HV01", "--merge", str(target))
    assert result.returncode == 0, result.stderr
    merged = load_inventory(target)
    assert len(merged.vms) == 8 and all(vm.host == "HV01" for vm in merged.vms)
    assert target.read_text(encoding="utf-8").startswith("# only the first host\n")


def test_without_a_file_the_inventory_goes_to_stdout(tmp_path: Path) -> None:
    result = invoke(tmp_path, "inventory", "discover", "--host", "HV03")
    assert result.returncode == 0, result.stderr
    assert [vm["name"] for vm in yaml.safe_load(result.stdout)["vms"]] == [
        "LAB-DC01",
        "SAN-VM01",
        "STG-APP01",
        "STG-WEB01",
    ]
    assert "Roles unknown — tag these (4)" in result.stderr
    as_json = invoke(tmp_path, "inventory", "discover", "--host", "HV03", "--json")
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["written"] is None
    assert len(yaml.safe_load(report["inventory_yaml"])["vms"]) == 4


@pytest.mark.slow
def test_a_production_install_discovers_the_emulated_demo_fleet(production: Production) -> None:
    """The installed product without the dev tools, over WinRM (NTLM) to the
    emulated demo hosts: the demo inventory aimed at them has nothing to
    change, and a new inventory reproduces its VMs."""
    assert production.run("db", "upgrade").returncode == 0
    diff = production.run("inventory", "diff", "--json")
    assert diff.returncode == 0, diff.stderr
    report = json.loads(diff.stdout)
    assert report["changed"] is False
    assert report["counts"]["unchanged"] == report["counts"]["found"] == 19
    out = production.workdir / "discovered.yaml"
    done = production.run("inventory", "discover", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert production.devtools_imported() == []
    demo = load_inventory(demo_inventory_path())
    written = load_inventory(out)
    assert sorted((vm.name, vm.vm_id, vm.host) for vm in written.vms) == sorted(
        (vm.name, vm.vm_id, vm.host) for vm in demo.vms
    )


def test_a_diff_of_one_host_asks_to_tag_only_the_vms_it_saw(tmp_path: Path) -> None:
    """`inventory diff --host HV01`: "Roles unknown — tag these" lists the
    VMs this run saw, never one of a host it did not ask (seen: NEWAPP of
    HVS1 listed by `--host HVA1`); those are named apart, as the file's and
    not seen, and `--json` says the same."""
    target = tmp_path / "inventory.yaml"
    text = demo_inventory_path().read_text(encoding="utf-8")
    for vm_id in (
        "8b3f6e1a-d9c2-4b07-a6e5-1f4d7c9b2e83",  # WEB01 on HV01
        "6a1e4c8d-2b9f-4d73-b0a6-9c5e7f3d1b28",  # STG-WEB01 on HV03
    ):
        entry = f"    vm_id: {vm_id}\n"
        assert text.count(entry) == 1
        text = text.replace(entry, f"{entry}    roles_unknown: true\n")
    target.write_text(text, encoding="utf-8")
    assert load_inventory(target).vm("STG-WEB01").roles_unknown

    shown = invoke(tmp_path, "inventory", "diff", str(target), "--host", "HV01")
    assert shown.returncode == 0, shown.stderr
    tag_these = shown.stdout.split("Roles unknown — tag these", 1)[1]
    block = tag_these.split("until then the guardrails treat their roles as unknown.", 1)
    assert block[0].startswith(" (1): ") and "WEB01" in block[0]
    assert "STG-WEB01" not in block[0]
    assert (
        "Roles unknown in the file on VMs this run did not see (1): STG-WEB01 (HV03); "
        "`inventory show` lists every one." in shown.stdout
    )
    as_json = invoke(tmp_path, "inventory", "diff", str(target), "--host", "HV01", "--json")
    report = json.loads(as_json.stdout)
    assert report["unknown_roles"] == ["WEB01"]
    assert report["unknown_roles_not_seen"] == ["STG-WEB01"]
    # Every host asked: both are this run's, and nothing is set apart.
    every = json.loads(invoke(tmp_path, "inventory", "diff", str(target), "--json").stdout)
    assert sorted(every["unknown_roles"]) == ["STG-WEB01", "WEB01"]
    assert every["unknown_roles_not_seen"] == []
