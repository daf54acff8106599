"""The emulated WinRM listener: HTTP on 127.0.0.1, `/wsman`, one per host.

    server = EmulatorServer(host, port=0, users={...}, auth=("basic", "ntlm"))
    server.start(); server.url; server.faults = Faults(hang={"Checkpoint-VM"}); server.stop()

Basic (a WinRM listener with AllowUnencrypted and Basic enabled; pypsrp
`ssl=False, auth="basic", encryption="never"`) and NTLM through Negotiate,
with or without message encryption (pypsrp `auth="ntlm"`, the default
`encryption="auto"` encrypts over HTTP). Faults (faults.py) can be changed
while the server runs. `stop()` closes every connection and shell and joins
every thread it started.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bot.devtools.emulator.auth import BasicAuth, EncryptionError, NtlmAcceptor, unwrap, wrap
from bot.devtools.emulator.cmdlets import RunContext
from bot.devtools.emulator.faults import Faults
from bot.devtools.emulator.log import EmulatorLog
from bot.devtools.emulator.psrp import PsrpSession
from bot.devtools.emulator.wsman import WSManService
from bot.devtools.hostmodel.host import ModelHost

DEFAULT_USERS = {"hvadmin": "Passw0rd!"}  # a loopback test credential
LOOPBACK = "127.0.0.1"
_SOAP = "application/soap+xml;charset=UTF-8"


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = True  # server_close() joins the connection threads

    def __init__(self, address: tuple[str, int], emulator: EmulatorServer) -> None:
        self.emulator = emulator
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def close_connections(self) -> None:
        with self.connections_lock:
            for sock in list(self.connections):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: NTLM authenticates a connection
    server: _HTTPServer
    ntlm: Any = None
    ntlm_user: str | None = None

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests and the CLI print their own lines

    def do_POST(self) -> None:
        emulator = self.server.emulator
        faults = emulator.faults
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        delay = (emulator.latency_ms + faults.latency_ms) / 1000
        if delay and emulator.stopping.wait(delay):
            self.close_connection = True
            return
        if faults.drop:
            # The request was read; the peer sees the connection close with
            # no response (requests: ConnectionError / RemoteDisconnected).
            self.close_connection = True
            return
        if self.path.rstrip("/").lower() != "/wsman":
            self._reply(404, b"", "text/plain")
            return
        if not self._authenticated():
            return
        self._serve(body)

    def _offers(self) -> list[str]:
        auth = self.server.emulator.auth
        return (["Negotiate"] if "ntlm" in auth else []) + (
            ['Basic realm="WSMAN"'] if "basic" in auth else []
        )

    def _unauthorized(self, challenges: Iterable[str] | None = None) -> None:
        self._reply(
            401, b"", "text/plain", challenges if challenges is not None else self._offers()
        )

    def _authenticated(self) -> bool:
        emulator = self.server.emulator
        if emulator.unauthorized_now():
            self._unauthorized()
            return False
        header = self.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "basic" and "basic" in emulator.auth:
            if emulator.basic.check(header) is None:
                self._unauthorized()
                return False
            return True
        if scheme.lower() in ("negotiate", "ntlm") and emulator.ntlm is not None:
            return self._ntlm_step(value.strip(), scheme)
        if self.ntlm is not None and self.ntlm.complete:
            return True  # an NTLM-authenticated connection
        self._unauthorized()
        return False

    def _ntlm_step(self, token: str, scheme: str) -> bool:
        acceptor = self.server.emulator.ntlm
        assert acceptor is not None
        try:
            if self.ntlm is None or self.ntlm.complete:
                self.ntlm = acceptor.new_context()
            out = acceptor.step(self.ntlm, base64.b64decode(token))
        except Exception:  # any spnego failure is a rejected logon
            self.ntlm = None
            self._unauthorized()
            return False
        challenge = f"{scheme} {base64.b64encode(out).decode()}" if out else None
        if not self.ntlm.complete:
            self._unauthorized([challenge] if challenge else self._offers())
            return False
        self.pending_challenge = challenge  # the final SPNEGO token rides on the 200
        return True

    def _serve(self, body: bytes) -> None:
        content_type = self.headers.get("Content-Type", "")
        encrypted = content_type.lower().startswith("multipart/encrypted")
        if encrypted:
            if self.ntlm is None or not self.ntlm.complete:
                self._unauthorized()
                return
            try:
                body = unwrap(self.ntlm, body, content_type)
            except (EncryptionError, ValueError, Exception):
                self._reply(400, b"", "text/plain")
                return
        if not body:
            # pypsrp's empty POST that sets up the encryption context.
            self._reply(200, b"", _SOAP)
            return
        status, answer = self.server.emulator.wsman.handle(body)
        if encrypted:
            kind, answer = wrap(self.ntlm, answer)
            self._reply(status, answer, kind)
        else:
            self._reply(status, answer, _SOAP)

    def _reply(
        self, status: int, body: bytes, content_type: str, challenges: Iterable[str] = ()
    ) -> None:
        self.send_response(status)
        for challenge in challenges:
            self.send_header("WWW-Authenticate", challenge)
        pending = getattr(self, "pending_challenge", None)
        if pending and status != 401:
            self.send_header("WWW-Authenticate", pending)
            self.pending_challenge = None
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class EmulatorServer:
    """One emulated Hyper-V host's WinRM endpoint."""

    def __init__(
        self,
        host: ModelHost,
        *,
        port: int = 0,
        users: Mapping[str, str] | None = None,
        auth: Iterable[str] = ("basic", "ntlm"),
        latency_ms: int = 0,
        faults: Faults | None = None,
        log: EmulatorLog | None = None,
    ) -> None:
        self.host = host
        self.auth = frozenset(a.lower() for a in auth)
        unknown = self.auth - {"basic", "ntlm"}
        if unknown:
            raise ValueError(f"unsupported auth {sorted(unknown)}; use basic and/or ntlm")
        self.users = dict(users if users is not None else DEFAULT_USERS)
        self.latency_ms = latency_ms
        self.log = log if log is not None else EmulatorLog()
        self.basic = BasicAuth(self.users)
        self.ntlm: NtlmAcceptor | None = None
        self.stopping = threading.Event()
        self.wsman = WSManService(host.name, self._new_session)
        self._faults = faults or Faults()
        self._requested_port = port
        self._port = 0
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.RLock()
        self._started = False

    def __repr__(self) -> str:
        return f"EmulatorServer({self.host.name!r}, url={self.url!r})"

    def _new_session(self) -> PsrpSession:
        def context(stop: threading.Event) -> RunContext:
            return RunContext(
                host=self.host,
                stop=stop,
                hang=lambda: self._faults.hang,
                hidden=lambda: self._faults.hidden,
                log=self.log,
                slow=lambda: self._faults.slow,
            )

        return PsrpSession(context)

    def unauthorized_now(self) -> bool:
        return self._faults.unauthorized

    # -- faults ---------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, value: Faults) -> None:
        with self._lock:
            old, self._faults = self._faults, value
            if not self._started or old.refuse == value.refuse:
                return
            if value.refuse:
                self._stop_listening()
            else:
                self._listen()

    # -- lifetime -------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self._port}/wsman"

    def start(self) -> EmulatorServer:
        with self._lock:
            if self._started:
                return self
            if "ntlm" in self.auth:
                self.ntlm = NtlmAcceptor(self.users)
            self.stopping.clear()
            self._started = True
            self._port = self._requested_port
            if self._faults.refuse:
                # Bind once to learn the port, then stop listening.
                self._listen()
                self._stop_listening()
            else:
                self._listen()
        return self

    def _listen(self) -> None:
        httpd = _HTTPServer((LOOPBACK, self._port), self)
        self._port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"emulator-{self.host.name}-{self._port}",
            daemon=True,
        )
        self._thread.start()

    def _stop_listening(self) -> None:
        httpd, thread = self._httpd, self._thread
        self._httpd, self._thread = None, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()  # joins the connection threads
        if thread is not None:
            thread.join()

    def stop(self) -> None:
        with self._lock:
            if not self._started:
                return
            self._started = False
            self.stopping.set()
            # Closing the shells wakes long-polling Receives and stops pipelines.
            self.wsman.close()
            self._stop_listening()
            if self.ntlm is not None:
                self.ntlm.close()
                self.ntlm = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_until_listening(port: int, timeout: float = 2.0) -> bool:
    """True once something accepts on 127.0.0.1:port (for callers that poll)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), 0.2):
            return True
        time.sleep(0.02)
    return False
