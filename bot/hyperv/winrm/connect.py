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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import spnego
from pypsrp.wsman import WSMan

from bot.hyperv.errors import HostAuthError, HyperVError
from bot.hyperv.winrm.pool import WinRMTimeouts
from bot.inventory.models import AuthMethod, Host, Transport, ca_bundle_problem
from bot.secrets import (
    Secret,
    SecretError,
    credential_path,
    env_name_shown,
    missing_file_words,
    secret_from,
    unset_or_empty,
)


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
                    f"no user name: {unset_or_empty(ref.username_env, self._env, 'username_env')}",
                    host=host.name,
                )
        if ref.password_file is not None:
            self._check_password_file(host, ref.password_file)
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
                f"no password: {unset_or_empty(ref.password_env, self._env, 'password_env')}",
                host=host.name,
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

    def _check_password_file(self, host: Host, file: Path) -> None:
        try:
            path = credential_path(file, self._env, f"host {host.name} password")
        except SecretError as exc:
            raise HostAuthError(str(exc), host=host.name) from None
        if not path.exists() and not path.is_symlink():
            raise HostAuthError(
                f"no password: {missing_file_words(file, 'password_file')}", host=host.name
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


UNENCRYPTED_BASIC_REFUSED = (
    "the host may refuse Basic over HTTP, which is unencrypted (WinRM's AllowUnencrypted "
    "is false by default): use transport: https, or auth: ntlm or kerberos, which "
    "encrypt each message"
)


def refused_in_clear(host: Host, error_id: str) -> str | None:
    """Why a host may answer HTTP 500 to every message: Basic over plain
    HTTP carries each message unencrypted, which a WinRM service whose
    AllowUnencrypted is false (as Windows ships it) refuses with a 500,
    whoever logged on
    (https://learn.microsoft.com/windows/win32/winrm/installation-and-configuration-for-windows-remote-management).
    None for any other host or answer."""
    if error_id == "HTTP500" and host.auth is AuthMethod.BASIC and host.transport is Transport.HTTP:
        return UNENCRYPTED_BASIC_REFUSED
    return None


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
        f"the user name in {env_name_shown(ref.username_env, 'username_env')}"
        if ref.username_env is not None
        else f"user {ref.username}"
        if ref.username is not None
        else "the user name"
    )
    if ref.keytab_file is not None:
        kept = f"keytab_file {ref.keytab_file}"
    elif ref.password_env is not None:
        shown = env_name_shown(ref.password_env, "password_env")
        kept = f"the password in {shown}" + (" (password_env)" if shown[0] == "$" else "")
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
    if keytab is not None:
        problem = keytab_problem(keytab)
        if problem is not None:
            raise HostAuthError(
                f"keytab {keytab} {problem}; set keytab_file (or {CLIENT_KEYTAB_ENV}) to the "
                "bot's client keytab file",
                host=host.name,
            )
    if credential.ccache is not None and credential.username is not None and needed:
        other = _ccache_for_another(credential.ccache, credential.username)
        if other is not None:
            held, wanted = other
            raise HostAuthError(
                f"the credentials cache {CCACHE_ENV} names holds a ticket for {held}, not "
                f"for {wanted} (username:): kinit {wanted} with that {CCACHE_ENV}, or set "
                f"username: to {held}",
                host=host.name,
            )


# MIT's keytab file format: a version byte 5, then 1 or 2 (2 for any keytab
# made since 1995: ktutil, kadmin's ktadd, Windows' ktpass)
# (https://web.mit.edu/kerberos/krb5-latest/doc/formats/keytab_file_format.html).
_KEYTAB_VERSIONS = (b"\x05\x01", b"\x05\x02")


def keytab_problem(keytab: Path) -> str | None:
    """What is wrong with a keytab file, from here, as words to follow its
    name; None when it looks like one. The Kerberos library would say "Is a
    directory 21" or "Unsupported key table format version number" only
    once the host is asked."""
    if not keytab.exists():
        return "does not exist"
    if keytab.is_dir():
        return "is a directory, not a keytab file"
    try:
        with keytab.open("rb") as opened:
            head = opened.read(2)
    except OSError:
        return "is not readable by the bot"
    if head not in _KEYTAB_VERSIONS:
        return (
            "is not a keytab (a keytab is binary and starts with version 0x0502; make one "
            "with ktutil or kadmin's ktadd, or ktpass on a domain controller)"
        )
    return None


def _ccache_for_another(ccache: str, username: str) -> tuple[str, str] | None:
    """(the ccache's principal, the one `username` names) when they differ,
    as the Kerberos library compares them (the default realm added to a name
    without one); None when they match or the cache cannot be read (the
    handshake then says why, kerberos_problem)."""
    try:
        import krb5

        context = krb5.init_context()
        held = krb5.cc_get_principal(context, krb5.cc_resolve(context, ccache.encode()))
        wanted = krb5.parse_name_flags(context, username.encode())
        held_name = krb5.unparse_name_flags(context, held).decode()
        wanted_name = krb5.unparse_name_flags(context, wanted).decode()
    except Exception:  # the optional extra; any failure: the handshake says why
        return None
    return None if held_name == wanted_name else (held_name, wanted_name)


def _check_ca_bundle(host: Host) -> None:
    """requests would raise a bare OSError for a bundle it cannot open. The
    inventory refuses such a bundle at load (bot.inventory.models); this is
    one that changed since, or a Host built in code. The bot's trust is what
    is wrong, not the host: asking again will not help (HostAuthError)."""
    bundle = host.ca_bundle
    if bundle is None or host.transport is not Transport.HTTPS:
        return
    problem = ca_bundle_problem(bundle)
    if problem is not None:
        raise HostAuthError(
            f"{problem} (docs/connect-hosts.md)", host=host.name, category="SecurityError"
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
