"""An inventory aimed at emulated hosts: what `emulator --write-inventory`
writes and what the playground's bot reads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from bot.devtools.hostmodel.modelfile import ClusterSpec
from bot.inventory import Inventory

EMULATOR_PASSWORD_ENV = "CHECKPOINT_BOT_EMULATOR_PASSWORD"  # noqa: S105 (a variable name)


def emulated_inventory(
    inventory: Inventory,
    ports: Mapping[str, int],
    username: str,
    password_env: str,
    *,
    tls: bool = False,
    ca_bundle: Path | None = None,
    kerberos: bool = False,
    clusters: Sequence[ClusterSpec] = (),
) -> str:
    """The inventory as YAML with each served host aimed at its endpoint.
    The password stays a reference: the bot reads it from `password_env`.

    `tls`: the endpoints serve HTTPS with a certificate for `localhost`,
    validated as for a real host, against `ca_bundle` (else the system's
    trust). `kerberos`: the bot authenticates with its own Kerberos
    credentials to HTTP/localhost. `clusters`: the served host model's
    failover clusters, written where the inventory has none for their
    nodes (`_carried_clusters`)."""
    data = inventory.model_dump(mode="json", exclude_none=True)
    for host in data["hosts"]:
        if host["name"] in ports:
            host.update(
                address="localhost" if tls or kerberos else "127.0.0.1",
                port=ports[host["name"]],
                transport="https" if tls else "http",
                auth="kerberos" if kerberos else "ntlm",
                cert_validation=tls,
                credential={"username": username, "password_env": password_env},
            )
            host.pop("ca_bundle", None)
            host.pop("configuration_name", None)
            if ca_bundle is not None:
                host["ca_bundle"] = str(ca_bundle.resolve())
            if kerberos:
                host.pop("credential")
    for host in data["hosts"]:
        if host.get("transport") != "https":
            # cert_validation is about an HTTPS listener's certificate; plain
            # HTTP has none, and the key there only misleads a reader.
            host.pop("cert_validation", None)
    carried, notes = _carried_clusters(inventory, clusters)
    data["clusters"] = [*data.get("clusters", []), *carried]
    if not data["clusters"]:
        del data["clusters"]
    header = (
        "# Written by `checkpoint-bot emulator --write-inventory`: hosts point at the emulator.\n"
    )
    header += "".join(f"# {note}\n" for note in notes)
    return header + yaml.safe_dump(data, sort_keys=False)


def _carried_clusters(
    inventory: Inventory, clusters: Sequence[ClusterSpec]
) -> tuple[list[dict[str, Any]], list[str]]:
    """The host model's clusters as the inventory's `clusters:` entries, and
    why any was not written. Without them an inventory of clustered hosts
    treats every node as standalone: a VM that live-migrated would never be
    looked for on its peer. What the inventory already says of a cluster is
    what its operators declared and is kept, even where the host model
    disagrees (a test may want exactly that); a cluster is only added whose
    nodes are all hosts of the inventory and in none of its clusters (a
    node is in at most one)."""
    hosts = {host.name.casefold(): host.name for host in inventory.hosts}
    names = {cluster.name.casefold() for cluster in inventory.clusters}
    carried: list[dict[str, Any]] = []
    notes: list[str] = []
    for spec in clusters:
        missing = [node for node in spec.nodes if node.casefold() not in hosts]
        taken = [node for node in spec.nodes if inventory.cluster_of(node) is not None]
        if spec.name.casefold() in names or taken:
            declared = inventory.cluster_of(taken[0]) if taken else None
            if declared is None or not _same_cluster(declared.name, declared.nodes, spec):
                notes.append(
                    f"the host model's cluster {spec.name} is not written: "
                    "the inventory's own clusters: are kept as written"
                )
            continue
        if missing:
            notes.append(
                f"the host model's cluster {spec.name} is not written: "
                f"{', '.join(missing)} {'is not a host' if len(missing) == 1 else 'are not hosts'} "
                "of the inventory"
            )
            continue
        carried.append(
            {
                "name": spec.name,
                "nodes": [hosts[node.casefold()] for node in spec.nodes],
                "shared_volumes": [
                    {"path": v.path, "capacity_gb": v.capacity_gb, "used_gb": v.used_gb}
                    for v in spec.shared_volumes
                ],
            }
        )
    return carried, notes


def _same_cluster(name: str, nodes: Sequence[str], spec: ClusterSpec) -> bool:
    return name.casefold() == spec.name.casefold() and {n.casefold() for n in nodes} == {
        n.casefold() for n in spec.nodes
    }
