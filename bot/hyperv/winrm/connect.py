"""How to reach one inventory host: its credentials and its WSMan connection.

    Credentials(env).for_host(host) -> HostCredential
    wsman_factory(host, credential, timeouts) -> () -> pypsrp WSMan

Secrets come from the environment mapping handed in (the entry point's
`os.environ`, a test's dict) or from files the inventory names; they stay in
`Secret` objects until the moment the connection is built, and no error or
repr shows them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pypsrp.wsman import WSMan

from bot.hyperv.errors import HostAuthError, HyperVError
from bot.hyperv.winrm.pool import WinRMTimeouts
from bot.inventory.models import AuthMethod, Host, Transport
from bot.secrets import Secret, SecretError, secret_from


@dataclass(frozen=True)
class HostCredential:
    """What a host's `credential:` resolved to. `password` is never shown."""

    username: str | None = None
    password: Secret | None = None
    certificate_pem: Path | None = None
    certificate_key_pem: Path | None = None


class Credentials:
    """Resolves inventory credential references against an environment."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def __repr__(self) -> str:
        return "Credentials(<env>)"

    def for_host(self, host: Host) -> HostCredential:
        ref = host.credential
        if ref is None:
            # negotiate / kerberos with the bot's own Kerberos ticket.
            return HostCredential()
        username = ref.username
        if ref.username_env is not None:
            username = self._env.get(ref.username_env) or None
            if username is None:
                raise HostAuthError(f"no user name: ${ref.username_env} is not set", host=host.name)
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
            raise HostAuthError(f"no password: ${ref.password_env} is not set", host=host.name)
        return HostCredential(
            username=username,
            password=password,
            certificate_pem=ref.certificate_pem,
            certificate_key_pem=ref.certificate_key_pem,
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
        # Over HTTP, negotiate/ntlm/kerberos/credssp encrypt every message
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
    if auth is AuthMethod.CERTIFICATE:
        options["certificate_pem"] = str(credential.certificate_pem)
        options["certificate_key_pem"] = str(credential.certificate_key_pem)
        options["username"] = None
    return options


def wsman_factory(
    host: Host, credential: HostCredential, timeouts: WinRMTimeouts, *, no_proxy: bool = True
) -> Callable[[], Any]:
    options = wsman_options(host, credential, timeouts, no_proxy=no_proxy)
    password = credential.password

    def connect() -> Any:
        try:
            return WSMan(
                password=password.reveal() if password is not None else None,
                **options,
            )
        except ValueError as exc:  # pypsrp's check of the option combination
            raise HyperVError(f"cannot configure WinRM: {exc}", host=host.name) from None

    return connect
