"""A TCP proxy in front of the real PostgreSQL server that a test can cut:
the bot's database URL names the proxy's port, and `cut()` closes every
connection through it and refuses new ones until `restore()`. The database
really goes away for the bot (its pool's connections die, reconnecting
fails), while the server itself stays up for the test's own checks."""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType

from sqlalchemy.engine import make_url


class CuttableProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._cut = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="db-proxy", daemon=True)

    @classmethod
    def before(cls, database_url: str) -> tuple[CuttableProxy, str]:
        """A proxy for the server of `database_url`, and the URL through it."""
        url = make_url(database_url)
        proxy = cls(url.host or "127.0.0.1", url.port or 5432)
        through = url.set(host="127.0.0.1", port=proxy.port)
        return proxy, through.render_as_string(hide_password=False)

    def __enter__(self) -> CuttableProxy:
        self._thread.start()
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self._closed.set()
        self._listener.close()
        self._drop_all()

    def cut(self) -> None:
        self._cut.set()
        self._drop_all()

    def restore(self) -> None:
        self._cut.clear()

    def _drop_all(self) -> None:
        with self._lock:
            sockets, self._open = set(self._open), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._cut.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            with self._lock:
                self._open -= {source, sink}
