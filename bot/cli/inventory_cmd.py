"""`checkpoint-bot inventory show`: the hosts and VMs the bot knows.

It reads the inventory file the settings name, then where each VM was last
seen from the database (a clustered VM moves: docs/clusters.md); no host,
no context (bench/cli_start.py). It answers while the database is down too,
saying the sightings are unknown."""

from __future__ import annotations

import click

from bot.cli.runtime import Runtime, echo_json, pass_runtime

# The config and the inventory are imported in the command, never here:
# `inventory --help` pays for Click and the command definitions only
# (bench/cli_start.py).


@click.group("inventory")
def inventory() -> None:
    """The hosts and VMs the bot knows."""


@inventory.command("show")
@click.argument("name", required=False, metavar="[VM|HOST|CLUSTER|GROUP]")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def inventory_show(rt: Runtime, name: str | None, as_json: bool) -> None:
    """Hosts and their VMs, with roles, tags and domains, the clusters, and
    where each VM was last seen (a clustered VM moves between nodes); with
    a name, only that VM, host, failover cluster or group."""
    from bot.config import ConfigError
    from bot.inventory import InventoryError, load_inventory

    try:
        inv = load_inventory(rt.settings.inventory_path)
    except InventoryError as exc:
        raise ConfigError(str(exc)) from None  # as when the context loads it
    rt.read_inventory(inv)  # what a command says of it when the context reads it
    # Imported here: reading the inventory alone needs none of the service.
    from bot.service import focus_on, inventory_view

    focus = focus_on(inv, name) if name is not None else None
    view = inventory_view(inv, rt.settings.database_url, focus=focus, demo=rt.settings.demo)
    if as_json:
        echo_json(view.to_dict())
    else:
        rt.out("cli/inventory.txt.j2", inventory=inv, view=view)


# `discover` and `diff` (docs/discovery.md): their module imports the service
# only when one of them runs.
from bot.cli.discover_cmds import diff_cmd, discover_cmd  # noqa: E402

inventory.add_command(discover_cmd)
inventory.add_command(diff_cmd)
