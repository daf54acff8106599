"""Onboard a 500-VM emulated estate with one command, and say how long it took.

    .venv/bin/python bench/discover_500.py [--hosts 5] [--vms 100] [--auth ntlm|basic]
                                           [--latency-ms 0] [--keep DIR] [--port 0]

What runs:
1. a host-model file with `--hosts` hosts of `--vms` VMs each (every tenth a
   domain controller, some off so their guests publish no KVP, some with a
   shared VHDX, a VHD Set, a pass-through disk or Hyper-V Replica);
2. `checkpoint-bot emulator` serving it over WinRM on loopback (a child
   process, so its CPU work does not share the client's interpreter), which
   also writes an inventory of just the hosts aimed at its endpoints;
3. the one command an operator runs, timed:
   `checkpoint-bot --config cfg.yaml inventory discover --out onboarded.yaml`;
4. checks: the written inventory loads, has every VM, and every VM carries
   `roles_unknown: true`; the emulator's log shows six calls per host.

Everything is loopback; the real pypsrp client with NTLM message encryption
(default) talks to the emulator.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).with_name("checkpoint-bot")
USER, PASSWORD = "hvadmin", "Passw0rd!"
PASSWORD_ENV = "CHECKPOINT_BOT_EMULATOR_PASSWORD"  # noqa: S105 (a variable name)
NAMESPACE = uuid.UUID("0c7d2b1d-4d7c-4a55-9e8b-1f0c7d213e8b")


def _vm(host: int, index: int) -> dict[str, Any]:
    name = f"H{host:02d}-VM{index:03d}"
    volume = "D:\\"
    vm: dict[str, Any] = {
        "name": name,
        "vm_id": str(uuid.uuid5(NAMESPACE, name)),
        "volume": volume,
        "memory_gb": 4,
        "disk_gb": 60,
        "guest": {
            "fqdn": f"{name.lower()}.corp.example",
            "os_name": "Windows Server 2022 Standard",
            "os_version": "10.0.20348",
            "product_type": 2 if index % 10 == 0 else 3,
        },
    }
    if index % 17 == 0:
        vm["state"] = "Off"
    base = f"D:\\Hyper-V\\{name}\\Virtual Hard Disks\\{name}.vhdx"
    if index % 23 == 0:
        shared = f"C:\\ClusterStorage\\Volume1\\{name}\\data.vhdx"
        vm["disks"] = [{"path": base}, {"path": shared, "shared": True}]
    elif index % 29 == 0:
        vm["disks"] = [
            {"path": base},
            {"path": f"C:\\ClusterStorage\\Volume1\\{name}.vhds", "shared": True},
        ]
    elif index % 31 == 0:
        lun = {"path": "Disk 2 1.00 TB Bus 0 Lun 1 Target 0", "passthrough": True, "disk_number": 2}
        vm["disks"] = [{"path": base}, lun]
    if index % 13 == 0:
        vm["replication"] = {
            "state": "Replicating",
            "mode": "Primary",
            "replica_server": "dr-hv01.corp.example",
        }
    return vm


def write_estate(directory: Path, hosts: int, vms: int) -> tuple[Path, Path]:
    model = {
        "hosts": [
            {
                "name": f"HV{h:02d}",
                "volumes": [{"path": "D:\\", "capacity_gb": 100000, "used_gb": 1000}],
                "vms": [_vm(h, i) for i in range(1, vms + 1)],
            }
            for h in range(1, hosts + 1)
        ]
    }
    inventory = {
        "hosts": [
            {
                "name": f"HV{h:02d}",
                "address": f"hv{h:02d}.corp.example",
                "host_group": "estate",
                "volumes": [{"path": "D:\\", "capacity_gb": 100000, "used_gb": 1000}],
            }
            for h in range(1, hosts + 1)
        ],
        "vms": [],
    }
    model_path, inventory_path = directory / "hosts.yaml", directory / "hosts-only.yaml"
    model_path.write_text(yaml.safe_dump(model, sort_keys=False), encoding="utf-8")
    inventory_path.write_text(yaml.safe_dump(inventory, sort_keys=False), encoding="utf-8")
    return model_path, inventory_path


def start_emulator(
    directory: Path, model: Path, inventory: Path, latency_ms: int, port: int = 0
) -> tuple[subprocess.Popen[bytes], Path, Path]:
    pointed, log = directory / "inventory.yaml", directory / "emulator-log.jsonl"
    env = {**os.environ, PASSWORD_ENV: PASSWORD}
    process = subprocess.Popen(
        [
            str(CLI),
            "emulator",
            "--hosts",
            str(model),
            "--port",
            str(port),
            "--latency-ms",
            str(latency_ms),
            "--inventory",
            str(inventory),
            "--write-inventory",
            str(pointed),
            "--log-file",
            str(log),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not pointed.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit("the emulator did not start")
        time.sleep(0.2)
    return process, pointed, log


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=5)
    parser.add_argument("--vms", type=int, default=100, help="VMs per host")
    parser.add_argument("--auth", choices=["ntlm", "basic"], default="ntlm")
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="Work in DIR and keep its files.")
    parser.add_argument(
        "--port", type=int, default=0, help="The emulator's first port (host i on PORT+i; 0: any)."
    )
    args = parser.parse_args()
    directory = args.keep or Path(tempfile.mkdtemp(prefix="discover-bench-"))
    directory.mkdir(parents=True, exist_ok=True)
    model, hosts_only = write_estate(directory, args.hosts, args.vms)
    process, pointed, log = start_emulator(directory, model, hosts_only, args.latency_ms, args.port)
    try:
        if args.auth == "basic":
            doc = yaml.safe_load(pointed.read_text(encoding="utf-8"))
            for host in doc["hosts"]:
                host.update(auth="basic", allow_basic=True)
            pointed.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        config = directory / "config.yaml"
        config.write_text(
            f"inventory: {pointed.name}\n"
            f"database_url: 'sqlite:///{directory / 'bot.db'}'\n"
            "hyperv: {backend: winrm, fanout: 32}\n",
            encoding="utf-8",
        )
        out = directory / "onboarded.yaml"
        env = {**os.environ, PASSWORD_ENV: PASSWORD, "CHECKPOINT_BOT_USER": "bench"}
        # An installed bot has its schema already; not part of what is timed.
        subprocess.run(
            [str(CLI), "--config", str(config), "db", "upgrade"],
            env=env,
            capture_output=True,
            timeout=120,
            check=True,
        )
        command = [
            str(CLI),
            "--config",
            str(config),
            "inventory",
            "discover",
            "--group",
            "estate",
            "--out",
            str(out),
            "--json",
        ]
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, timeout=600, check=False)
        elapsed = time.perf_counter() - started
    finally:
        process.terminate()
        process.wait(timeout=30)
    if done.returncode != 0:
        sys.stderr.write(done.stderr.decode(errors="replace"))
        raise SystemExit(f"discover exited {done.returncode}")
    report = json.loads(done.stdout)
    written = yaml.safe_load(out.read_text(encoding="utf-8"))
    vms = written["vms"]
    expected = args.hosts * args.vms
    assert len(vms) == expected, f"{len(vms)} VMs written, expected {expected}"
    assert all(vm.get("roles_unknown") is True for vm in vms)
    calls = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    per_host = {}
    for call in calls:
        # Each of discovery's pipelines (commands.discover_* and volumes)
        # ends with one Select-Object, and a host's calls run one at a time.
        # Counting the cmdlets that do not take pipeline input counted the
        # Get-VM before Get-VMFibreChannelHba as a pipeline of its own (7).
        if call["cmdlet"] == "Select-Object":
            per_host[call["host"]] = per_host.get(call["host"], 0) + 1
    dcs = sum(1 for vm in vms if "domain_controller" in (vm.get("roles") or []))
    print(
        f"estate: {args.hosts} hosts x {args.vms} VMs = {expected} VMs, auth {args.auth}, "
        f"latency {args.latency_ms} ms"
    )
    print(
        f"one command: {' '.join(Path(c).name if c == str(CLI) else c for c in command[:1])} "
        f"--config cfg.yaml inventory discover --group estate --out onboarded.yaml"
    )
    print(
        f"onboarded {len(vms)} VMs in {elapsed:.2f}s wall (process start included); "
        f"discovery itself {report['seconds']:.2f}s"
    )
    print(
        f"PSRP pipelines per host: {sorted(set(per_host.values()))}; "
        f"domain controllers found by KVP: {dcs}; "
        f"roles unknown (tag these): {len(report['unknown_roles'])}"
    )
    if args.keep:
        print(f"files in {directory}")
    else:
        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
