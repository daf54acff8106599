"""`checkpoint-bot emulator`: serve modelled Hyper-V hosts over WinRM/PSRP on 127.0.0.1.

The hosts come from a host-model file (bot.devtools.hostmodel; the demo
estate's by default), never from an inventory: an inventory is only read to
write a copy of it aimed at the endpoints (`--write-inventory`)."""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from pathlib import Path

import click

from bot.devtools.emulator import EmulatedFleet, EmulatorLog, Faults, FaultSpecError
from bot.devtools.emulator.faults import SPEC_HELP
from bot.devtools.emulator.pointing import EMULATOR_PASSWORD_ENV, emulated_inventory
from bot.devtools.emulator.server import DEFAULT_USERS, CannotListen, TlsIdentity
from bot.devtools.hostmodel import (
    HostModelError,
    HostStateStore,
    InMemoryHostStateStore,
    SqlHostStateStore,
    demo_hosts_path,
    load_host_model,
)
from bot.interrupts import StopRequest
from bot.inventory import InventoryError, demo_inventory_path, load_inventory


class FileProblems(click.ClickException):
    """A host-model or inventory file the emulator cannot use: its problems,
    one per line, and bad input (exit 2) as a usage error is."""

    exit_code = 2


EPILOG = f"""\
Faults (--faults SPEC): {SPEC_HELP} Example: --faults latency=50,hang=Checkpoint-VM,refuse

Clients connect with pypsrp: WSMan("127.0.0.1", port=PORT, ssl=False, auth="basic",
encryption="never", ...) or auth="ntlm" (message encryption on); with --keytab,
auth="kerberos" to HTTP/localhost; with --tls-cert, ssl=True and server "localhost".
With --no-allow-unencrypted the listeners are as Windows ships them: over HTTP they
take only sealed messages (NTLM or Kerberos with message encryption), and refuse
Basic and anything sent in the clear with HTTP 500.
Without --user the login is {next(iter(DEFAULT_USERS))} / {next(iter(DEFAULT_USERS.values()))}.
"""


def _environment() -> Mapping[str, str]:
    # The CLI's Runtime carries the environment it was started with; used
    # standalone (tests), fall back to the process environment.
    ctx = click.get_current_context(silent=True)
    env = getattr(ctx.obj if ctx is not None else None, "env", None)
    return env if isinstance(env, dict) else os.environ


def _store(database: str | None) -> HostStateStore:
    if database is None:
        return InMemoryHostStateStore()
    from bot.store.db import make_engine
    from bot.store.migrate import upgrade

    engine = make_engine(database)
    upgrade(engine)
    return SqlHostStateStore(engine)


@click.command("emulator", epilog=EPILOG)
@click.option(
    "--hosts",
    "hosts_path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="Host-model YAML: what the hosts hold (default: the demo estate's, "
    "deploy/examples/demo-hosts.yaml).",
)
@click.option(
    "--inventory",
    "inventory_path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="The bot's inventory, only read to write a copy aimed at the endpoints "
    "(--write-inventory; default: the demo inventory).",
)
@click.option("--host", "host_names", multiple=True, help="Serve this host (repeatable).")
@click.option("--all", "all_hosts", is_flag=True, help="Serve every modelled host (default).")
@click.option("--port", type=click.IntRange(0, 65535), default=5985, show_default=True,
              help="First port; host i listens on PORT+i (0: ephemeral ports).")  # fmt: skip
@click.option("--latency-ms", type=click.IntRange(0), default=0, help="Delay before every answer.")
@click.option("--faults", "fault_spec", default="", help="Fault injection SPEC (see below).")
@click.option("--user", default=None, help="The one accepted user name.")
@click.option("--password-env", default=None, help="Environment variable holding its password.")
@click.option("--database", default=None, help="Simulator state in this SQL database URL.")
@click.option(
    "--write-inventory",
    "write_inventory",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write a copy of --inventory whose hosts point at these endpoints (NTLM over "
    "HTTP), for `hyperv: {backend: winrm}`.",
)
@click.option(
    "--tls-cert",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Serve HTTPS with this PEM certificate (for localhost; needs --tls-key).",
)
@click.option(
    "--tls-key",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="The PEM private key of --tls-cert.",
)
@click.option(
    "--ca-bundle",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="With --tls-cert and --write-inventory: the CA the inventory's hosts trust.",
)
@click.option(
    "--keytab",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Accept Kerberos too, with the HTTP/localhost keys in this keytab "
    "(docs/connect-hosts.md); --write-inventory then writes auth: kerberos.",
)
@click.option(
    "--allow-unencrypted/--no-allow-unencrypted",
    default=True,
    show_default=True,
    help="WinRM's AllowUnencrypted on every listener: on, Basic works over HTTP; off, "
    "as Windows ships it, only sealed messages do.",
)
@click.option(
    "--log-file",
    "log_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Append every command the hosts receive to FILE, one JSON line each "
    "(cmdlet, parameters, host, time): what the bot really sent.",
)
def emulator(
    hosts_path: Path | None,
    inventory_path: Path | None,
    host_names: tuple[str, ...],
    all_hosts: bool,
    port: int,
    latency_ms: int,
    fault_spec: str,
    user: str | None,
    password_env: str | None,
    database: str | None,
    write_inventory: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    ca_bundle: Path | None,
    keytab: Path | None,
    allow_unencrypted: bool,
    log_file: Path | None,
) -> None:
    """Run emulated Hyper-V WinRM endpoints until Ctrl-C or SIGTERM."""
    if host_names and all_hosts:
        raise click.UsageError("--host and --all are exclusive")
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    if ca_bundle is not None and tls_cert is None:
        raise click.UsageError("--ca-bundle is for --tls-cert (the CA that issued it)")
    tls = TlsIdentity(tls_cert, tls_key) if tls_cert and tls_key else None
    if inventory_path is not None and write_inventory is None:
        raise click.UsageError("--inventory is only read for --write-inventory")
    if write_inventory is not None and inventory_path is None:
        inventory_path = demo_inventory_path()
    try:
        faults = Faults.parse(fault_spec)
    except FaultSpecError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        model = load_host_model(hosts_path or demo_hosts_path())
        inventory = load_inventory(inventory_path) if inventory_path else None
    except (InventoryError, HostModelError) as exc:
        # A file's problems, one per line (`FILE:LINE: FIELD: MESSAGE`), as
        # the simulator backend's configuration reports them; a usage
        # error would join them into one line and point at --help. Still
        # bad input: exit 2, as a usage error.
        raise FileProblems(str(exc)) from None
    unknown = [n for n in host_names if n.casefold() not in {h.casefold() for h in model.names()}]
    if unknown:
        raise click.UsageError(
            f"--host {unknown[0]}: not in the host model (it has: {', '.join(model.names())})"
        )
    users = dict(DEFAULT_USERS)
    if user is not None:
        if not password_env:
            raise click.UsageError("--user needs --password-env VAR")
        password = _environment().get(password_env)
        if not password:
            raise click.UsageError(f"environment variable {password_env} is not set")
        users = {user: password}
    log = EmulatorLog(mirror=log_file)
    try:
        fleet = EmulatedFleet.start(
            _store(database),
            hosts=list(host_names) or None,
            model=model,
            base_port=port,
            users=users,
            auth=("basic", "ntlm", "kerberos") if keytab else ("basic", "ntlm"),
            latency_ms=latency_ms,
            faults=faults,
            log=log,
            keytab=keytab,
            tls=tls,
            allow_unencrypted=allow_unencrypted,
        )
    except CannotListen as exc:
        log.close()
        # As `demo --port` says it: one line, exit 2 (the servers already
        # started were stopped by EmulatedFleet.start).
        hint = ": pass --port N (0 picks free ones)" if port else ""
        raise click.ClickException(f"{exc}{hint}") from None
    done = StopRequest()
    previous = signal.signal(signal.SIGTERM, done.on_signal)
    try:
        for name, server in fleet.servers.items():
            click.echo(f"{name}\t{server.url}")
        if write_inventory is not None and inventory is not None:
            login = user or next(iter(DEFAULT_USERS))
            pointed = emulated_inventory(
                inventory,
                {n: srv.port for n, srv in fleet.servers.items()},
                login,
                password_env or EMULATOR_PASSWORD_ENV,
                tls=tls is not None,
                ca_bundle=ca_bundle,
                kerberos=keytab is not None,
                clusters=model.clusters,
            )
            write_inventory.parent.mkdir(parents=True, exist_ok=True)
            write_inventory.write_text(pointed, encoding="utf-8")
            click.echo(f"emulator: wrote {write_inventory}", err=True)
        click.echo("emulator: serving; Ctrl-C to stop", err=True)
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        fleet.stop()
        log.close()
        click.echo("emulator: stopped", err=True)
