"""HTTP authentication and WinRM message encryption for the emulator.

    BasicAuth(users).check(header) -> user | None
    NegotiateAcceptor(users, keytab=None)
                                   pyspnego acceptor contexts (NTLM, and Kerberos
                                   with a keytab), one per connection
    unwrap(context, body, ctype)   a multipart/encrypted request body -> SOAP bytes
    wrap(context, soap)            SOAP bytes -> (content type, multipart body)

NTLM over HTTP is connection-based ([MS-WSMV] 2.2.9.1 / [MS-NTHT]): the
handshake happens on one TCP connection and that connection stays
authenticated. With message encryption ([MS-WSMV] 2.2.9.1.1) every body is a
MIME `multipart/encrypted` of two parts (`application/HTTP-SPNEGO-session-
encrypted` with the plain length, then `application/octet-stream` holding
a 4-byte little-endian signature length, the signature and the sealed data),
the format pypsrp's `encryption.py` writes and reads.

Kerberos through Negotiate (RFC 4559, "SPNEGO-based Kerberos and NTLM HTTP
Authentication in Microsoft Windows", https://www.rfc-editor.org/rfc/rfc4559):
the client sends an AP-REQ for the listener's service principal,
HTTP/<host name>, which the listener decrypts with its own keys, a keytab
here (on Windows, the computer account's keys: docs/connect-hosts.md). The
mutual-authentication token (AP-REP) rides back on the 200's
WWW-Authenticate header, and the same MIME framing carries the messages
sealed with the Kerberos session key.

pyspnego's acceptors read their credentials from the environment only: the
NTLM users from the file named by `NTLM_USER_FILE`, the Kerberos keys from
the keytab named by `KRB5_KTNAME` (MIT's acceptor keytab,
https://web.mit.edu/kerberos/krb5-latest/doc/admin/env_variables.html). The
emulator writes its users to a private temp file and sets the variables only
while it creates or steps an acceptor context, under a process-wide lock,
restoring the previous values after; nothing outlives the call.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import struct
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import spnego

MIME_BOUNDARY = "Encrypted Boundary"
SPNEGO_ENCRYPTED = "application/HTTP-SPNEGO-session-encrypted"
_NTLM_ENV = "NTLM_USER_FILE"
_KEYTAB_ENV = "KRB5_KTNAME"
# Guards os.environ, a process-global resource (not emulator state).
_ENV_LOCK = threading.Lock()


class EncryptionError(Exception):
    pass


class BasicAuth:
    def __init__(self, users: Mapping[str, str]) -> None:
        self._users = {u.casefold(): p for u, p in users.items()}

    def check(self, header: str) -> str | None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(value.strip()).decode("utf-8").partition(":")
        except ValueError:
            return None
        # Accept DOMAIN\user and user@domain forms for the local user name.
        bare = user.split("\\")[-1].split("@")[0]
        expected = self._users.get(bare.casefold())
        return bare if expected is not None and expected == password else None


class NegotiateAcceptor:
    """Creates Negotiate acceptor contexts: NTLM for a fixed set of users, and
    Kerberos for the service principals in `keytab` when one is given."""

    def __init__(self, users: Mapping[str, str], *, keytab: Path | None = None) -> None:
        handle, self._path = tempfile.mkstemp(prefix="emulator-ntlm-", suffix=".txt")
        with os.fdopen(handle, "w", encoding="utf-8") as fd:
            for user, password in users.items():
                # Heimdal format DOMAIN:USER:PASSWORD; empty domain matches any.
                fd.write(f":{user}:{password}\n")
        self._keytab = keytab

    @contextlib.contextmanager
    def _credentials(self) -> Iterator[None]:
        values = {_NTLM_ENV: self._path}
        if self._keytab is not None:
            values[_KEYTAB_ENV] = f"FILE:{self._keytab.resolve()}"
        with _ENV_LOCK:
            previous = {name: os.environ.get(name) for name in values}
            os.environ.update(values)
            try:
                yield
            finally:
                for name, value in previous.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value

    def new_context(self, channel_bindings: Any = None) -> Any:
        """`channel_bindings`: over TLS, the listener's own certificate hash, so a
        token bound to another certificate (a TLS-terminating relay) is refused."""
        with self._credentials():
            return spnego.server(protocol="negotiate", channel_bindings=channel_bindings)

    def step(self, context: Any, token: bytes) -> bytes | None:
        """One handshake step; raises spnego errors on bad credentials."""
        with self._credentials():
            out: bytes | None = context.step(token)
            return out

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self._path)


def unwrap(context: Any, body: bytes, content_type: str) -> bytes:
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    boundary = match.group(1) if match else MIME_BOUNDARY
    parts = [p for p in re.split(rb"--\s*" + re.escape(boundary.encode()) + rb"\r\n", body) if p]
    message = b""
    for header_part, payload in zip(parts[0::2], parts[1::2], strict=False):
        length_match = re.search(rb"Length=(\d+)", header_part)
        if length_match is None:
            raise EncryptionError("encrypted part without OriginalContent length")
        payload = re.sub(rb"--\s*" + re.escape(boundary.encode()) + rb"--\r\n$", b"", payload)
        payload = payload.replace(b"\tContent-Type: application/octet-stream\r\n", b"", 1)
        (sig_length,) = struct.unpack("<i", payload[:4])
        plain: bytes = context.unwrap_winrm(payload[4 : 4 + sig_length], payload[4 + sig_length :])
        if len(plain) != int(length_match.group(1)):
            raise EncryptionError("decrypted length does not match OriginalContent")
        message += plain
    return message


def wrap(context: Any, message: bytes) -> tuple[str, bytes]:
    header, sealed, padding = context.wrap_winrm(message)
    head = "\r\n".join(
        [
            f"--{MIME_BOUNDARY}",
            f"\tContent-Type: {SPNEGO_ENCRYPTED}",
            "\tOriginalContent: type=application/soap+xml;charset=UTF-8;"
            f"Length={len(message) + padding}",
            f"--{MIME_BOUNDARY}",
            "\tContent-Type: application/octet-stream",
            "",
        ]
    ).encode()
    body = (
        head
        + struct.pack("<i", len(header))
        + header
        + sealed
        + f"--{MIME_BOUNDARY}--\r\n".encode()
    )
    content_type = f'multipart/encrypted;protocol="{SPNEGO_ENCRYPTED}";boundary="{MIME_BOUNDARY}"'
    return content_type, body
