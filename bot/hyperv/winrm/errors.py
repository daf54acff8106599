"""Translate what a WinRM host reports into `bot.hyperv.errors`.

Two sources, each translated at this boundary:

- PowerShell `ErrorRecord`s from a pipeline (`ps.streams.error`, which also
  holds the terminating error when `had_errors` is set): message, category
  (CategoryInfo) and FullyQualifiedErrorId are kept on the typed error;
- transport failures raised by pypsrp and requests.

The class is chosen from the FullyQualifiedErrorId and category first; the
message is a fallback only for the failures Hyper-V reports with a generic
`OperationFailed` id (disabled checkpoints, production checkpoint failure,
disk full), because those texts are what a host gives (bot/devtools/hostmodel/errors.py) and
are localised on non-English hosts, where the error stays a PowerShellError.
Messages never contain credentials: pypsrp's own texts name the user at most.
"""

from __future__ import annotations

import http.client
import ipaddress
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import requests
import urllib3
from pypsrp.exceptions import AuthenticationError, WinRMError, WinRMTransportError, WSManFaultError

# pyspnego raises these from inside the HTTP handshake (Kerberos, NTLM).
from spnego.exceptions import SpnegoError

from bot.hyperv.errors import (
    CREDENTIALS_REJECTED,
    CheckpointLimitReached,
    CheckpointNotFound,
    CheckpointsDisabled,
    CommandNotVisible,
    HostAuthError,
    HostTimeout,
    HostUnreachable,
    HyperVError,
    InsufficientSpace,
    InvalidVMState,
    NotFoundError,
    PowerShellError,
    ProductionCheckpointFailed,
    VMNotFound,
)
from bot.hyperv.winrm.mapping import pick, properties, text
from bot.net_causes import SocketProblem, causes, os_reason, socket_problem

# System.Management.Automation.ErrorCategory, as the record's integer.
ERROR_CATEGORIES = (
    "NotSpecified",
    "OpenError",
    "CloseError",
    "DeviceError",
    "DeadlockDetected",
    "InvalidArgument",
    "InvalidData",
    "InvalidOperation",
    "InvalidResult",
    "InvalidType",
    "MetadataError",
    "NotImplemented",
    "NotInstalled",
    "ObjectNotFound",
    "OperationStopped",
    "OperationTimeout",
    "SyntaxError",
    "ParserError",
    "PermissionDenied",
    "ResourceBusy",
    "ResourceExists",
    "ResourceUnavailable",
    "ReadError",
    "WriteError",
    "FromStdErr",
    "SecurityError",
    "ProtocolError",
    "ConnectionError",
    "AuthenticationError",
    "LimitsExceeded",
    "QuotaExceeded",
    "NotEnabled",
)

# WSMan fault codes (MS-WSMV / winerror.h) that say "the credentials", not "the host".
_ACCESS_DENIED = 5
_WSMAN_FAULT_AUTH = {_ACCESS_DENIED, 0x80070005}
# ERROR_DISK_FULL as Hyper-V wraps it.
_DISK_FULL = "0x80070070"

# (fragment of the message, lower case) -> class; see the module docstring.
_MESSAGE_CLASSES: tuple[tuple[str, type[PowerShellError]], ...] = (
    ("checkpoints have been disabled", CheckpointsDisabled),
    ("production checkpoints cannot be created", ProductionCheckpointFailed),
    ("maximum number of checkpoints", CheckpointLimitReached),
    ("not enough space", InsufficientSpace),
    (_DISK_FULL, InsufficientSpace),
    ("cannot be performed while the virtual machine is in its current state", InvalidVMState),
)


def category_name(value: object) -> str:
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and 0 <= value < len(ERROR_CATEGORIES)
    ):
        return ERROR_CATEGORIES[value]
    return text(value)


def record_message(record: object) -> str:
    """The exception's message, as `$_.Exception.Message` shows it."""
    exception = getattr(record, "exception", None)
    if exception is not None:
        message = text(pick(properties(exception), "Message"))
        if message:
            return message
    details = text(getattr(record, "details_message", None))
    return details or text(record) or "the host reported an error without a message"


def record_fields(record: object) -> tuple[str, str, str, str]:
    """(message, category name, CategoryInfo text, FullyQualifiedErrorId)."""
    category = category_name(getattr(record, "category", None))
    category_info = text(getattr(record, "message", None))
    error_id = text(getattr(record, "fq_error", None))
    return record_message(record), category, category_info, error_id


def _class_for(message: str, category: str, error_id: str) -> type[HyperVError]:
    if error_id.split(",", 1)[0] == "CommandNotFoundException":
        # Its category is ObjectNotFound too, but nothing was looked up: the
        # endpoint lacks the command (a JEA role without it).
        return CommandNotVisible
    command = error_id.rsplit(".", 1)[-1].lower() if "." in error_id else ""
    not_found = category == "ObjectNotFound" or error_id.startswith("ObjectNotFound")
    if command == "getvmsnapshot" and (not_found or category == "InvalidArgument"):
        return CheckpointNotFound
    if command == "getvm" and (not_found or category == "InvalidArgument"):
        return VMNotFound
    if not_found:
        return NotFoundError
    if error_id.startswith("InvalidState"):
        return InvalidVMState
    folded = message.lower()
    for fragment, cls in _MESSAGE_CLASSES:
        if fragment in folded:
            return cls
    return PowerShellError


def error_from_records(
    records: list[object], *, host: str, missing: type[NotFoundError] = VMNotFound
) -> HyperVError:
    """One typed error for a failed pipeline: the first record that maps to a
    specific class wins, else the first record. `missing` is the class for a
    not-found error whose command does not say what was missing."""
    best: HyperVError | None = None
    for record in records:
        message, category, category_info, error_id = record_fields(record)
        cls = _class_for(message, category, error_id)
        if cls is NotFoundError:
            cls = missing
        where = {"host": host, "category": category_info or category, "error_id": error_id}
        if cls is CommandNotVisible:
            # ErrorCategory_TargetName: the name the engine did not find;
            # else the one its message quotes ("The term 'X' is not ...").
            name = text(getattr(record, "target_name", None))
            if not name and (quoted := re.search(r"'([^']+)'", message)):
                name = quoted.group(1)
            return CommandNotVisible(message, command=name, **where)
        error = cls(message, **where)
        if cls is not PowerShellError:
            return error
        best = best or error
    return best or PowerShellError("the pipeline failed without an error record", host=host)


def transport_error(exc: BaseException, *, host: str, what: str) -> HyperVError:
    """A pypsrp / requests exception as a typed error. `what` names the
    operation for the message ("Get-VM on hv01:5986")."""
    if isinstance(exc, HyperVError):
        return exc
    if isinstance(exc, AuthenticationError):
        return HostAuthError(
            f"{what}: the host rejected the credentials ({exc})",
            host=host,
            error_id=CREDENTIALS_REJECTED,
        )
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return HostTimeout(f"{what}: no answer in time", host=host, category="OperationTimeout")
    if isinstance(exc, requests.exceptions.SSLError):
        # A certificate the bot does not trust (or a bundle it cannot use)
        # fails every handshake alike until someone fixes the trust: the bot
        # did not log in, and asking again will not help (HostAuthError),
        # unlike a host that is down. Nothing was sent: no credential, no
        # command.
        said = f"{what}: {tls_problem(exc)}"
        if tls_settled(exc):
            return HostAuthError(said, host=host, category="SecurityError")
        return HostUnreachable(said, host=host, category="SecurityError")
    if _is_kerberos_error(exc):
        if kdc_unreachable(exc):
            # No KDC answered (a domain controller rebooting for patching):
            # the host could not be reached through it, for now. Never a
            # credential problem, which asking again would not fix.
            return HostUnreachable(
                f"{what}: {kdc_problem(exc)}",
                host=host,
                category="OpenError",
                error_id=KDC_UNREACHABLE,
            )
        return HostAuthError(f"{what}: {kerberos_problem(exc)}", host=host)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return HostUnreachable(f"{what}: connection timed out", host=host, category="OpenError")
    if isinstance(exc, requests.exceptions.ConnectionError) and dropped_mid_call(exc):
        # Open, then lost before the answer: "cannot connect" sent people
        # looking for a listener that was there (seen: a host killed while
        # it answered Checkpoint-VM, which it had done).
        return HostUnreachable(
            f"{what}: the connection{_endpoint(exc)} {dropped_problem(exc)}",
            host=host,
            category="OpenError",
        )
    if isinstance(exc, requests.exceptions.ConnectionError):
        return HostUnreachable(
            f"{what}: cannot connect{_endpoint(exc)}: {connect_problem(exc)}",
            host=host,
            category="OpenError",
        )
    if isinstance(exc, WSManFaultError):
        cls: type[HyperVError] = HostAuthError if exc.code in _WSMAN_FAULT_AUTH else HostUnreachable
        reason = exc.reason or exc.message or "WSMan fault"
        return cls(
            f"{what}: {reason}", host=host, category="ProtocolError", error_id=f"WSMan{exc.code}"
        )
    if isinstance(exc, WinRMTransportError):
        return HostUnreachable(
            f"{what}: HTTP {exc.code} from the WinRM service",
            host=host,
            category="ProtocolError",
            error_id=f"HTTP{exc.code}",
        )
    if isinstance(exc, WinRMError | requests.exceptions.RequestException):
        return HostUnreachable(f"{what}: {_first_line(exc)}", host=host, category="ProtocolError")
    raise TypeError(f"not a transport error: {type(exc).__name__}") from exc


def is_transport_error(exc: BaseException) -> bool:
    return isinstance(exc, WinRMError | requests.exceptions.RequestException) or _is_kerberos_error(
        exc
    )


def _is_kerberos_error(exc: BaseException) -> bool:
    """pyspnego's errors, and the `krb5` package's own (pyspnego gets a ticket
    with a password or a keytab through it, and lets its errors through)."""
    if isinstance(exc, SpnegoError):
        return True
    try:  # the kerberos extra is optional: without it there are no such errors
        from krb5 import Krb5Error
    except ImportError:
        return False
    return isinstance(exc, Krb5Error)


# OpenSSL's verify errors (https://docs.openssl.org/master/man1/openssl-verification-options/)
# as Python's ssl module words them, most specific first -> what to tell the operator.
_TLS_PROBLEMS: tuple[tuple[str, str], ...] = (
    (
        "hostname mismatch",
        "the host's certificate is not valid for this name; set address: to a name the "
        "certificate holds (its subject alternative names), or issue the WinRM HTTPS "
        "listener a certificate for this name",
    ),
    # An address given as an IP: OpenSSL says "IP address mismatch" (seen
    # told "not trusted" with a right ca_bundle, and pointed at it).
    (
        "ip address mismatch",
        "the host's certificate is not valid for this IP address; set address: to a name "
        "the certificate holds (its subject alternative names), or issue the WinRM HTTPS "
        "listener a certificate with this address among them",
    ),
    ("certificate has expired", "the host's certificate has expired; renew it on the host"),
    (
        "certificate verify failed",
        "the host's certificate is not trusted (not issued by a CA in the trust used); set "
        "ca_bundle: to the PEM file of the CA that issued the host's WinRM certificate",
    ),
    # The bundle the bot validates with gives OpenSSL no CA certificate
    # (empty, a key, DER, text): inventory load refuses such a file, so this
    # is one changed since, or REQUESTS_CA_BUNDLE's.
    (
        "no certificate or crl found",
        "the CA bundle the bot validates with holds no certificate: set ca_bundle: to the "
        "PEM file of the CA that signed the host's certificate (-----BEGIN CERTIFICATE-----)",
    ),
    (
        "pem lib",
        "the CA bundle the bot validates with is not a PEM file of certificates: set "
        "ca_bundle: to the PEM file of the CA that signed the host's certificate",
    ),
    (
        "wrong version number",
        "the port does not speak TLS; is it the HTTP listener (5985)? use transport: http "
        "or the HTTPS listener's port (5986)",
    ),
)


# The TLS failures that the bot's trust or the host's certificate settle,
# not the network: each fails again, alike, until a person fixes one of them.
_TLS_SETTLED = (
    "hostname mismatch",
    "ip address mismatch",
    "certificate has expired",
    "certificate verify failed",
    "no certificate or crl found",
    "pem lib",
)


def tls_settled(exc: BaseException) -> bool:
    """Whether trying again cannot help: a certificate not trusted, not for
    this name, expired, or a CA bundle that holds no certificate."""
    folded = str(exc).lower()
    return any(fragment in folded for fragment in _TLS_SETTLED)


def tls_problem(exc: BaseException) -> str:
    """One line naming what failed in the TLS handshake and what to set."""
    detail = _verify_detail(exc)
    folded = str(exc).lower()
    for fragment, advice in _TLS_PROBLEMS:
        if fragment in folded:
            return f"TLS failed: {advice} ({detail})"
    return f"TLS failed: {detail}"


def _verify_detail(exc: BaseException) -> str:
    """OpenSSL's reason, without requests' connection-pool wrapping."""
    text_ = str(exc)
    start = text_.find("certificate verify failed")
    if start < 0:
        start = text_.find("[SSL")
    if start < 0:
        start = text_.find("[X509")
    if start < 0:
        return _first_line(exc)
    end = text_.find(" (_ssl.c", start)
    return text_[start : end if end > 0 else start + 200].strip("'\\") or _first_line(exc)


# GSSAPI's words (MIT krb5 error table) -> what usually causes them.
# Each fixes a credential or the configuration; a KDC that does not answer
# is not one of them (kdc_problem).
_KERBEROS_HINTS: tuple[tuple[str, str], ...] = (
    (
        # The client principal (username:, a keytab's or a ccache's) is
        # unknown to the realm: MIT says "Client 'X' not found ...".
        "client '",
        "the realm has no principal {client}: set username: (or the keytab) to a "
        "principal of the realm, realm included",
    ),
    (
        "unsupported key table format",
        "the keytab is not a keytab file: set keytab_file (or KRB5_CLIENT_KTNAME) to one "
        "made with ktutil, kadmin's ktadd or ktpass",
    ),
    (
        # KRB5CCNAME's ticket is for another principal than username: asks for.
        "does not match desired name",
        "the credentials cache holds a ticket for another principal than username: names: "
        "kinit as that user (klist shows whose the ticket is), or set username: to the "
        "ticket's principal",
    ),
    (
        "not found in kerberos database",
        "the realm has no service principal {spn}: register it (setspn -S {spn} "
        "<host's computer account>) or set address: to the name it is registered for",
    ),
    (
        "no kerberos credentials",
        "the bot has no ticket: run kinit, or set KRB5_CLIENT_KTNAME / keytab_file to its keytab",
    ),
    (
        # KRB5CCNAME names a cache (FILE:/...) that is not there (MIT's
        # KRB5_FCC_NOFILE); a default cache without a ticket says "no
        # Kerberos credentials" instead.
        "no credentials cache found",
        "the credentials cache KRB5CCNAME names does not exist: run kinit with that "
        "KRB5CCNAME, set KRB5CCNAME to the cache kinit filled (klist shows it), or set "
        "KRB5_CLIENT_KTNAME / keytab_file to the bot's keytab",
    ),
    (
        # keytab_file's (or KRB5_CLIENT_KTNAME's) keytab has no key for the
        # principal asked for: another name, or another realm (KRB5_KT_NOTFOUND).
        "keytab contains no suitable keys",
        "the keytab holds no keys for this principal: set username: to the principal "
        "the keytab holds, realm included (klist -k KEYTAB lists them), or export the "
        "principal's keys to it",
    ),
    (
        # No [realms] entry for the realm and no DNS SRV records (KRB5_REALM_UNKNOWN).
        "cannot find kdc for realm",
        "krb5.conf names no KDC for realm {realm}: add it under [realms] "
        "({realm} = {{ kdc = <a domain controller> }}), or set dns_lookup_kdc = true",
    ),
    ("clock skew", "the clocks of the bot, the KDC and the host differ by more than 5 minutes"),
    ("ticket expired", "the ticket expired: kinit again, or use a keytab"),
    (
        "preauthentication failed",
        "the password or keytab does not match the principal's keys (was it changed?)",
    ),
    (
        "decrypt integrity check failed",
        "the password or keytab does not match the principal's keys (was it changed?)",
    ),
)


# pyspnego words a GSSAPI failure "... Minor (N): <the mechanism's reason>, Context: ...".
_GSS_MINOR = re.compile(r"Minor \(\d+\): (.*?)(?:, Context:|$)")
# The `krb5` package appends MIT's error code to the message ("... -1765328228"):
# a number for a developer, not words for the operator.
_KRB5_CODE = re.compile(r"\s+-?\d{6,}$")
_ANY_CODE = re.compile(r"\s+-?\d+$")
# The realm an MIT message names: for realm 'X' (or "X").
_REALM = re.compile(r"""for (?:requested )?realm ['"]?([^'"\s]+)['"]?""", re.IGNORECASE)

# `error_id` of a HostUnreachable whose cause is the realm's KDC, not the host.
KDC_UNREACHABLE = "KdcUnreachable"


def kdc_unreachable(exc: BaseException) -> bool:
    """No KDC of the realm answered (MIT's KRB5_KDC_UNREACH): transient."""
    return "cannot contact any kdc" in str(exc).lower()


def _kerberos_detail(exc: BaseException) -> str:
    """GSSAPI's (or krb5's) own reason, in its words, without error codes."""
    minor = _GSS_MINOR.search(str(exc))
    detail = minor.group(1).strip() if minor else _first_line(exc)
    # The krb5 package appends the code to every message: MIT's (-1765328228)
    # or, for a system error, errno's ("Is a directory 21").
    code = _KRB5_CODE if minor or not _is_krb5_error(exc) else _ANY_CODE
    return code.sub("", detail)


def _is_krb5_error(exc: BaseException) -> bool:
    try:
        from krb5 import Krb5Error
    except ImportError:
        return False
    return isinstance(exc, Krb5Error)


def kerberos_problem(exc: BaseException) -> str:
    """pyspnego's error as one line, with a hint when GSSAPI's reason is known."""
    detail = _kerberos_detail(exc)
    folded = str(exc).lower()
    found = _REALM.search(detail)
    spn = _SERVER.search(detail)
    if spn is not None and _is_ip(spn.group(3)):
        # A ticket is for a name: an IP address has no SPN to register, and
        # Windows' own client will not ask for one (about_Remote_Troubleshooting,
        # "How to use an IP address in a remote command",
        # https://learn.microsoft.com/powershell/module/microsoft.powershell.core/about/about_remote_troubleshooting).
        return (
            f"Kerberos authentication failed: Kerberos needs the host's DNS name, not the "
            f"IP address in {spn.group(1)}: set address: to the name its SPN is registered "
            f"for (HTTP/hv01.corp.example) ({detail})"
        )
    for fragment, hint in _KERBEROS_HINTS:
        if fragment in folded:
            client = _CLIENT.search(detail)
            said = hint.format(
                realm=found.group(1) if found else "<REALM>",
                spn=spn.group(1) if spn else "HTTP/<address>",
                client=client.group(1) if client else "asked for",
            )
            return f"Kerberos authentication failed: {said} ({detail})"
    return f"Kerberos authentication failed: {detail}"


# The service principal MIT names: "Server HTTP/hv01.corp.example@REALM not
# found in Kerberos database" -> HTTP/hv01.corp.example, hv01.corp.example.
_SERVER = re.compile(r"Server (([^/\s@]+)/([^\s@]+))@\S+")


_CLIENT = re.compile(r"Client '([^']+)' not found")


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]").split("%")[0])
    except ValueError:
        return False
    return True


def kdc_problem(exc: BaseException) -> str:
    """A KDC that did not answer, named (its realm, and the addresses
    krb5.conf gives for it), with what to do: try again."""
    detail = _kerberos_detail(exc)
    found = _REALM.search(detail)
    realm = found.group(1) if found else None
    kdcs = configured_kdcs(realm) if realm else []
    named = f"no KDC of realm {realm} answered" if realm else "no KDC answered"
    where = f" (kdc {', '.join(kdcs)})" if kdcs else ""
    return (
        f"Kerberos KDC could not be reached: {named}{where}, so no ticket for the host "
        "could be had; a KDC that is down or restarting answers again: try again later "
        f"(if it persists, check krb5.conf's [realms] kdc) ({detail})"
    )


def configured_kdcs(realm: str) -> list[str]:
    """The `kdc` addresses krb5.conf gives for `realm` ([realms]), as the
    Kerberos library reads it: the files KRB5_CONFIG lists (colon-separated),
    else /etc/krb5.conf. Best effort: includes and DNS are not followed."""
    files = os.environ.get("KRB5_CONFIG") or "/etc/krb5.conf"
    found: list[str] = []
    for name in files.split(":"):
        try:
            lines = Path(name).read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        section, inside = "", False
        for raw in lines:
            line = raw.split("#", 1)[0].split(";", 1)[0].strip()
            if line.startswith("[") and line.endswith("]"):
                section, inside = line[1:-1].strip().lower(), False
            elif section == "realms" and "=" in line and line.endswith("{"):
                inside = line.split("=", 1)[0].strip() == realm
            elif line == "}":
                inside = False
            elif inside and "=" in line:
                key, value = (part.strip() for part in line.split("=", 1))
                if key.lower() == "kdc" and value and value not in found:
                    found.append(value)
    return found


def _endpoint(exc: BaseException) -> str:
    """` to ADDRESS:PORT` of the request that failed, when requests kept it."""
    url = getattr(getattr(exc, "request", None), "url", None)
    if not isinstance(url, str):
        return ""
    parts = urlsplit(url)
    if parts.hostname is None:
        return ""
    try:
        port = parts.port
    except ValueError:
        port = None
    return f" to {parts.hostname}:{port}" if port else f" to {parts.hostname}"


# What the socket said, in the words an operator acts on. A host has no
# WinRM listener until one is configured (MS-WSMV, the listener resource:
# https://learn.microsoft.com/openspecs/windows_protocols/ms-wsmv/c6d479c8-d487-4712-8bbb-a3cb53ba151f);
# Get-WSManInstance lists them (docs/host-truth.md). Short: Slack shows a
# host's problem in 150 characters.
_WINRM_WORDS = {
    SocketProblem.REFUSED: "connection refused: no WinRM listener on that port, or a firewall "
    "rejects it",
    SocketProblem.NO_NAME: "the name does not resolve (DNS): check address: in the inventory",
    SocketProblem.TIMED_OUT: "connection timed out (the host is down, or a firewall drops the "
    "packets)",
    SocketProblem.RESET: "the connection was reset by the host or a device on the way",
}


def dropped_mid_call(exc: BaseException) -> bool:
    """Whether the connection was made and then lost during the request
    (urllib3's ProtocolError: "Connection aborted", reset or closed with
    no answer), not a connection that could not be made (its
    NewConnectionError or ConnectTimeoutError)."""
    found = causes(exc)
    if any(isinstance(c, urllib3.exceptions.ConnectTimeoutError) for c in found):
        return False
    return any(isinstance(c, urllib3.exceptions.ProtocolError) for c in found)


def dropped_problem(exc: BaseException) -> str:
    """How a connection that was open ended, to follow "the connection to
    ADDRESS:PORT": whether the host did what was asked is not known."""
    # http.client's RemoteDisconnected (an orderly close, no answer) is a
    # ConnectionResetError too: asked first, so it is not called a reset.
    if any(isinstance(c, http.client.RemoteDisconnected) for c in causes(exc)):
        return "was closed during the call, before the host answered"
    found = socket_problem(exc)
    if found is not None and found[0] is SocketProblem.RESET:
        return "was reset during the call, by the host or a device on the way"
    return "was closed during the call, before the host answered"


def connect_problem(exc: BaseException) -> str:
    """Why a connection could not be made: the socket's own error found in
    the exception's chain (bot.net_causes), else the first line."""
    found = socket_problem(exc)
    if found is not None and found[0] in _WINRM_WORDS:
        return _WINRM_WORDS[found[0]]
    return os_reason(exc) or _first_line(exc)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__
