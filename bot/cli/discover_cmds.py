"""`inventory discover` and `inventory diff` (docs/discovery.md).

The service is imported when a command runs, not when the `inventory` group
loads: `inventory show` stays as light as it is (bench/cli_start.py)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import click

from bot.cli.runtime import Runtime, echo_json, pass_runtime

if TYPE_CHECKING:
    from bot.service import DiscoveryReport

_FILE = click.Path(dir_okay=False, path_type=Path)


def _hosts_options(fn: click.decorators.FC) -> click.decorators.FC:
    fn = click.option(
        "--group",
        "groups",
        multiple=True,
        metavar="NAME",
        help="Ask every host of this host_group (repeatable).",
    )(fn)
    return click.option(
        "--host",
        "hosts",
        multiple=True,
        metavar="NAME",
        help="Ask this inventory host (repeatable). Default: every host.",
    )(fn)


def _report(
    rt: Runtime,
    report: DiscoveryReport,
    as_json: bool,
    *,
    err: bool = False,
    with_yaml: bool = False,
    missing: str = "their VMs were left as they were",
) -> None:
    """The summary; exit 2 when the merged inventory would not be valid
    (nothing written, everything found still shown), else exit 3 when a
    host could not be asked, `missing` saying what became of that host's VMs."""
    from bot.inventory.discovery import UNDISCOVERABLE
    from bot.service import BadRequest, Unavailable

    if as_json:
        data = report.to_dict()
        if with_yaml:
            data["inventory_yaml"] = report.text
        echo_json(data)
    else:
        text = rt.renderer.render(
            "cli/discovery.txt.j2", report=report, undiscoverable=UNDISCOVERABLE
        )
        click.echo(text, nl=False, err=err)
    if report.refused is not None:
        raise BadRequest(report.refused)
    said = _not_heard(report.unreachable, report.plan.answered_as)
    if said:
        raise Unavailable(f"{said}; {missing}")


def _not_heard(unreachable: Mapping[str, str], answered_as: Mapping[str, str]) -> str:
    """The hosts whose own VMs nobody heard about: those that could not be
    asked, and those that answered as another host's machine (the same
    WinRM listener under another address, docs/discovery.md)."""
    parts = [f"{', '.join(unreachable)} could not be asked"] if unreachable else []
    parts.extend(
        f"{host} answered as {machine}, as another asked host did: its address: and port: "
        "reach that host's WinRM listener"
        for host, machine in answered_as.items()
    )
    return "; ".join(parts)


@click.command("discover")
@_hosts_options
@click.option("--out", type=_FILE, help="Write the inventory here (atomically).")
@click.option("--force", is_flag=True, help="Replace --out if it exists (see --merge).")
@click.option(
    "--merge",
    type=_FILE,
    help="Update this inventory (written back in place unless --out is given).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@pass_runtime
def discover_cmd(
    rt: Runtime,
    hosts: tuple[str, ...],
    groups: tuple[str, ...],
    out: Path | None,
    merge: Path | None,
    force: bool,
    as_json: bool,
) -> None:
    """List every VM on the hosts and write an inventory of them.

    Without --merge: a new inventory with the config's hosts and the VMs
    found. With --merge FILE: FILE updated in place (comments kept); new VMs
    added, VMs gone from every asked host marked missing_since, hand-set
    roles, tags, domains, comments and indentation kept; not rewritten
    when nothing changed. Without --out or --merge the
    YAML goes to stdout and the summary to stderr (with --json: one JSON
    document, the YAML in its inventory_yaml). An existing --out FILE
    (other than the --merge FILE) is replaced only with --force: to update
    an inventory, --merge it.

    Exit 2 when --out exists without --force (nothing is asked). Exit 3
    when a host could not be asked: what the others said is still written
    (with --merge that host's VMs are left as they were; a new inventory
    has none of them), and when no host answered nothing is written. Exit
    2, nothing written, when the result would not be a valid inventory: the
    summary still shows everything found, and the last line says why."""
    from bot.service import DiscoveryRequest, discover

    request = DiscoveryRequest(hosts=hosts, groups=groups, merge=merge, out=out, force=force)
    report = discover(rt.ctx, request)
    if merge is not None:
        missing = "their VMs were left as they were"
    else:
        where = report.written or "the inventory printed"
        missing = f"{where} has none of their VMs"
    if report.written is not None or report.left_as_it_was is not None:
        _report(rt, report, as_json, missing=missing)
    elif report.refused is not None:
        # Not an inventory: the summary and the reason, never the YAML.
        _report(rt, report, as_json, missing=missing)
    elif as_json:
        # One JSON document on stdout: the inventory is its `inventory_yaml`.
        _report(rt, report, as_json, with_yaml=True, missing=missing)
    else:
        click.echo(report.text, nl=False)
        _report(rt, report, as_json, err=True, missing=missing)


@click.command("diff")
@_hosts_options
@click.argument("file", type=_FILE, required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def diff_cmd(
    rt: Runtime, hosts: tuple[str, ...], groups: tuple[str, ...], file: Path | None, as_json: bool
) -> None:
    """What `discover --merge FILE` would change, without writing.

    FILE defaults to the config's inventory. Exit 3 when a host could not be
    asked; exit 2 when the merge would be refused (the result would not be
    a valid inventory): everything found is still shown, then why."""
    from bot.service import DiscoveryRequest, discover

    target = file or rt.settings.inventory_path
    request = DiscoveryRequest(hosts=hosts, groups=groups, merge=target, write=False)
    _report(rt, discover(rt.ctx, request), as_json, missing="their VMs would be left as they are")
