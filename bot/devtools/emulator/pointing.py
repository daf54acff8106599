"""An inventory aimed at emulated hosts: what `emulator --write-inventory`
writes and what the playground's bot reads."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

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
) -> str:
    """The inventory as YAML with each served host aimed at its endpoint.
    The password stays a reference: the bot reads it from `password_env`.

    `tls`: the endpoints serve HTTPS with a certificate for `localhost`,
    validated as for a real host, against `ca_bundle` (else the system's
    trust). `kerberos`: the bot authenticates with its own Kerberos
    credentials to HTTP/localhost."""
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
    header = (
        "# Written by `checkpoint-bot emulator --write-inventory`: hosts point at the emulator.\n"
    )
    return header + yaml.safe_dump(data, sort_keys=False)
