"""Transport, authentication, faults and lifetime of the emulator, via real pypsrp."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
import yaml
from pypsrp.exceptions import AuthenticationError, WinRMTransportError, WSManFaultError
from pypsrp.powershell import PowerShell, PSInvocationState, RunspacePool

from bot.devtools.emulator import EmulatedFleet, EmulatorLog, Faults, FaultSpecError
from bot.devtools.emulator.wsman import WSManService, parse_duration
from bot.hyperv.errors import HostUnreachable
from bot.hyperv.winrm.connect import Credentials, refused_in_clear
from bot.hyperv.winrm.host import WinRMHost
from bot.hyperv.winrm.pool import WinRMTimeouts
from bot.inventory.models import AuthMethod, Host, Transport
from tests.emulator_support import pool, run, start_fleet, within, wsman


@pytest.fixture
def fleet() -> Iterator[EmulatedFleet]:
    started = start_fleet(["HV01"])
    yield started
    started.stop()


def test_ntlm_with_message_encryption(fleet: EmulatedFleet) -> None:
    client = wsman(fleet.port_of("HV01"), auth="ntlm")  # encryption="auto" over HTTP
    with RunspacePool(client) as opened:
        ps = run(opened, lambda p: p.add_cmdlet("Get-VM").add_parameter("Name", "APP01"))
        assert ps.output[0].adapted_properties["Name"] == "APP01"
        ps = run(opened, lambda p: p.add_cmdlet("Get-VMSnapshot").add_parameter("VMName", "APP01"))
        assert not ps.had_errors
    assert client.transport.encryption is not None  # the bodies really were sealed


def test_without_allow_unencrypted_only_sealed_messages_are_taken() -> None:
    """AllowUnencrypted off, as Windows ships it
    (https://learn.microsoft.com/windows/win32/winrm/installation-and-configuration-for-windows-remote-management):
    over HTTP, a message sent in the clear is refused with a server error,
    whether NTLM or Basic authenticated it, and no shell is made; the same
    NTLM client sealing its messages (pypsrp's default) is served."""
    fleet = start_fleet(["HV01"], allow_unencrypted=False)
    try:
        port = fleet.port_of("HV01")
        for client in (wsman(port, auth="ntlm", encryption="never"), wsman(port, auth="basic")):
            with pytest.raises(WinRMTransportError) as refused:
                within(10, RunspacePool(client).open)
            assert refused.value.code == 500
        assert fleet.server("HV01").logons  # NTLM did authenticate: the clear text was refused
        assert fleet.server("HV01").wsman.shell_count == 0
        sealed = wsman(port, auth="ntlm")
        with RunspacePool(sealed) as opened:
            ps = run(opened, lambda p: p.add_cmdlet("Get-VM").add_parameter("Name", "APP01"))
            assert ps.output[0].adapted_properties["Name"] == "APP01"
        assert sealed.transport.encryption is not None
    finally:
        fleet.stop()


@pytest.mark.parametrize("auth", ["basic", "ntlm"])
def test_wrong_password_is_an_authentication_error(fleet: EmulatedFleet, auth: str) -> None:
    with pytest.raises(AuthenticationError):
        within(
            10,
            lambda: RunspacePool(wsman(fleet.port_of("HV01"), auth=auth, password="nope")).open(),
        )


def test_unauthorized_fault_rejects_good_credentials(fleet: EmulatedFleet) -> None:
    fleet.server("HV01").faults = Faults(unauthorized=True)
    with pytest.raises(AuthenticationError):
        within(10, lambda: RunspacePool(wsman(fleet.port_of("HV01"))).open())


def test_refuse_then_listen_again_on_the_same_port(fleet: EmulatedFleet) -> None:
    server = fleet.server("HV01")
    port = server.port
    server.faults = Faults(refuse=True)
    with pytest.raises(requests.exceptions.ConnectionError):
        within(10, lambda: RunspacePool(wsman(port)).open())
    server.faults = Faults()
    assert server.port == port
    with pool(port) as opened:
        assert run(opened, lambda p: p.add_cmdlet("Get-VM")).output


def test_dropped_connection(fleet: EmulatedFleet) -> None:
    with pool(fleet.port_of("HV01")) as opened:
        fleet.server("HV01").faults = Faults(drop=True)
        with pytest.raises(requests.exceptions.ConnectionError):
            within(10, lambda: run(opened, lambda p: p.add_cmdlet("Get-VM")))
        fleet.server("HV01").faults = Faults()


def test_hung_cmdlet_is_stopped_within_the_deadline(fleet: EmulatedFleet) -> None:
    server = fleet.server("HV01")
    server.faults = Faults(hang={"Checkpoint-VM"})
    with pool(server.port) as opened:
        ps = PowerShell(opened)
        ps.add_cmdlet("Get-VM").add_parameter("Name", "APP01").add_cmdlet("Checkpoint-VM")
        ps.begin_invoke()
        deadline = time.monotonic() + 1.0
        while ps.state == PSInvocationState.RUNNING and time.monotonic() < deadline:
            ps.poll_invoke(timeout=1)  # a Receive that times out is retried silently
        assert ps.state == PSInvocationState.RUNNING
        started = time.monotonic()
        within(5, ps.stop)
        assert time.monotonic() - started < 2
        assert ps.state == PSInvocationState.STOPPED
        # The pool is still usable and nothing was checkpointed.
        after = run(
            opened, lambda p: p.add_cmdlet("Get-VMSnapshot").add_parameter("VMName", "APP01")
        )
        assert after.output == [] and not after.had_errors


def test_latency_is_added_to_every_request(fleet: EmulatedFleet) -> None:
    server = fleet.server("HV01")
    with pool(server.port) as opened:
        server.faults = Faults(latency_ms=150)
        started = time.monotonic()
        run(opened, lambda p: p.add_cmdlet("Get-VM").add_parameter("Name", "APP01"))
        assert time.monotonic() - started >= 0.3  # at least Command + Receive


def test_deleted_shell_is_a_wsman_fault(fleet: EmulatedFleet) -> None:
    opened = RunspacePool(wsman(fleet.port_of("HV01")))
    opened.open()
    shell = opened.shell
    selectors = shell._selector_set
    opened.close()
    with pytest.raises(WSManFaultError) as caught:
        opened.connection.get(shell.resource_uri, selector_set=selectors)
    assert caught.value.code == 0x8033805B
    assert "shell was not found" in (caught.value.reason or "")


def test_stop_leaves_no_threads_even_with_a_hung_pipeline() -> None:
    before = set(threading.enumerate())
    fleet = start_fleet(["HV01", "HV02"], faults=Faults(hang=frozenset({"Get-VM"})))
    opened = RunspacePool(wsman(fleet.port_of("HV01"), auth="ntlm"))
    opened.open()
    ps = PowerShell(opened)
    ps.add_cmdlet("Get-VM")
    ps.begin_invoke()
    within(5, fleet.stop)
    # A connection thread that has sent its last answer may still be on its
    # way out when stop() returns (CI saw one, once): each gets 2 s to end;
    # a thread still blocked on the hung pipeline would not.
    leaked = [t for t in set(threading.enumerate()) - before if t.is_alive()]
    for thread in leaked:
        thread.join(2.0)
    assert [t for t in leaked if t.is_alive()] == []


def test_fault_spec_parsing() -> None:
    faults = Faults.parse("latency=50, hang=Checkpoint-VM,hang=Remove-VMSnapshot,refuse,401")
    assert faults.latency_ms == 50 and faults.refuse and faults.unauthorized
    assert faults.hangs("checkpoint-vm") and faults.hangs("REMOVE-VMSNAPSHOT")
    assert Faults(hang={"Get-VM"}).hang == frozenset({"get-vm"})
    assert Faults.parse("slow=Checkpoint-VM:4000").delay_ms("checkpoint-vm") == 4000
    assert Faults.parse("late=Set-VM:5000").late == {"set-vm": 5000}
    for bad in ("latency=soon", "slow=Checkpoint-VM", "slow=Checkpoint-VM:soon", "late=Set-VM"):
        with pytest.raises(FaultSpecError):
            Faults.parse(bad)


def test_a_slow_cmdlet_takes_its_time_and_the_log_file_shows_what_arrived(
    tmp_path: Path,
) -> None:
    mirror = tmp_path / "commands.jsonl"
    log = EmulatorLog(mirror=mirror)
    fleet = start_fleet(["HV01"], faults=Faults(slow={"Get-VMSnapshot": 400}), log=log)
    try:
        with pool(fleet.port_of("HV01")) as opened:
            started = time.monotonic()
            run(opened, lambda p: p.add_cmdlet("Get-VM").add_parameter("Name", "APP01"))
            fast = time.monotonic() - started
            started = time.monotonic()
            run(opened, lambda p: p.add_cmdlet("Get-VMSnapshot").add_parameter("VMName", "APP01"))
            assert time.monotonic() - started >= 0.4 > fast
    finally:
        fleet.stop()
        log.close()
    rows = [json.loads(line) for line in mirror.read_text(encoding="utf-8").splitlines()]
    assert [(r["host"], r["cmdlet"], r["parameters"]) for r in rows][-2:] == [
        ("HV01", "Get-VM", {"Name": "APP01"}),
        ("HV01", "Get-VMSnapshot", {"VMName": "APP01"}),
    ]
    assert all(r["is_script"] is False and r["at"] for r in rows)


def test_wsman_layer_answers_garbage_with_a_fault() -> None:
    service = WSManService("HV01", lambda: pytest.fail("no session expected"))
    status, body = service.handle(b"<not-xml")
    assert status == 400 and b"WSManFault" in body
    assert parse_duration("PT20.5S") == 20.5 and parse_duration("PT1M") == 60


@contextmanager
def emulator_cli(*options: str, hosts: tuple[str, ...] = ("HV01",)) -> Iterator[dict[str, int]]:
    """`checkpoint-bot emulator` serving `hosts` in a child process: the
    ports it printed, by host; stopped with SIGTERM, which must end it 0."""
    from bot.devtools.hostmodel import demo_hosts_path

    code = "from bot.devtools.emulator.cli import emulator; emulator()"
    args = [sys.executable, "-c", code, "--hosts", str(demo_hosts_path()), "--port", "0"]
    args += [arg for name in hosts for arg in ("--host", name)]
    proc = subprocess.Popen(
        [*args, *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    try:
        lines = [proc.stdout.readline().strip() for _ in hosts] if proc.stdout else []
        assert [line.split("\t")[0] for line in lines] == list(hosts)
        yield {line.split("\t")[0]: int(line.rsplit(":", 1)[1].split("/")[0]) for line in lines}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    assert proc.returncode == 0


def test_cli_prints_the_mapping_and_stops_on_sigterm() -> None:
    with (
        emulator_cli("--faults", "latency=5", hosts=("HV01", "HV03")) as ports,
        pool(ports["HV01"]) as opened,
    ):
        assert run(opened, lambda p: p.add_cmdlet("Get-VM")).output


def test_cli_serves_as_windows_ships_it_with_no_allow_unencrypted() -> None:
    with emulator_cli("--no-allow-unencrypted") as ports:
        with pytest.raises(WinRMTransportError) as refused:
            within(10, RunspacePool(wsman(ports["HV01"], auth="basic")).open)
        assert refused.value.code == 500
        with pool(ports["HV01"], auth="ntlm") as sealed:  # pypsrp seals by default
            assert run(sealed, lambda p: p.add_cmdlet("Get-VM")).output


def _basic_over_http(port: int, auth: str = "basic") -> WinRMHost:
    spec = Host.model_validate(
        {
            "name": "HV01",
            "address": "127.0.0.1",
            "transport": "http",
            "port": port,
            "auth": auth,
            "allow_basic": auth == "basic",
            "credential": {"username": "hvadmin", "password_env": "HV_PASSWORD"},
            "volumes": [{"path": "D:\\", "capacity_gb": 2000}],
        }
    )
    credential = Credentials({"HV_PASSWORD": "Passw0rd!"}).for_host(spec)
    timeouts = WinRMTimeouts(call=10, connect=2, read=5, operation=2, read_retries=0)
    return WinRMHost(spec, credential, timeouts=timeouts)


def test_basic_over_http_refused_as_windows_ships_it_says_what_to_use() -> None:
    """A host whose WinRM service has AllowUnencrypted false (the Windows
    default) answers Basic over HTTP with HTTP 500, which read as an
    outage: the error says the host may refuse it and what to use."""
    with emulator_cli("--no-allow-unencrypted") as ports:
        host = _basic_over_http(ports["HV01"])
        try:
            with pytest.raises(HostUnreachable) as refused:
                host.list_vms()
        finally:
            host.close()
        assert refused.value.message == (
            "Get-VM on HV01: HTTP 500 from the WinRM service; the host may refuse Basic "
            "over HTTP, which is unencrypted (WinRM's AllowUnencrypted is false by default): "
            "use transport: https, or auth: ntlm or kerberos, which encrypt each message"
        )
        sealed = _basic_over_http(ports["HV01"], auth="ntlm")
        try:
            assert sealed.list_vms()  # what the message advises works there
        finally:
            sealed.close()


def test_only_basic_over_http_is_told_about_allow_unencrypted() -> None:
    spec = Host.model_validate(
        {
            "name": "HV01",
            "address": "hv01.corp.example",
            "auth": "basic",
            "allow_basic": True,
            "credential": {"username": "hvadmin", "password_env": "HV_PASSWORD"},
            "volumes": [{"path": "D:\\", "capacity_gb": 2000}],
        }
    )
    http = spec.model_copy(update={"transport": Transport.HTTP})
    assert refused_in_clear(http, "HTTP500") is not None
    assert refused_in_clear(http, "HTTP503") is None
    assert refused_in_clear(spec, "HTTP500") is None  # HTTPS
    assert refused_in_clear(http.model_copy(update={"auth": AuthMethod.NTLM}), "HTTP500") is None


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--inventory", "{inventory}"], "only read for --write-inventory"),
        (["--host", "HV09"], "--host HV09: not in the host model (it has: HV01, HV02, HV03)"),
        (["--hosts", "{inventory}"], "unknown field"),
    ],
)
def test_cli_refuses_what_it_cannot_serve(args: list[str], expected: str) -> None:
    from click.testing import CliRunner

    from bot.devtools.emulator.cli import emulator
    from bot.inventory import demo_inventory_path

    argv = [arg.format(inventory=demo_inventory_path()) for arg in args]
    result = CliRunner().invoke(emulator, [*argv, "--port", "0"])
    assert result.exit_code == 2 and expected in result.output, result.output


# An estate of one failover cluster and a standalone host, as an admin
# onboarding it writes it: the hosts in the inventory, no `clusters:` yet.
CLUSTERED_MODEL = """
clusters:
  - name: hva-cluster
    nodes: [HVA1, HVA2]
    shared_volumes:
      - {path: 'C:\\ClusterStorage\\Volume1', capacity_gb: 1000, used_gb: 200}
hosts:
  - name: HVA1
    volumes: [{path: 'D:\\', capacity_gb: 500, used_gb: 100}]
    vms:
      - {name: APPA1, vm_id: aaaaaaaa-1111-4111-8111-111111111111,
         volume: 'C:\\ClusterStorage\\Volume1', is_clustered: true}
  - name: HVA2
    volumes: [{path: 'D:\\', capacity_gb: 500, used_gb: 100}]
    vms: []
  - name: HVS1
    volumes: [{path: 'D:\\', capacity_gb: 500, used_gb: 100}]
    vms:
      - {name: NEWAPP, vm_id: aaaaaaaa-1111-4111-8111-222222222222}
"""
HOSTS_ONLY_INVENTORY = """
hosts:
  - {name: HVA1, address: hva1.corp.example, credential: {username: x, password_env: HV_PW}}
  - {name: HVA2, address: hva2.corp.example, credential: {username: x, password_env: HV_PW}}
  - {name: HVS1, address: hvs1.corp.example, credential: {username: x, password_env: HV_PW}}
vms: []
"""


def test_cli_write_inventory_carries_the_host_models_clusters(tmp_path: Path) -> None:
    """`emulator --hosts MODEL --inventory INV --write-inventory OUT`: OUT
    loads with the bot's loader and has the model's failover cluster, its
    nodes and its CSV, so the bot treats HVA1 and HVA2 as the nodes they are
    (docs/clusters.md); `cert_validation`, about an HTTPS certificate, is on
    no HTTP host. Seen: `clusters: []` and `cert_validation: false` on every
    host."""
    from bot.inventory import load_inventory, parse_inventory

    model, inventory = tmp_path / "hosts.yaml", tmp_path / "inventory.yaml"
    model.write_text(CLUSTERED_MODEL, encoding="utf-8")
    inventory.write_text(HOSTS_ONLY_INVENTORY, encoding="utf-8")
    written = tmp_path / "emulated.yaml"
    code = "from bot.devtools.emulator.cli import emulator; emulator()"
    args = [sys.executable, "-c", code, "--hosts", str(model), "--port", "0"]
    args += ["--inventory", str(inventory), "--write-inventory", str(written)]
    with subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ)
    ) as proc:
        try:
            assert proc.stderr is not None
            said = proc.stderr.readline()  # after the file is written whole
            assert said.startswith("emulator: wrote"), said
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
    assert proc.returncode == 0

    loaded = load_inventory(written)
    cluster = loaded.cluster("hva-cluster")
    assert cluster.nodes == ["HVA1", "HVA2"]
    assert [(v.path, v.capacity_gb, v.used_gb) for v in cluster.shared_volumes] == [
        ("C:\\ClusterStorage\\Volume1\\", 1000, 200)
    ]
    assert loaded.cluster_of("HVA2") is cluster and loaded.cluster_of("HVS1") is None
    text = written.read_text(encoding="utf-8")
    assert "cert_validation" not in text
    assert all(h.transport.value == "http" for h in loaded.hosts)
    # A VM the host model keeps on the CSV can be declared there now.
    doc = yaml.safe_load(text)
    doc["vms"] = [
        {
            "name": "APPA1",
            "vm_id": "aaaaaaaa-1111-4111-8111-111111111111",
            "host": "HVA1",
            "volume": "C:\\ClusterStorage\\Volume1",
        }
    ]
    redone = parse_inventory(yaml.safe_dump(doc), "emulated.yaml")
    assert redone.vm("APPA1").volume == "C:\\ClusterStorage\\Volume1\\"


def test_write_inventory_keeps_the_inventorys_own_clusters() -> None:
    """What the inventory says of a cluster is the operators' and is kept,
    even where the host model disagrees (a test of drift needs exactly
    that); the model's cluster is then named in a comment, not written. An
    HTTPS host keeps `cert_validation`."""
    from bot.devtools.emulator.pointing import emulated_inventory
    from bot.devtools.hostmodel import HostModel
    from bot.inventory import parse_inventory

    model = HostModel.model_validate(yaml.safe_load(CLUSTERED_MODEL))
    declared = parse_inventory(
        HOSTS_ONLY_INVENTORY + "clusters:\n  - {name: old-cluster, nodes: [HVA1]}\n", "inv.yaml"
    )
    text = emulated_inventory(
        declared, {"HVA1": 1}, "x", "HV_PW", tls=True, clusters=model.clusters
    )
    assert "# the host model's cluster hva-cluster is not written: " in text
    written = parse_inventory(text, "emulated.yaml")
    assert [(c.name, c.nodes) for c in written.clusters] == [("old-cluster", ["HVA1"])]
    hosts = {h["name"]: h for h in yaml.safe_load(text)["hosts"]}
    assert hosts["HVA1"]["transport"] == "https" and hosts["HVA1"]["cert_validation"] is True
    # A node the inventory does not list: the cluster cannot be written.
    partial = parse_inventory(HOSTS_ONLY_INVENTORY.replace("  - {name: HVA2,", "  # "), "inv.yaml")
    text = emulated_inventory(partial, {"HVA1": 1}, "x", "HV_PW", clusters=model.clusters)
    assert "# the host model's cluster hva-cluster is not written: HVA2 is not a host" in text
    assert parse_inventory(text, "emulated.yaml").clusters == []
