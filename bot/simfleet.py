"""The simulated estate: the inventory's VMs on simulated Hyper-V hosts.

The inventory says what each VM is; its `simulation` hints say how the fake
guest behaves (running or off, VSS, KVP, write rate). Hosts are seeded once;
after that their state lives in the database.
"""

from __future__ import annotations

from bot.hyperv import DiskInfo, VMState
from bot.hyperv.sim_state import HostState, SimVMSpec, SimVolumeSpec, seed_host_state
from bot.hyperv.sim_store import HostStateStore
from bot.inventory import VM, Host, Inventory

GIB = 1024**3
MIB = 1024**2


def _disks(vm: VM) -> tuple[DiskInfo, ...]:
    root = vm.volume or ""
    disks = [DiskInfo(path=f"{root}Hyper-V\\{vm.name}\\{vm.name}.vhdx")]
    if vm.disks.shared_vhdx or vm.disks.vhd_set:
        ext = "vhds" if vm.disks.vhd_set else "vhdx"
        disks.append(DiskInfo(path=f"{root}Shared\\{vm.app_group or vm.name}.{ext}", shared=True))
    if vm.disks.passthrough:
        disks.append(DiskInfo(path="Disk 2 1.00 TB Bus 0 Lun 1 Target 0", passthrough=True))
    if vm.disks.virtual_fibre_channel:
        disks.append(DiskInfo(path="Virtual Fibre Channel adapter", fibre_channel=True))
    return tuple(disks)


def _product_type(vm: VM) -> int:
    # KVP ProductType: 2 = domain controller, 3 = server.
    return 2 if vm.is_domain_controller else 3


def vm_spec(vm: VM, host: Host) -> SimVMSpec:
    sim = vm.simulation
    volume = vm.volume or host.volumes[0].path
    return SimVMSpec(
        name=vm.name,
        vm_id=vm.vm_id,
        state=VMState.parse(sim.state),
        checkpoint_type=vm.checkpoint_type,
        automatic_checkpoints=vm.automatic_checkpoints,
        vss_available=sim.vss,
        kvp_available=sim.kvp,
        kvp_product_type=_product_type(vm),
        fqdn=f"{vm.name.lower()}.{vm.domain}" if vm.domain else vm.name.lower(),
        os_name=vm.guest_os,
        disks=_disks(vm),
        replication_enabled=vm.hyperv_replica,
        memory_bytes=int(sim.memory_gb * GIB),
        disk_bytes=int(sim.disk_gb * GIB),
        write_rate_bytes_per_s=int(sim.write_mb_per_hour * MIB / 3600),
        volume_path=volume,
    )


def host_state(inventory: Inventory, host: Host) -> HostState:
    volumes = [
        SimVolumeSpec(v.path, int(v.capacity_gb * GIB), int(v.used_gb * GIB)) for v in host.volumes
    ]
    vms = [vm_spec(vm, host) for vm in inventory.vms_on_host(host.name)]
    return seed_host_state(host.name, vms, volumes)


def seed_missing(store: HostStateStore, inventory: Inventory) -> list[str]:
    """Seed every inventory host the store does not know yet."""
    known = set(store.hosts())
    seeded = []
    for host in inventory.hosts:
        if host.name not in known:
            store.seed(host_state(inventory, host))
            seeded.append(host.name)
    return seeded
