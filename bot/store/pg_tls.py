"""TLS to PostgreSQL, validated by default.

libpq's own default is `sslmode=prefer`: TLS if the server offers it,
without checking its certificate, and plain text if it does not
(https://www.postgresql.org/docs/current/libpq-ssl.html#LIBPQ-SSL-PROTECTION).
Anyone on the path to a remote database could then read or rewrite the
record, which is the audit. So a URL that leaves TLS unsaid and names a
host off this machine gets `sslmode=verify-full`: TLS, a certificate from
a trusted authority, for the name dialled. The authority is the root
certificate libpq finds on its own (`sslrootcert=`, `PGSSLROOTCERT`,
`~/.postgresql/root.crt`) or else the system's trust store, where an
enterprise CA is installed with `update-ca-certificates`: named by its file
(OpenSSL's default, as Python's `ssl` finds it, `SSL_CERT_FILE` included),
because libpq's own `sslrootcert=system` is unknown before libpq 16 (Debian
12's `pg_dump`), and the libpq inside psycopg's wheel looks for "system"
where that wheel's OpenSSL was built, not where this system keeps it.

What an operator says wins: an `sslmode` in the URL or in `PGSSLMODE`, or
a connection service (`service=`, `PGSERVICE`), whose file may say it. A
database on this machine (a Unix socket, a loopback address, `localhost`)
keeps libpq's default: there is no path to protect.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy.engine import URL

VERIFY = "verify-full"
# What to do when the TLS asked for cannot be had: for every message that
# says so (bot/service/outage.py, bot/store/backup.py).
TLS_HINT = (
    "a database off this machine is asked for TLS with a certificate of a trusted "
    "authority (sslmode=verify-full): give the server one, name its authority with "
    "?sslrootcert=FILE, or say how to connect with ?sslmode= in DATABASE_URL "
    "(docs/security.md#the-database-over-the-network)"
)
# What libpq says when a TLS connection it was asked for cannot be made or
# verified (fe-connect.c, fe-secure-openssl.c): the server answered, so
# waiting cannot help; its certificate, the URL or the trust store must change.
_TLS_REFUSED = re.compile(
    r"server does not support SSL, but SSL was required|"
    r"root certificate file \"[^\"]*\" does not exist|"
    r"could not read root certificate file|certificate verify failed|"
    r"server certificate for \"[^\"]*\"(?: \(and \d+ other names?\))? does not match host name|"
    r"could not get home directory to locate root certificate file"
)
_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", ""})


def _is_local(host: str) -> bool:
    if host.startswith("/") or host.casefold() in _LOCAL_NAMES:
        return True  # a Unix socket directory, or this machine by name
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _hosts(url: URL) -> list[str]:
    """Every host the URL dials: libpq takes a list (`host=a,b`), in the
    URL's authority or in its `host` parameter, which wins."""
    named = url.query.get("host")
    if named is not None:
        values = [named] if isinstance(named, str) else list(named)
        return [h for value in values for h in value.split(",")]
    return [url.host or ""]


def says_tls(url: URL, env: Mapping[str, str]) -> bool:
    """Whether the operator chose how TLS is used, in the URL or libpq's
    environment (a service file may choose it too)."""
    keys = {key.lower() for key in url.query}
    return bool(keys & {"sslmode", "service"}) or bool(env.get("PGSSLMODE") or env.get("PGSERVICE"))


def with_tls_default(url: URL, env: Mapping[str, str], home: Path) -> URL:
    """`url`, asking for a verified TLS connection when it names a remote
    host and says nothing of TLS; unchanged otherwise (pure but for
    whether `home`'s root certificate exists)."""
    if url.get_backend_name() != "postgresql" or says_tls(url, env):
        return url
    if all(_is_local(host) for host in _hosts(url)):
        return url
    extra: dict[str, str] = {"sslmode": VERIFY}
    keys = {key.lower() for key in url.query}
    has_root = (
        "sslrootcert" in keys
        or bool(env.get("PGSSLROOTCERT"))
        or (home / ".postgresql" / "root.crt").exists()
    )
    if not has_root:
        extra["sslrootcert"] = system_roots()
    return url.update_query_dict(extra)


def system_roots() -> str:
    """The system's trust store as a file libpq can read; libpq's own
    "system" when OpenSSL names none that exists."""
    return ssl.get_default_verify_paths().cafile or "system"


def tls_refusal(text: str) -> str | None:
    """The line of libpq's `text` (from that point on) that says the TLS
    asked for could not be had or verified; None when none does."""
    for line in text.splitlines():
        found = _TLS_REFUSED.search(line)
        if found is not None:
            return line[found.start() :].strip()
    return None
