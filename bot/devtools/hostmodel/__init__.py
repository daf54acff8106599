"""An independent model of Hyper-V hosts: their state and what their cmdlets do.

Why it exists: the bot's client (bot.hyperv.winrm and friends) was written
from beliefs about Hyper-V. A test double written from the same beliefs
agrees with the client by construction and proves nothing. This model is
written from Microsoft's documentation of the Hyper-V module instead (each
behaviour cites its page), keeps its own enums, and takes its facts from its
own host-model file (`modelfile`), never from the bot's inventory. The
emulator (bot.devtools.emulator) serves it over real WinRM; the demo and the
fast tests reach it through the real client over an in-process transport.

What it refuses to do: import the client (bot.hyperv.types, .interface,
.errors, .winrm*, bot.inventory), guess what the bot wants to hear, or
translate its answers into the bot's vocabulary. A production checkpoint
here is what a host reports: SnapshotType Standard, holding no memory.

    modelfile   the YAML host-model file: HostModel, load_host_model, seed_missing
    host        ModelHost: the cmdlets' semantics, views of VMs and checkpoints
    state       the persisted state (JSON); engine: modelled time and space
    store       where the state lives (memory, or SQL for many processes)
    enums       the module's enums; errors: the host's own error texts
"""

from bot.devtools.hostmodel.enums import (
    CheckpointType,
    ControllerType,
    SnapshotType,
    VMOperationalStatus,
    VMReplicationHealthState,
    VMReplicationMode,
    VMReplicationState,
    VMState,
)
from bot.devtools.hostmodel.errors import HostError
from bot.devtools.hostmodel.host import ModelHost
from bot.devtools.hostmodel.modelfile import (
    DiskSpec,
    GuestSpec,
    HostModel,
    HostModelError,
    HostSpec,
    ReplicationSpec,
    VMSpec,
    VolumeSpec,
    demo_hosts_path,
    load_host_model,
    parse_host_model,
    seed_missing,
)
from bot.devtools.hostmodel.store import (
    HostStateStore,
    InMemoryHostStateStore,
    SqlHostStateStore,
    UnknownHost,
)

__all__ = [
    "CheckpointType",
    "ControllerType",
    "DiskSpec",
    "GuestSpec",
    "HostError",
    "HostModel",
    "HostModelError",
    "HostSpec",
    "HostStateStore",
    "InMemoryHostStateStore",
    "ModelHost",
    "ReplicationSpec",
    "SnapshotType",
    "SqlHostStateStore",
    "UnknownHost",
    "VMOperationalStatus",
    "VMReplicationHealthState",
    "VMReplicationMode",
    "VMReplicationState",
    "VMSpec",
    "VMState",
    "VolumeSpec",
    "demo_hosts_path",
    "load_host_model",
    "parse_host_model",
    "seed_missing",
]
