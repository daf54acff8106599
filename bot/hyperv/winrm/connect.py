"""How to reach one inventory host: its credentials and its WSMan connection.

    Credentials(env).for_host(host) -> HostCredential
    wsman_factory(host, credential, timeouts) -> () -> pypsrp WSMan

Secrets come from the environment mapping handed in (the entry point's
`os.environ`, a test's dict) or from files the inventory names; they stay in
`Secret` objects until the moment the connection is built, and no error or
repr shows them.

Kerberos (docs/connect-hosts.md) takes its credential from, in order: the
host's `credential.keytab_file`, a password, `KRB5_CLIENT_KTNAME` (a client
keytab) or `KRB5CCNAME` (a ccache filled by `kinit`) in that mapping, else
the Kerberos library's default ccache. A keytab or ccache is handed to
pyspnego as a `KerberosKeytab` / `KerberosCCache` credential, which pypsrp
passes through as its user name (pyspnego's credential types:
https://pyspnego.readthedocs.io/ ; MIT's environment variables:
https://web.mit.edu/kerberos/krb5-latest/doc/admin/env_variables.html). The
ticket is asked for `HTTP/<address>`, the SPN a WinRM listener answers to.
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import spnego
from pypsrp.wsman import WSMan

from bot.hyperv.errors import HostAuthError, HostUnreachable, HyperVError
from bot.hyperv.winrm.pool import WinRMTimeouts
from bot.inventory.models import AuthMethod, Host, Transport
from bot.secrets import Secret, SecretError, secret_from, unset_or_empty


@dataclass(frozen=True)
class HostCredential:
    """What a host's `credential:` resolved to. `password` is never shown."""

    username: str | None = None
    password: Secret | None = None
    certificate_pem: Path | None = None
    certificate_key_pem: Path | None = None
    # Kerberos: a client keytab, or a ccache (TYPE:RESIDUAL) that `kinit` filled.
    keytab: Path | None = None
    ccache: str | None = None


# The environment variables MIT Kerberos reads for a client's credentials
# (https://web.mit.edu/kerberos/krb5-latest/doc/admin/env_variables.html).
CLIENT_KEYTAB_ENV = "KRB5_CLIENT_KTNAME"
CCACHE_ENV = "KRB5CCNAME"
KERBEROS_EXTRA = "pip install 'checkpoint-bot[kerberos]'"


def kerberos_installed() -> bool:
    """pyspnego's Kerberos support: the `gssapi` and `krb5` packages, importable
    (a build against a missing libkrb5 fails here too, not in the handshake)."""
    try:
        for name in ("gssapi", "krb5"):
            importlib.import_module(name)
    except ImportError:
        return False
    return True


def _keytab_path(value: str) -> Path:
    # A keytab name may carry its type (FILE:/etc/krb5.keytab); only files are read here.
    return Path(value.removeprefix("FILE:"))


class Credentials:
    """Resolves inventory credential references against an environment."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def __repr__(self) -> str:
        return "Credentials(<env>)"

    def for_host(self, host: Host) -> HostCredential:
        ref = host.credential
        if ref is None:
            # negotiate / kerberos with the bot's own Kerberos credentials.
            return self._kerberos_from_env(host, None)
        username = ref.username
        if ref.username_env is not None:
            username = self._env.get(ref.username_env) or None
            if username is None:
                raise HostAuthError(
                    f"no user name: {unset_or_empty(ref.username_env, self._env)}",
                    host=host.name,
                )
        try:
            password = secret_from(
                env_name=ref.password_env,
                file=ref.password_file,
                env=self._env,
                what=f"host {host.name} password",
            )
        except SecretError as exc:
            raise HostAuthError(str(exc), host=host.name) from None
        if password is None and ref.password_env is not None:
            raise HostAuthError(
                f"no password: {unset_or_empty(ref.password_env, self._env)}", host=host.name
            )
        if ref.keytab_file is not None:
            return HostCredential(username=username, keytab=ref.keytab_file)
        if password is None and AuthMethod(host.auth) in _KERBEROS_AUTHS:
            return self._kerberos_from_env(host, username)
        return HostCredential(
            username=username,
            password=password,
            certificate_pem=ref.certificate_pem,
            certificate_key_pem=ref.certificate_key_pem,
        )

    def _kerberos_from_env(self, host: Host, principal: str | None) -> HostCredential:
        if AuthMethod(host.auth) not in _KERBEROS_AUTHS:
            return HostCredential(username=principal)
        keytab = self._env.get(CLIENT_KEYTAB_ENV)
        if keytab:
            return HostCredential(username=principal, keytab=_keytab_path(keytab))
        ccache = self._env.get(CCACHE_ENV)
        if ccache:
            return HostCredential(username=principal, ccache=ccache)
        return HostCredential(username=principal)


_KERBEROS_AUTHS = (AuthMethod.KERBEROS, AuthMethod.NEGOTIATE)


def what_to_check(host: Host) -> str:
    """Where the credential the host refused comes from, named by the
    inventory's fields and variables (never their values): what an operator
    fixes, since asking again with the same one fails again."""
    ref = host.credential
    where = f"the inventory's credential for {host.name}"
    if ref is None:
        return (
            f"{where} is the bot's own Kerberos identity: check its ticket or keytab "
            f"(${CCACHE_ENV}, ${CLIENT_KEYTAB_ENV}) and that the host's key is current"
        )
    user = (
        f"the user name in ${ref.username_env}"
        if ref.username_env is not None
        else f"user {ref.username}"
        if ref.username is not None
        else "the user name"
    )
    if ref.keytab_file is not None:
        kept = f"keytab_file {ref.keytab_file}"
    elif ref.password_env is not None:
        kept = f"the password in ${ref.password_env} (password_env)"
    elif ref.password_file is not None:
        kept = f"the password in {ref.password_file} (password_file)"
    elif ref.certificate_pem is not None:
        kept = f"certificate_pem {ref.certificate_pem}"
    else:
        kept = "its password"
    return f"check {where}: {user} and {kept}"


def _check_kerberos(host: Host, credential: HostCredential) -> None:
    """Fail at once, with what to do, rather than inside the HTTP handshake."""
    if credential.keytab is not None or credential.ccache is not None:
        needed = True
    else:
        needed = AuthMethod(host.auth) is AuthMethod.KERBEROS
    if needed and not kerberos_installed():
        raise HostAuthError(
            f"kerberos auth needs pyspnego's Kerberos support, which is not installed: "
            f"{KERBEROS_EXTRA} (docs/connect-hosts.md)",
            host=host.name,
        )
    keytab = credential.keytab
    if keytab is not None and not os.access(keytab, os.R_OK):
        shown = "does not exist" if not keytab.exists() else "is not readable by the bot"
        raise HostAuthError(
            f"keytab {keytab} {shown}; set keytab_file (or {CLIENT_KEYTAB_ENV}) to the "
            "bot's client keytab",
            host=host.name,
        )


def _check_ca_bundle(host: Host) -> None:
    """requests would raise a bare OSError for a bundle it cannot open."""
    bundle = host.ca_bundle
    if bundle is None or host.transport is not Transport.HTTPS:
        return
    if not bundle.is_file() or not os.access(bundle, os.R_OK):
        shown = "does not exist" if not bundle.exists() else "cannot be read by the bot"
        raise HostUnreachable(
            f"ca_bundle {bundle} {shown}; set ca_bundle: to the PEM file of the CA that "
            "issued the host's WinRM certificate (docs/connect-hosts.md)",
            host=host.name,
            category="SecurityError",
        )


def wsman_options(
    host: Host, credential: HostCredential, timeouts: WinRMTimeouts, *, no_proxy: bool = True
) -> dict[str, Any]:
    """Keyword arguments for `pypsrp.wsman.WSMan`, without the password."""
    auth = AuthMethod(host.auth)
    if auth is AuthMethod.BASIC and not host.allow_basic:
        # The inventory model refuses this too; a Host built in code must not slip past.
        raise HostAuthError("basic auth needs allow_basic: true", host=host.name)
    ssl = host.transport is Transport.HTTPS
    if auth is AuthMethod.CERTIFICATE and not ssl:
        raise HostAuthError("certificate auth needs transport: https", host=host.name)
    options: dict[str, Any] = {
        "server": host.address,
        "port": host.port,
        "ssl": ssl,
        "auth": auth.value,
        # A CA bundle path validates against that bundle; True uses the system store.
        "cert_validation": str(host.ca_bundle) if host.ca_bundle else host.cert_validation,
        # Over HTTP, negotiate/ntlm/kerberos encrypt every message
        # ("auto"); basic cannot, so plain HTTP basic means no encryption at
        # all, which allow_basic accepted.
        "encryption": "never" if auth is AuthMethod.BASIC and not ssl else "auto",
        "connection_timeout": max(1, math.ceil(timeouts.connect)),
        "read_timeout": max(timeouts.operation + 5, math.ceil(timeouts.read)),
        "operation_timeout": timeouts.operation,
        # A dead host fails at once; the caller's deadline decides what is next.
        "reconnection_retries": 0,
        "reconnection_backoff": 0.5,
        # WinRM hosts are reached directly: an HTTP proxy from the environment
        # would otherwise capture them (and see a basic auth header).
        "no_proxy": no_proxy,
        "username": credential.username,
    }
    if auth in _KERBEROS_AUTHS:
        # WinRM registers HTTP/<host> (WSMan's own client asks for it); pypsrp's
        # default service class would be `host`, which only an Active Directory
        # alias maps to HTTP (docs/connect-hosts.md, "Service principal names").
        options["negotiate_service"] = "HTTP"
    if auth is AuthMethod.CERTIFICATE:
        options["certificate_pem"] = str(credential.certificate_pem)
        options["certificate_key_pem"] = str(credential.certificate_key_pem)
        options["username"] = None
    return options


def wsman_factory(
    host: Host, credential: HostCredential, timeouts: WinRMTimeouts, *, no_proxy: bool = True
) -> Callable[[], Any]:
    options = wsman_options(host, credential, timeouts, no_proxy=no_proxy)
    _check_kerberos(host, credential)
    _check_ca_bundle(host)
    password = credential.password

    def connect() -> Any:
        username = _kerberos_credential(credential)
        try:
            if username is not None:
                return _fixed_proxies(WSMan(**{**options, "username": username}))
            return _fixed_proxies(
                WSMan(
                    password=password.reveal() if password is not None else None,
                    **options,
                )
            )
        except ValueError as exc:  # pypsrp's check of the option combination
            raise HyperVError(f"cannot configure WinRM: {exc}", host=host.name) from None

    return connect


def _fixed_proxies(wsman: Any) -> Any:
    """Build the connection's requests session now, and let it stop reading
    the environment on every request.

    pypsrp 0.9.1 builds its session with `trust_env` on, and with
    `no_proxy` (always set here) pins the endpoint's scheme to no proxy
    (`_TransportHTTP._build_session`). requests then still looks the
    environment's proxy variables up for every request
    (`Session.send` -> `resolve_proxies`) only to `setdefault` the pinned
    scheme, a no-op, at a tenth of the client's CPU per host in a sweep.
    With `trust_env` off, requests also stops offering ~/.netrc
    credentials to an endpoint authenticated another way. The environment
    is still read once, when the session is built (a CA bundle from
    REQUESTS_CA_BUNDLE)."""
    transport = wsman.transport
    if transport.no_proxy and transport.session is None:
        transport.session = transport._build_session()
        transport.session.trust_env = False
    return wsman


def _kerberos_credential(credential: HostCredential) -> Any:
    """A pyspnego credential for a keytab or a ccache, else None (user name and
    password, or the library's default credentials)."""
    if credential.keytab is not None:
        return spnego.KerberosKeytab(
            keytab=f"FILE:{credential.keytab.resolve()}", principal=credential.username
        )
    if credential.ccache is not None:
        return spnego.KerberosCCache(ccache=credential.ccache, principal=credential.username)
    return None
