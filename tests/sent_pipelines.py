"""Every pipeline `bot.hyperv.winrm.commands` builds, with fixed ids: what
the message tests hold byte for byte to pypsrp's own, and what the JEA role
test holds to the shipped role capability."""

from __future__ import annotations

from bot.hyperv.types import CheckpointType
from bot.hyperv.winrm import commands as cmds
from bot.hyperv.winrm.pool import Pipeline

VM = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
CP = "7b0b6c1e-2b8d-4bd6-9a1f-0c1f5e8f9a11"

PIPELINES: dict[str, Pipeline] = {
    "list_vms": cmds.list_vms(),
    "get_vm": cmds.get_vm(VM),
    "list_checkpoints": cmds.list_checkpoints(None),
    "list_checkpoints_vm": cmds.list_checkpoints(VM),
    "checkpoint_owner": cmds.checkpoint_owner(CP),
    "create_checkpoint": cmds.create_checkpoint(VM, "CHG-0011 (cb-3f9a2c71) KB5044284 patch"),
    "create_checkpoint_escapes": cmds.create_checkpoint(VM, "zürich 東京 _x000A_ <&> 🙂"),
    "create_checkpoint_unnamed": cmds.create_checkpoint(VM, ""),
    "restore_checkpoint": cmds.restore_checkpoint(CP, VM),
    "remove_checkpoint": cmds.remove_checkpoint(CP, VM, include_children=False),
    "remove_checkpoint_tree": cmds.remove_checkpoint(CP, VM, include_children=True),
    "restore_checkpoint_by_id": cmds.restore_checkpoint_by_id(CP, VM),
    "remove_checkpoint_by_id": cmds.remove_checkpoint_by_id(CP, include_children=True),
    "start_vm": cmds.start_vm(VM),
    "settings": cmds.set_checkpoint_settings(
        VM, checkpoint_type=CheckpointType.ProductionOnly, automatic_checkpoints=False
    ),
    "hard_disks": cmds.hard_disks(VM),
    "fibre_channel": cmds.fibre_channel(VM),
    "replication": cmds.replication(VM),
    "kvp": cmds.kvp(VM),
    "volumes": cmds.volumes(),
    "vm_facts": cmds.vm_facts(VM),
    "discover_vms": cmds.discover_vms(),
    "discover_disks": cmds.discover_disks(),
    "discover_fibre_channel": cmds.discover_fibre_channel(),
    "discover_replication": cmds.discover_replication(),
    "discover_kvp": cmds.discover_kvp(),
}
