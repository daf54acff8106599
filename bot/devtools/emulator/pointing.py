"""An inventory aimed at emulated hosts: what `emulator --write-inventory`
writes and what the playground's bot reads."""

from __future__ import annotations

from collections.abc import Mapping

import yaml

from bot.inventory import Inventory

EMULATOR_PASSWORD_ENV = "CHECKPOINT_BOT_EMULATOR_PASSWORD"  # noqa: S105 (a variable name)


def emulated_inventory(
    inventory: Inventory, ports: Mapping[str, int], username: str, password_env: str
) -> str:
    """The inventory as YAML with each served host aimed at its endpoint.
    The password stays a reference: the bot reads it from `password_env`."""
    data = inventory.model_dump(mode="json", exclude_none=True)
    for host in data["hosts"]:
        if host["name"] in ports:
            host.update(
                address="127.0.0.1",
                port=ports[host["name"]],
                transport="http",
                auth="ntlm",
                cert_validation=False,
                credential={"username": username, "password_env": password_env},
            )
            host.pop("ca_bundle", None)
            host.pop("configuration_name", None)
    header = (
        "# Written by `checkpoint-bot emulator --write-inventory`: hosts point at the emulator.\n"
    )
    return header + yaml.safe_dump(data, sort_keys=False)
