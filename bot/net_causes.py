"""Why a network call failed, in the socket's terms.

HTTP libraries wrap the socket's error: requests raises a ConnectionError
around urllib3's MaxRetryError, which keeps a NewConnectionError as its
`reason`, whose cause is the `ConnectionRefusedError` or `socket.gaierror`
that says what happened. Their `str()` is that whole wrapping
("HTTPConnectionPool(host=…): Max retries exceeded … (Caused by …)").
`socket_problem` finds the socket's own error and words it; each caller
adds what its operator can do (no WinRM listener, a proxy for Slack).
"""

from __future__ import annotations

import socket
import ssl
from enum import StrEnum


class SocketProblem(StrEnum):
    REFUSED = "connection refused"
    NO_NAME = "the name does not resolve (DNS)"
    TIMED_OUT = "connection timed out"
    RESET = "the connection was reset"
    TLS = "TLS failed"


# Most specific first: a certificate error is an OSError too.
_KINDS: tuple[tuple[type[BaseException], SocketProblem], ...] = (
    (ssl.SSLError, SocketProblem.TLS),
    (ConnectionRefusedError, SocketProblem.REFUSED),
    (socket.gaierror, SocketProblem.NO_NAME),
    (TimeoutError, SocketProblem.TIMED_OUT),
    (ConnectionResetError, SocketProblem.RESET),
)


def causes(exc: BaseException) -> list[BaseException]:
    """`exc` and what caused it, outermost first: the `__cause__` and
    `__context__` chain, urllib3's `reason` (a MaxRetryError keeps the
    socket's error there) and an exception passed as the first argument
    (requests wraps urllib3's that way). At most 20, each once."""
    found: list[BaseException] = []
    todo: list[object] = [exc]
    while todo and len(found) < 20:
        current = todo.pop(0)
        if not isinstance(current, BaseException) or any(current is e for e in found):
            continue
        found.append(current)
        first = current.args[0] if current.args else None
        todo.extend(
            [getattr(current, "reason", None), first, current.__cause__, current.__context__]
        )
    return found


def socket_problem(exc: BaseException) -> tuple[SocketProblem, BaseException] | None:
    """The socket's own error in `exc`'s chain and what kind it is, or None."""
    found = causes(exc)
    for kind, problem in _KINDS:
        for cause in found:
            if isinstance(cause, kind):
                return problem, cause
    return None


def os_reason(exc: BaseException) -> str | None:
    """The first operating-system reason in the chain ("no route to host")."""
    for cause in causes(exc):
        if isinstance(cause, OSError) and cause.strerror:
            return str(cause.strerror).lower()
    return None
