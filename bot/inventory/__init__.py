"""The inventory of Hyper-V hosts and VMs: models, lookups and loading from YAML."""

from bot.inventory.errors import (
    InvalidName,
    InventoryError,
    InventoryLookupError,
    UnknownCluster,
    UnknownGroup,
    UnknownHost,
    UnknownVM,
)
from bot.inventory.inventory import (
    Inventory,
    consistency_problems,
    demo_inventory_path,
    load_inventory,
    parse_inventory,
)
from bot.inventory.models import (
    DC_ROLES,
    VM,
    AuthMethod,
    Cluster,
    CredentialRef,
    Host,
    HostVolume,
    Role,
    Transport,
    VMDisks,
    normalize_vm_id,
)
from bot.inventory.names import FORBIDDEN_CHARACTERS, MAX_NAME_LENGTH, check_name, suggest

__all__ = [
    "DC_ROLES",
    "FORBIDDEN_CHARACTERS",
    "MAX_NAME_LENGTH",
    "VM",
    "AuthMethod",
    "Cluster",
    "CredentialRef",
    "Host",
    "HostVolume",
    "InvalidName",
    "Inventory",
    "InventoryError",
    "InventoryLookupError",
    "Role",
    "Transport",
    "UnknownCluster",
    "UnknownGroup",
    "UnknownHost",
    "UnknownVM",
    "VMDisks",
    "check_name",
    "consistency_problems",
    "demo_inventory_path",
    "load_inventory",
    "normalize_vm_id",
    "parse_inventory",
    "suggest",
]
