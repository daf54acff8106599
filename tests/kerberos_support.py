"""A real MIT Kerberos realm for the tests: its own KDC on a free loopback port.

    with KerberosRealm.start(tmp_dir) as realm:
        realm.env                          KRB5_CONFIG (and nothing else) for the client
        realm.service_keytab("localhost")  HTTP/localhost's keys, for the emulator (acceptor)
        realm.client_keytab("checkpoint-bot")
        realm.kinit("checkpoint-bot", ccache)

Everything lives in the temp dir: krb5.conf (KRB5_CONFIG), kdc.conf
(KRB5_KDC_PROFILE), the database and its stash, the keytabs. The KDC is
Debian's `krb5kdc` run in the foreground (`-n`) and stopped with the test
session; the database is made with `kdb5_util create -s` and principals with
`kadmin.local` (MIT's admin guide: "Creating the Kerberos database",
https://web.mit.edu/kerberos/krb5-latest/doc/admin/install_kdc.html).
`make kerberos-tools` installs the Debian packages.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from bot.clock import ManualClock
    from bot.devtools.emulator import EmulatedFleet, EmulatorServer, TlsIdentity
    from bot.devtools.hostmodel import HostModel

REALM = "CHECKPOINT.TEST"
TOOLS = ("krb5kdc", "kdb5_util", "kadmin.local", "kinit", "klist")
SBIN = ("/usr/sbin", "/sbin")


def _which(tool: str) -> str | None:
    found = shutil.which(tool)
    if found:
        return found
    for folder in SBIN:
        candidate = Path(folder) / tool
        if candidate.exists():
            return str(candidate)
    return None


def kerberos_missing() -> str | None:
    """What is missing to run a realm here, or None."""
    missing = [tool for tool in TOOLS if _which(tool) is None]
    if missing:
        return f"MIT Kerberos tools missing ({', '.join(missing)}; `make kerberos-tools`)"
    try:
        import gssapi  # noqa: F401
        import krb5  # noqa: F401
    except ImportError as exc:
        return f"pyspnego's Kerberos support is not installed ({exc}; pip install '.[kerberos]')"
    return None


def require_kerberos() -> None:
    """Skip outside CI, fail in CI (as the PostgreSQL fixture does)."""
    problem = kerberos_missing()
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"Kerberos tests cannot run in CI: {problem}")
    pytest.skip(f"Kerberos tests SKIPPED: {problem}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class KerberosRealm:
    root: Path
    port: int
    process: subprocess.Popen[bytes]

    @property
    def env(self) -> dict[str, str]:
        return {"KRB5_CONFIG": str(self.root / "krb5.conf")}

    def _admin(self, query: str) -> None:
        env = {**os.environ, **self.env, "KRB5_KDC_PROFILE": str(self.root / "kdc.conf")}
        done = subprocess.run(
            [_which("kadmin.local") or "kadmin.local", "-r", REALM, "-q", query],
            env=env,
            capture_output=True,
            timeout=30,
            check=False,
        )
        if done.returncode != 0 or b"error" in done.stderr.lower():
            raise RuntimeError(f"kadmin.local -q {query!r}: {done.stderr.decode(errors='replace')}")

    def add_principal(self, name: str, keytab: Path) -> Path:
        """A principal with random keys, exported to `keytab` (as `ktpass` or
        `ktutil` would hand a keytab to a Linux service account)."""
        self._admin(f"addprinc -randkey {name}")
        self._admin(f"ktadd -k {keytab} {name}")
        return keytab

    def add_user(self, name: str, password: str) -> None:
        """A principal with a password (an AD user account, as a KDC sees it)."""
        self._admin(f"addprinc -pw {password} {name}")

    def service_keytab(self, hostname: str) -> Path:
        """HTTP/<hostname>: the SPN a WinRM listener is asked for."""
        return self.add_principal(f"HTTP/{hostname}", self.root / f"http-{hostname}.keytab")

    def client_keytab(self, user: str) -> Path:
        return self.add_principal(user, self.root / f"{user}.keytab")

    def rekey(self, name: str, keytab: Path) -> None:
        """New random keys (a new kvno) for `name`, written to `keytab`: the realm
        moves on and any older copy of the keytab is stale."""
        self._admin(f"ktadd -k {keytab} {name}")

    def kinit(self, user: str, keytab: Path, ccache: Path) -> None:
        """`kinit -k -t KEYTAB USER` into a FILE ccache, as an operator would."""
        env = {**os.environ, **self.env, "KRB5CCNAME": f"FILE:{ccache}"}
        subprocess.run(
            [_which("kinit") or "kinit", "-k", "-t", str(keytab), f"{user}@{REALM}"],
            env=env,
            check=True,
            capture_output=True,
            timeout=30,
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    @classmethod
    @contextlib.contextmanager
    def start(cls, root: Path) -> Iterator[KerberosRealm]:
        """Another process may take the free port before the KDC binds it
        (parallel test workers): then the KDC exits, and a new port is tried."""
        for attempt in range(3):
            port = _free_port()
            _write_config(root, port)
            if attempt == 0:
                _create_database(root)
            realm = cls(root=root, port=port, process=_launch(root))
            try:
                if realm._wait_listening():
                    yield realm
                    return
            finally:
                realm.stop()
        log = root / "kdc.log"
        raise RuntimeError(
            "krb5kdc did not start: " + (log.read_text()[-500:] if log.exists() else "no log")
        )

    def _wait_listening(self) -> bool:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and self.process.poll() is None:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
                return True
            time.sleep(0.05)
        return False


def _env(root: Path) -> dict[str, str]:
    return {
        **os.environ,
        "KRB5_CONFIG": str(root / "krb5.conf"),
        "KRB5_KDC_PROFILE": str(root / "kdc.conf"),
    }


def _write_config(root: Path, port: int) -> None:
    (root / "krb5.conf").write_text(
        "[libdefaults]\n"
        f"  default_realm = {REALM}\n"
        "  dns_lookup_kdc = false\n"
        "  dns_lookup_realm = false\n"
        # The tests name hosts exactly: no DNS canonicalisation, no reverse lookup
        # (https://web.mit.edu/kerberos/krb5-latest/doc/admin/conf_files/krb5_conf.html).
        "  dns_canonicalize_hostname = false\n"
        "  rdns = false\n"
        "  udp_preference_limit = 1\n"
        "[realms]\n"
        f"  {REALM} = {{\n    kdc = 127.0.0.1:{port}\n  }}\n"
    )
    # kdc.conf: https://web.mit.edu/kerberos/krb5-latest/doc/admin/conf_files/kdc_conf.html
    (root / "kdc.conf").write_text(
        "[kdcdefaults]\n"
        f"  kdc_listen = 127.0.0.1:{port}\n"
        f"  kdc_tcp_listen = 127.0.0.1:{port}\n"
        "[realms]\n"
        f"  {REALM} = {{\n"
        f"    database_name = {root / 'principal'}\n"
        f"    key_stash_file = {root / 'stash'}\n"
        f"    acl_file = {root / 'kadm5.acl'}\n"
        f"    kdc_listen = 127.0.0.1:{port}\n"
        f"    kdc_tcp_listen = 127.0.0.1:{port}\n"
        "  }\n"
        "[logging]\n"
        f"  kdc = FILE:{root / 'kdc.log'}\n"
    )
    (root / "kadm5.acl").write_text("")


def _create_database(root: Path) -> None:
    """`kdb5_util create -s`: the database and a stash of its random master key."""
    subprocess.run(
        [_which("kdb5_util") or "kdb5_util", "-r", REALM, "create", "-s", "-W",
         "-P", secrets.token_urlsafe(24)],
        env=_env(root),
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip


def _launch(root: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [_which("krb5kdc") or "krb5kdc", "-n", "-r", REALM],
        env=_env(root),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


# --- a realm this process uses, and one emulated host behind it ------------------------


@contextlib.contextmanager
def isolated_realm(root: Path) -> Iterator[KerberosRealm]:
    """A realm started under `root` whose krb5.conf this process uses. The
    Kerberos library reads its configuration from the process's
    environment; an empty default ccache and no keytab variables keep the
    machine's own tickets and keys out."""
    require_kerberos()
    root.mkdir()
    with KerberosRealm.start(root) as started, pytest.MonkeyPatch.context() as patch:
        patch.setenv("KRB5_CONFIG", started.env["KRB5_CONFIG"])
        patch.setenv("KRB5CCNAME", f"FILE:{root / 'default-ccache'}")
        patch.delenv("KRB5_CLIENT_KTNAME", raising=False)
        patch.delenv("KRB5_KTNAME", raising=False)
        yield started


# One host, HV01, with one VM, WEB01.
WEB01 = "aaaaaaaa-1111-4111-8111-11111111111b"


def one_vm_model() -> HostModel:
    from bot.devtools.hostmodel import HostModel, HostSpec, VMSpec, VolumeSpec

    return HostModel(
        hosts=[
            HostSpec(
                name="HV01",
                volumes=[VolumeSpec(path="D:", capacity_gb=2000, used_gb=700)],
                vms=[VMSpec(name="WEB01", vm_id=WEB01)],
            )
        ]
    )


def kerberos_emulator(
    keytab: Path, clock: ManualClock, tls: TlsIdentity | None = None
) -> EmulatorServer:
    """HV01 of `one_vm_model`, taking only Kerberos logons for `keytab`'s
    service principal (started; stop it when done)."""
    from bot.devtools.emulator import EmulatorLog, EmulatorServer
    from bot.devtools.hostmodel import InMemoryHostStateStore, ModelHost, seed_missing

    store = InMemoryHostStateStore()
    seed_missing(store, one_vm_model())
    return EmulatorServer(
        ModelHost("HV01", store, clock),
        auth=("kerberos",),
        keytab=keytab,
        tls=tls,
        log=EmulatorLog(),
    ).start()


@contextlib.contextmanager
def kerberos_deployment(
    realm: KerberosRealm, workdir: Path, hosts: list[str] | None = None
) -> Iterator[tuple[Path, EmulatedFleet]]:
    """The demo estate's hosts (or `hosts` of them) emulated, taking only
    Kerberos logons for HTTP/localhost, and a config for the installed CLI
    whose inventory (`inv.yaml`) names them with `auth: kerberos` and no
    credential (what `emulator --keytab --write-inventory` writes)."""
    from bot.devtools.emulator import EmulatedFleet
    from bot.devtools.emulator.pointing import emulated_inventory
    from bot.devtools.hostmodel import InMemoryHostStateStore, demo_hosts_path, load_host_model
    from bot.inventory import demo_inventory_path, load_inventory

    fleet = EmulatedFleet.start(
        InMemoryHostStateStore(),
        hosts=hosts,
        model=load_host_model(demo_hosts_path()),
        auth=("kerberos",),
        keytab=realm.service_keytab("localhost"),
    )
    try:
        ports = {name: server.port for name, server in fleet.servers.items()}
        (workdir / "inv.yaml").write_text(
            emulated_inventory(
                load_inventory(demo_inventory_path()), ports, "unused", "UNUSED", kerberos=True
            ),
            encoding="utf-8",
        )
        config = workdir / "bot.yaml"
        config.write_text("inventory: inv.yaml\nhyperv: {backend: winrm}\n", encoding="utf-8")
        yield config, fleet
    finally:
        fleet.stop()
