"""Hosts and VMs as the inventory file declares them.

The models hold references to secrets (environment variable names, file paths), never
secrets. Facts the guardrails rely on (roles, domain, app group, disks, replica) come
from here or from discovery on the host; a missing fact stays missing, so rules fail closed.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import os
import re
import socket
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bot.domain import Role, canonical_guid
from bot.hyperv.types import CheckpointType
from bot.inventory.names import name_problem

__all__ = [
    "DC_ROLES",
    "VM",
    "AuthMethod",
    "Cluster",
    "CredentialRef",
    "Host",
    "HostVolume",
    "Role",
    "Transport",
    "VMDisks",
    "normalize_vm_id",
    "normalize_volume_path",
]

DEFAULT_PORTS = {"https": 5986, "http": 5985}
_GUID_EXAMPLE = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
_DRIVE = re.compile(r"[A-Za-z]:(\\.*)?\Z")
_UNC = re.compile(r"\\\\[^\\]+\\[^\\]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ADDRESS = re.compile(r"[A-Za-z0-9.:%\[\]-]+\Z")
_ENDPOINT = r"^[A-Za-z0-9._-]+$"  # Rust regex (pydantic): no \Z
_DOMAIN = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\Z")


class _Model(BaseModel):
    # hide_input_in_errors: pydantic's own error text would echo a pasted secret.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class Transport(enum.StrEnum):
    HTTPS = "https"
    HTTP = "http"


class AuthMethod(enum.StrEnum):
    """pypsrp's `auth=` values the bot accepts (not `credssp`: see `CREDSSP_REFUSED`)."""

    NEGOTIATE = "negotiate"
    NTLM = "ntlm"
    KERBEROS = "kerberos"
    CERTIFICATE = "certificate"
    BASIC = "basic"


# CredSSP hands the user's credentials to the host, where they are cached and can be
# stolen if the host is compromised (Microsoft: "Making the second hop in PowerShell
# Remoting", https://learn.microsoft.com/powershell/scripting/security/remoting/ps-remoting-second-hop).
# The bot's JEA endpoint runs Hyper-V cmdlets on the host itself and never makes a
# second hop, so nothing needs delegating: docs/connect-hosts.md, "Why not CredSSP".
CREDSSP_REFUSED = (
    "credssp is not supported: it delegates the bot's credentials to the host, where a "
    "compromised host can steal them, and a JEA endpoint needs no delegation; use "
    "kerberos (or negotiate) with HTTPS (docs/connect-hosts.md)"
)


def _auth_method(value: object) -> object:
    value = _lowercase(value)
    if value == "credssp":
        raise ValueError(CREDSSP_REFUSED)
    return value


def _ip_address(value: str) -> str | None:
    """The address `value` is, in its usual form, when it is an IP address
    in any form a resolver takes for one; else None. Besides the dotted
    quad, `inet_aton` (which getaddrinfo uses for IPv4 literals) takes
    shorthand forms: `127.1`, `2130706433`, `0x7f000001`, octal parts
    (inet(3); Python's socket.inet_aton,
    https://docs.python.org/3/library/socket.html#socket.inet_aton)."""
    text = value.strip("[]").split("%")[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    # Only digits, dots and hex: no DNS name is all numeric (RFC 1123 2.1,
    # a top-level label is alphabetic), and glibc's inet_aton stops at
    # whitespace, which an address never holds anyway.
    if not text or not re.fullmatch(r"[0-9A-Fa-fXx.]+", text):
        return None
    try:
        return socket.inet_ntoa(socket.inet_aton(text))
    except OSError:
        return None


def _is_ip_address(value: str) -> bool:
    return _ip_address(value) is not None


# What a host's certificate is validated against: a PEM file of CA
# certificates, as Python's ssl module loads it
# (SSLContext.load_verify_locations(cafile=...),
# https://docs.python.org/3/library/ssl.html#ssl.SSLContext.load_verify_locations;
# requests and urllib3 load `verify=` so).
_CA_BUNDLE_RIGHT = "name the PEM file of the CA that signed the host's certificate"


def ca_bundle_problem(bundle: Path) -> str | None:
    """What is wrong with `bundle` as a CA bundle, from here (no host asked),
    as one clause with what would be right; None when it loads. A file the
    TLS library cannot take fails every handshake the same way: it is the
    bot's configuration, not the host, that is wrong."""
    try:
        found = bundle.stat()
    except FileNotFoundError:
        return f"ca_bundle {bundle} does not exist: {_CA_BUNDLE_RIGHT}"
    except OSError as exc:
        return f"ca_bundle {bundle} cannot be looked at ({exc.strerror}): {_CA_BUNDLE_RIGHT}"
    if bundle.is_dir():
        return f"ca_bundle {bundle} is a directory: {_CA_BUNDLE_RIGHT}"
    if not os.access(bundle, os.R_OK):
        return (
            f"ca_bundle {bundle} cannot be read by the bot's user: let it read the file "
            "(chmod/chown), or copy the CA's PEM file where it can"
        )
    problem = _loads(str(bundle), found.st_mtime_ns, found.st_size)
    if problem is not None:
        return (
            f"ca_bundle {bundle} holds no certificate ({problem}): "
            f"{_CA_BUNDLE_RIGHT} (-----BEGIN CERTIFICATE----- blocks; not a key, not DER)"
        )
    return None


@functools.lru_cache(maxsize=64)
def _loads(path: str, _mtime_ns: int, _size: int) -> str | None:
    """OpenSSL's reason when `path` gives no CA certificate, else None;
    once per version of the file (hosts share their bundle)."""
    # Imported here: only an inventory naming a bundle pays for OpenSSL's
    # module; every command reads the inventory (bench/cli_start.py).
    import ssl

    try:
        ssl.create_default_context().load_verify_locations(cafile=path)
    except ssl.SSLError as exc:
        return str(exc.reason or exc.library or "not PEM").replace("_", " ").lower()
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


DC_ROLES = frozenset({Role.DOMAIN_CONTROLLER, Role.READ_ONLY_DOMAIN_CONTROLLER})


def _lowercase(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


def _safe_name(value: object) -> object:
    if isinstance(value, str):
        problem = name_problem(value)
        if problem is not None:
            raise ValueError(f"name {value!r} {problem}")
    return value


def normalize_vm_id(value: object) -> str:
    """A VMId in Hyper-V's canonical form: lowercase, no braces."""
    kept = canonical_guid(value) if isinstance(value, str) else None
    if kept is None:
        shown = repr(value) if isinstance(value, str) else f"a {type(value).__name__}"
        raise ValueError(f"expected a GUID like {_GUID_EXAMPLE}, got {shown}")
    return kept


def normalize_volume_path(value: object) -> object:
    """`d:`, `D:/` and `D:\\` are one volume, stored as `D:\\`.

    Always with a trailing backslash, as Win32_Volume names volumes (also CSVs:
    `C:\\ClusterStorage\\Volume1\\`), so a path can be appended directly.
    """
    if not isinstance(value, str):
        return value
    text = value.strip().replace("/", "\\")
    if _DRIVE.match(text):
        return text[0].upper() + ":" + text[2:].rstrip("\\") + "\\"
    if _UNC.match(text):
        return text.rstrip("\\") + "\\"
    raise ValueError(
        "expected a Windows volume path like 'D:\\' or 'C:\\ClusterStorage\\Volume1', "
        f"got {value!r}"
    )


def _parse_checkpoint_type(value: object) -> CheckpointType:
    try:
        return CheckpointType(CheckpointType.parse(value))
    except ValueError:
        names = ", ".join(t.name for t in _CHECKPOINT_TYPE_ORDER)
        raise ValueError(f"expected one of: {names}, got {value!r}") from None


_CHECKPOINT_TYPE_ORDER = (
    CheckpointType.Production,
    CheckpointType.ProductionOnly,
    CheckpointType.Standard,
    CheckpointType.Disabled,
)


def _env_name(value: object, info: ValidationInfo) -> object:
    # Never echoed: what is typed where a variable's NAME belongs is often
    # the secret itself (seen: `password_env: 'Summer2026!'` printed back).
    if isinstance(value, str) and not _ENV_NAME.match(value):
        secret = "password" if info.field_name == "password_env" else "value"
        raise ValueError(
            "is not the name of an environment variable (letters, digits and _, not starting "
            f"with a digit, like HYPERV_PASSWORD; the value is not shown: it may be the "
            f"{secret} itself)"
        )
    return value


def _address(value: object) -> object:
    if isinstance(value, str) and not _ADDRESS.match(value):
        raise ValueError(
            f"expected a host name or IP address like hv01.corp.example, got {value!r}"
        )
    return value


def _domain(value: object) -> object:
    if isinstance(value, str):
        text = value.strip().rstrip(".").lower()
        if not _DOMAIN.match(text):
            raise ValueError(f"expected a DNS domain like corp.example, got {value!r}")
        return text
    return value


SafeName = Annotated[str, BeforeValidator(_safe_name)]
VolumePath = Annotated[str, BeforeValidator(normalize_volume_path)]
VMId = Annotated[str, BeforeValidator(normalize_vm_id)]
EnvName = Annotated[str, BeforeValidator(_env_name)]
NonEmpty = Annotated[str, Field(min_length=1)]


class HostVolume(_Model):
    path: VolumePath
    capacity_gb: float = Field(gt=0)
    used_gb: float = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _fits(self) -> Self:
        if self.used_gb > self.capacity_gb:
            raise ValueError(
                f"used_gb ({self.used_gb:g}) is more than capacity_gb ({self.capacity_gb:g})"
            )
        return self


class CredentialRef(_Model):
    """Where the bot finds a host's credentials at run time; never the secret itself."""

    username: NonEmpty | None = None
    username_env: EnvName | None = None
    password_env: EnvName | None = None
    password_file: Path | None = None
    certificate_pem: Path | None = None
    certificate_key_pem: Path | None = None
    # Kerberos: a keytab holding the principal's keys (`username` names the principal,
    # default the keytab's first entry); without it the process's KRB5_CLIENT_KTNAME or
    # KRB5CCNAME is used (docs/connect-hosts.md).
    keytab_file: Path | None = None
    # A trap, not a setting: it exists so a literal password is caught at its own line
    # with advice, and is never echoed (excluded from dumps, repr and field lists).
    password: object = Field(default=None, exclude=True, repr=False)

    @field_validator("password", mode="before")
    @classmethod
    def _no_literal_password(cls, value: object) -> None:
        if value is not None:
            raise ValueError(
                "a literal password is not allowed in the inventory; use password_env "
                "(an environment variable's name) or password_file (a file's path)"
            )

    @model_validator(mode="after")
    def _one_of_each(self) -> Self:
        if self.username is not None and self.username_env is not None:
            raise ValueError("give username or username_env, not both")
        if self.password_env is not None and self.password_file is not None:
            raise ValueError("give password_env or password_file, not both")
        if (self.certificate_pem is None) != (self.certificate_key_pem is None):
            raise ValueError("certificate_pem and certificate_key_pem go together")
        if self.keytab_file is not None and self.has_password:
            raise ValueError("give keytab_file or a password, not both")
        return self

    @property
    def has_username(self) -> bool:
        return self.username is not None or self.username_env is not None

    @property
    def has_password(self) -> bool:
        return self.password_env is not None or self.password_file is not None


class Host(_Model):
    """A Hyper-V host and how to reach it over WinRM."""

    name: SafeName
    address: Annotated[str, BeforeValidator(_address)]
    transport: Annotated[Transport, BeforeValidator(_lowercase)] = Transport.HTTPS
    port: int = Field(default=DEFAULT_PORTS["https"], ge=1, le=65535)
    # Declared before `auth` so the auth check can see it.
    allow_basic: bool = False
    auth: Annotated[AuthMethod, BeforeValidator(_auth_method)] = AuthMethod.NEGOTIATE
    # validate_default: an auth method that needs a credential must say so when it is absent.
    credential: CredentialRef | None = Field(default=None, validate_default=True)
    host_group: NonEmpty | None = None
    volumes: list[HostVolume] = Field(default_factory=list)
    cert_validation: bool = True
    ca_bundle: Path | None = None
    configuration_name: Annotated[str, Field(pattern=_ENDPOINT)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _port_follows_transport(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("port") is None:
            transport = str(data.get("transport") or "https").strip().lower()
            if transport in DEFAULT_PORTS:
                return {**data, "port": DEFAULT_PORTS[transport]}
        return data

    @field_validator("auth")
    @classmethod
    def _basic_needs_opt_in(cls, auth: AuthMethod, info: ValidationInfo) -> AuthMethod:
        if auth is AuthMethod.BASIC and not info.data.get("allow_basic"):
            raise ValueError(
                "basic auth sends the password merely base64-encoded, so it is refused; "
                "use negotiate, kerberos or certificate, or set allow_basic: true to accept that"
            )
        return auth

    @field_validator("credential")
    @classmethod
    def _credential_fits_auth(
        cls, credential: CredentialRef | None, info: ValidationInfo
    ) -> CredentialRef | None:
        auth = info.data.get("auth")
        if auth is None:  # auth itself was invalid; that error says enough
            return credential
        if (
            credential is not None
            and credential.keytab_file is not None
            and auth not in (AuthMethod.KERBEROS, AuthMethod.NEGOTIATE)
        ):
            raise ValueError(f"keytab_file is for kerberos auth, not {auth}")
        if auth is AuthMethod.CERTIFICATE:
            if credential is None or credential.certificate_pem is None:
                raise ValueError(
                    "certificate auth needs certificate_pem and certificate_key_pem (file paths)"
                )
        elif auth in (AuthMethod.NTLM, AuthMethod.BASIC):
            if credential is None or not (credential.has_username and credential.has_password):
                raise ValueError(
                    f"{auth} auth needs username (or username_env) and password_env "
                    "(or password_file)"
                )
        elif (
            credential is not None
            and not credential.has_username
            and credential.keytab_file is None
        ):
            # negotiate / kerberos may use the bot's own Kerberos ticket with no credential
            # at all, but a credential without a user name is a half-finished one.
            raise ValueError("needs username or username_env (or keytab_file)")
        return credential

    @model_validator(mode="after")
    def _kerberos_needs_a_name(self) -> Self:
        # A Kerberos ticket is for a service principal name, HTTP/<host name>; an IP
        # address has none, and Windows' own client falls back to NTLM for one
        # (about_Remote_Troubleshooting, "How to use an IP address in a remote command",
        # https://learn.microsoft.com/powershell/module/microsoft.powershell.core/about/about_remote_troubleshooting).
        ip = _ip_address(self.address) if self.auth is AuthMethod.KERBEROS else None
        if ip is not None:
            shown = self.address if ip == self.address.strip("[]") else f"{self.address} ({ip})"
            raise ValueError(
                f"kerberos auth needs the host's DNS name in address (its SPN is "
                f"HTTP/<name>), not the IP address {shown}; e.g. address: "
                "hv01.corp.example"
            )
        return self

    @field_validator("volumes")
    @classmethod
    def _distinct_volumes(cls, volumes: list[HostVolume]) -> list[HostVolume]:
        seen: set[str] = set()
        for volume in volumes:
            if volume.path.casefold() in seen:
                raise ValueError(f"volume {volume.path!r} is listed twice")
            seen.add(volume.path.casefold())
        return volumes

    @field_validator("ca_bundle")
    @classmethod
    def _ca_bundle_loads(cls, bundle: Path | None, info: ValidationInfo) -> Path | None:
        # Checked here, where the inventory is read: a bundle the bot cannot
        # use fails every handshake, which read as the host being down
        # ("try again once it answers"). Plain HTTP has no certificate.
        if bundle is None or info.data.get("transport") is not Transport.HTTPS:
            return bundle
        problem = ca_bundle_problem(bundle)
        if problem is not None:
            name = info.data.get("name")
            raise ValueError(f"{name}: {problem}" if name else problem)
        return bundle

    def volume(self, path: str) -> HostVolume | None:
        wanted = str(normalize_volume_path(path)).casefold()
        return next((v for v in self.volumes if v.path.casefold() == wanted), None)

    @property
    def certificate_unchecked(self) -> bool:
        """HTTPS to this host takes any certificate: `cert_validation: false`
        and no `ca_bundle` (a bundle is validated against whatever
        cert_validation says, bot.hyperv.winrm.connect.wsman_options).
        Plain HTTP has no certificate to check."""
        return (
            self.transport is Transport.HTTPS
            and not self.cert_validation
            and self.ca_bundle is None
        )


class Cluster(_Model):
    """A failover cluster: the nodes that may own its VMs, and the Cluster
    Shared Volumes every node sees at the same path (docs/clusters.md).

    A clustered VM can be live-migrated to any node, so the node the
    inventory names is where the bot looks first, never where it must be
    ("Live migration moves running virtual machines from one node of a
    failover cluster to a different node in the same cluster",
    https://learn.microsoft.com/windows-server/virtualization/hyper-v/manage/live-migration-overview).
    A CSV is mounted under `C:\\ClusterStorage\\` on every node with no drive
    letter (https://learn.microsoft.com/windows-server/failover-clustering/failover-cluster-csvs),
    so it is one volume of the cluster, not one per node.
    """

    name: SafeName
    nodes: list[SafeName] = Field(min_length=1)
    shared_volumes: list[HostVolume] = Field(default_factory=list)

    @field_validator("nodes")
    @classmethod
    def _distinct_nodes(cls, nodes: list[str]) -> list[str]:
        seen: set[str] = set()
        for node in nodes:
            if node.casefold() in seen:
                raise ValueError(f"node {node!r} is listed twice")
            seen.add(node.casefold())
        return nodes

    @field_validator("shared_volumes")
    @classmethod
    def _distinct_volumes(cls, volumes: list[HostVolume]) -> list[HostVolume]:
        seen: set[str] = set()
        for volume in volumes:
            if volume.path.casefold() in seen:
                raise ValueError(f"volume {volume.path!r} is listed twice")
            seen.add(volume.path.casefold())
        return volumes

    def has_node(self, name: str) -> bool:
        return any(node.casefold() == name.casefold() for node in self.nodes)

    def volume(self, path: str) -> HostVolume | None:
        wanted = str(normalize_volume_path(path)).casefold()
        return next((v for v in self.shared_volumes if v.path.casefold() == wanted), None)


class VMDisks(_Model):
    """Disk kinds that change what a checkpoint can do (docs/host-truth.md,
    "Shared disks")."""

    shared_vhdx: bool = False
    vhd_set: bool = False
    passthrough: bool = False
    virtual_fibre_channel: bool = False

    @property
    def shared(self) -> bool:
        return self.shared_vhdx or self.vhd_set


class VM(_Model):
    name: SafeName
    vm_id: VMId
    host: SafeName
    tags: dict[str, str] = Field(default_factory=dict)
    roles: list[Annotated[Role, BeforeValidator(_lowercase)]] = Field(default_factory=list)
    domain: Annotated[str, BeforeValidator(_domain)] | None = None
    app_group: NonEmpty | None = None
    disks: VMDisks = Field(default_factory=VMDisks)
    hyperv_replica: bool = False
    guest_os: NonEmpty | None = None
    checkpoint_type: Annotated[CheckpointType, BeforeValidator(_parse_checkpoint_type)] = (
        CheckpointType.Production
    )
    automatic_checkpoints: bool = False
    # None until the inventory fills in its host's first volume.
    volume: VolumePath | None = None
    owner: NonEmpty | None = None
    # Written by `inventory discover` (docs/discovery.md): the roles discovery
    # cannot see (SQL AG, Exchange DAG, DFS-R, guest cluster) have not been
    # set by a person yet, so the guardrails treat the VM's roles as unknown.
    roles_unknown: bool = False
    # Written by `inventory discover --merge`: the day no host it asked had
    # this VM. Kept, not deleted, until a person removes the entry.
    missing_since: date | None = None
    # A trap, not a setting: how a simulated guest behaves is the host
    # model's to say (hyperv.simulator_hosts), never the inventory's.
    simulation: object = Field(default=None, exclude=True, repr=False)

    @field_validator("simulation", mode="before")
    @classmethod
    def _simulation_moved(cls, value: object) -> None:
        if value is not None:
            raise ValueError(
                "`simulation:` moved to the host-model file (hyperv.simulator_hosts, e.g. "
                "deploy/examples/demo-hosts.yaml); remove it from the inventory"
            )

    @property
    def is_domain_controller(self) -> bool:
        return any(role in DC_ROLES for role in self.roles)
