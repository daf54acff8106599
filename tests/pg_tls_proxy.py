"""A PostgreSQL server reached over TLS, for tests: a proxy in front of
the machine's PostgreSQL (which has `ssl = off`) that speaks the protocol's
TLS negotiation itself and passes everything after it through.

The negotiation, from https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SSL:
the client first sends an 8-byte SSLRequest (length 8, code 80877103) —
or a GSSENCRequest (code 80877104), answered 'N' here, after which it may
ask for TLS — and the server answers one byte: 'S', then the TLS handshake
and the StartupMessage inside it, or 'N', and the StartupMessage in clear.
`tls=False` answers 'N', as a server without TLS does.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104


def _pump(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


def _read_exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("client went away")
        data += chunk
    return data


class TLSProxy:
    def __init__(self, upstream: tuple[str, int], cert: Path | None, key: Path | None) -> None:
        self.upstream = upstream
        self.context: ssl.SSLContext | None = None
        if cert is not None and key is not None:
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.context.load_cert_chain(cert, key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        # What each client asked for first: "ssl", "gssenc", or "plain".
        self.asked: list[str] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.listener.accept()
                threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        try:
            client = self._negotiate(conn)
        except (OSError, ConnectionError, ssl.SSLError):
            conn.close()
            return
        first, client = client
        server = socket.create_connection(self.upstream)
        server.sendall(first)
        threading.Thread(target=_pump, args=(server, client), daemon=True).start()
        _pump(client, server)

    def _negotiate(self, conn: socket.socket) -> tuple[bytes, socket.socket]:
        """The client's StartupMessage and the socket the rest comes on."""
        while True:
            head = _read_exact(conn, 8)
            length, code = struct.unpack("!ii", head)
            if length == 8 and code == GSSENC_REQUEST:
                self.asked.append("gssenc")
                conn.sendall(b"N")
                continue
            if length == 8 and code == SSL_REQUEST:
                self.asked.append("ssl")
                if self.context is None:
                    conn.sendall(b"N")
                    continue
                conn.sendall(b"S")
                tls = self.context.wrap_socket(conn, server_side=True)
                # The StartupMessage, now inside TLS: passed on as it came.
                size = _read_exact(tls, 4)
                return size + _read_exact(tls, struct.unpack("!i", size)[0] - 4), tls
            self.asked.append("plain")
            return head + _read_exact(conn, length - 8), conn

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.close()


@contextlib.contextmanager
def tls_proxy(
    upstream: tuple[str, int], cert: Path | None = None, key: Path | None = None
) -> Iterator[TLSProxy]:
    proxy = TLSProxy(upstream, cert, key)
    try:
        yield proxy
    finally:
        proxy.close()
