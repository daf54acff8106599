"""The CLI's tables keep their columns aligned whatever the estate's names.

The widths were the demo's (12 characters for a VM, 6 for a host), so a
real estate's `PRD-SQL-AG-NODE01` on `HYPERV-PRD-NODE01` pushed every
later column of its row out of line. Here an estate of long and short
names, on the simulator, through the commands a person reads: each
column starts at the same place in every row and in its header."""

from __future__ import annotations

from pathlib import Path

from tests.cli_support import invoke

LONG_VM, LONG_HOST = "PRD-SQL-AG-NODE01-REPLICA", "HYPERV-PRD-NODE01"
SHORT_VM, SHORT_HOST = "W1", "H2"
VMS = ((LONG_VM, LONG_HOST, "4d3c2b1a-0000-4000-8000-000000000001"),
       (SHORT_VM, SHORT_HOST, "4d3c2b1a-0000-4000-8000-000000000002"))  # fmt: skip


def _estate(tmp_path: Path) -> None:
    hosts = "".join(
        f"  - name: {host}\n    address: {host.lower()}.corp.example\n    transport: https\n"
        "    auth: negotiate\n    credential: {username_env: U, password_env: P}\n"
        "    volumes: [{path: 'D:\\', capacity_gb: 1000, used_gb: 100}]\n"
        for _, host, _ in VMS
    )
    vms = "".join(
        f"  - {{name: {name}, vm_id: {vm_id}, host: {host}, tags: {{env: lab}}}}\n"
        for name, host, vm_id in VMS
    )
    (tmp_path / "inventory.yaml").write_text(
        f"hosts:\n{hosts}groups:\n  a-rather-long-group-name: [{LONG_VM}, {SHORT_VM}]\nvms:\n{vms}",
        encoding="utf-8",
    )
    model = "".join(
        f"  - name: {host}\n    volumes: [{{path: 'D:\\', capacity_gb: 1000, used_gb: 100}}]\n"
        f"    vms:\n      - {{name: {name}, vm_id: {vm_id}, guest: {{product_type: 3}}}}\n"
        for name, host, vm_id in VMS
    )
    (tmp_path / "hosts.yaml").write_text(f"hosts:\n{model}", encoding="utf-8")
    (tmp_path / "bot.yaml").write_text(
        "inventory: inventory.yaml\nhyperv: {backend: simulator, simulator_hosts: hosts.yaml}\n",
        encoding="utf-8",
    )


def _cli(tmp_path: Path, *args: str) -> str:
    done = invoke(tmp_path, "--config", str(tmp_path / "bot.yaml"), *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _starts(line: str, *values: str) -> list[int]:
    """Where each of `values` starts in `line`, searching left to right."""
    found, at = [], 0
    for value in values:
        at = line.index(value, at)
        found.append(at)
        at += len(value)
    return found


def test_long_names_keep_every_table_aligned(tmp_path: Path) -> None:
    _estate(tmp_path)
    assert invoke(tmp_path, "--config", str(tmp_path / "bot.yaml"), "db", "upgrade").returncode == 0
    for name in (LONG_VM, SHORT_VM):
        _cli(tmp_path, "checkpoint", "create", name, "--reason", "aligned")

    header, *rows = _cli(tmp_path, "checkpoint", "list").splitlines()
    long_row = next(r for r in rows if r.startswith(LONG_VM))
    short_row = next(r for r in rows if r.startswith(SHORT_VM))
    # The HOST, CHECKPOINT and TAKEN columns start where their headers do.
    columns = _starts(header, "HOST", "CHECKPOINT", "TAKEN")
    assert _starts(long_row, LONG_HOST)[0] == columns[0]
    assert _starts(short_row, SHORT_HOST)[0] == columns[0]
    for row in (long_row, short_row):
        assert row[columns[1] : columns[1] + 8] != "        "  # a checkpoint Id there
        assert row[columns[1] - 1] == " " and row[columns[2] - 1] == " "
        assert row[columns[2] :].startswith(("production", "standard", "unknown"))

    shown = _cli(tmp_path, "inventory", "show").splitlines()
    vm_lines = [line for line in shown if line.startswith(("  " + LONG_VM, "  " + SHORT_VM))]
    ids = [line.index("4d3c2b1a-") for line in vm_lines]
    assert len(ids) == 2 and ids[0] == ids[1]
    group = next(line for line in shown if "a-rather-long-group-name" in line)
    assert group.startswith("  a-rather-long-group-name " + LONG_VM)

    preview = invoke(
        tmp_path,
        "--config",
        str(tmp_path / "bot.yaml"),
        "checkpoint",
        "create",
        "--group",
        "a-rather-long-group-name",
        "-r",
        "wave",
        "--yes",
    )
    assert preview.returncode == 0, preview.stderr
    listed = [line for line in preview.stdout.splitlines() if " on " in line and "✓" in line]
    assert len(listed) == 2
    assert len({line.index(" on ") for line in listed}) == 1
    assert len({line.index("can be checkpointed") for line in listed}) == 1
    members = [
        line for line in _cli(tmp_path, "batch", "show", "BAT-1").splitlines()
        if line.startswith("  CHG-")
    ]  # fmt: skip
    assert len(members) == 2
    hosts_at = {line.index(LONG_HOST if LONG_VM in line else SHORT_HOST) for line in members}
    states_at = {line.index("active") for line in members}
    assert len(hosts_at) == 1 and len(states_at) == 1

    found = _cli(tmp_path, "inventory", "diff").splitlines()
    header = next(line for line in found if line.startswith("NAME"))
    rows = [line for line in found if line.startswith((LONG_VM, SHORT_VM))]
    assert len(rows) == 2
    vmid, owner = _starts(header, "VMID", "OWNER")
    for row in rows:
        assert row[vmid:].startswith("4d3c2b1a-")
        assert row[owner:].startswith((LONG_HOST, SHORT_HOST))
