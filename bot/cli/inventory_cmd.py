"""`checkpoint-bot inventory show`: the hosts and VMs the bot knows.

It reads the inventory file the settings name and nothing else: no
database, no host, no service (bench/cli_start.py), so it answers while
the database is down too."""

from __future__ import annotations

import click

from bot.cli.runtime import Runtime, echo_json, pass_runtime
from bot.config import ConfigError
from bot.inventory import InventoryError, load_inventory


@click.group("inventory")
def inventory() -> None:
    """The hosts and VMs the bot knows."""


@inventory.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def inventory_show(rt: Runtime, as_json: bool) -> None:
    """Hosts and their VMs, with roles, tags and domains."""
    try:
        inv = load_inventory(rt.settings.inventory_path)
    except InventoryError as exc:
        raise ConfigError(str(exc)) from None  # as when the context loads it
    if as_json:
        echo_json(inv.model_dump(mode="json"))
    else:
        rt.out("cli/inventory.txt.j2", inventory=inv)
