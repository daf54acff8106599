"""The emulated WinRM listener: HTTP or HTTPS on 127.0.0.1, `/wsman`, one per host.

    server = EmulatorServer(host, port=0, users={...}, auth=("basic", "ntlm"))
    server.start(); server.url; server.faults = Faults(hang={"Checkpoint-VM"}); server.stop()
    EmulatorServer(host, auth=("kerberos",), keytab=path, tls=TlsIdentity(cert, key))

Basic (a WinRM listener with AllowUnencrypted and Basic enabled; pypsrp
`ssl=False, auth="basic", encryption="never"`), NTLM and Kerberos through
Negotiate, with or without message encryption (pypsrp `auth="ntlm"` or
`"kerberos"`; the default `encryption="auto"` encrypts over HTTP). `auth`
says which of them the listener accepts, as WinRM's service settings
Auth/Basic, Auth/Negotiate and Auth/Kerberos do, and `allow_unencrypted`
is the service's AllowUnencrypted
(https://learn.microsoft.com/windows/win32/winrm/installation-and-configuration-for-windows-remote-management):
on by default here, so the tests' and benches' Basic clients work over
HTTP; off, as Windows ships it (and as `make demo` serves its hosts), a
message over HTTP that is not sealed is refused, whoever authenticated it.
With `tls` it is an HTTPS listener: the certificate is the one a WinRM HTTPS
listener is created with (`New-Item WSMan:\\localhost\\Listener -Transport
HTTPS -CertificateThumbPrint ...`,
https://learn.microsoft.com/previous-versions/windows/it-pro/windows-server-2003/cc782312(v=ws.10)),
and the Negotiate acceptor checks a token's channel binding against that
certificate (RFC 5929 tls-server-end-point), as WinRM's CbtHardeningLevel does. Faults
(faults.py) can be changed while the server runs. `stop()` closes every
connection and shell and joins every thread it started.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from spnego.channel_bindings import GssChannelBindings

from bot.devtools.emulator.auth import (
    BasicAuth,
    EncryptionError,
    NegotiateAcceptor,
    unwrap,
    wrap,
)
from bot.devtools.emulator.cmdlets import RunContext
from bot.devtools.emulator.faults import Faults
from bot.devtools.emulator.log import EmulatorLog
from bot.devtools.emulator.psrp import PsrpSession
from bot.devtools.emulator.wsman import WSManService
from bot.devtools.hostmodel.host import ModelHost

DEFAULT_USERS = {"hvadmin": "Passw0rd!"}  # a loopback test credential
LOOPBACK = "127.0.0.1"
_SOAP = "application/soap+xml;charset=UTF-8"
AUTHS = frozenset({"basic", "ntlm", "kerberos"})


@dataclass(frozen=True)
class TlsIdentity:
    """The listener's certificate (PEM, leaf first, then any intermediates) and key."""

    certificate_pem: Path
    key_pem: Path

    def context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.certificate_pem, self.key_pem)
        return context

    def channel_bindings(self) -> GssChannelBindings:
        """RFC 5929 tls-server-end-point: the hash of the leaf certificate
        (SHA-256 for SHA-1 and SHA-256 signatures, else the signature's hash)."""
        cert = x509.load_pem_x509_certificate(self.certificate_pem.read_bytes())
        algorithm = cert.signature_hash_algorithm
        name = algorithm.name if algorithm is not None else "sha256"
        digest = hashlib.new("sha256" if name in ("md5", "sha1") else name)
        digest.update(cert.public_bytes(Encoding.DER))
        return GssChannelBindings(application_data=b"tls-server-end-point:" + digest.digest())


@dataclass(frozen=True)
class Logon:
    """Who a Negotiate handshake authenticated, and with which protocol."""

    protocol: str
    principal: str


class CannotListen(OSError):
    """A host's endpoint could not bind its port (taken, or not allowed)."""

    def __init__(self, host: str, port: int, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror or str(cause))
        self.host, self.port = host, port

    def __str__(self) -> str:
        return f"cannot serve {self.host} on {LOOPBACK}:{self.port}: {self.strerror}"


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = True  # server_close() joins the connection threads
    # handle_request() after serve()'s select: accept what is there, never
    # wait for another connection (socketserver.BaseServer.timeout).
    timeout = 0

    def __init__(self, address: tuple[str, int], emulator: EmulatorServer) -> None:
        self.emulator = emulator
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        self.tls = emulator.tls.context() if emulator.tls is not None else None
        # Before the bind: a port that is taken makes TCPServer.__init__
        # call server_close(), which closes these too.
        self._wake_reader, self._wake_writer = socket.socketpair()
        super().__init__(address, _Handler)
        self._stop_requested = False
        self._served = threading.Event()

    def serve(self) -> None:
        """socketserver's serve_forever without its poll interval: the select
        blocks until a connection or stop_serving(). A fleet bench runs 100
        listeners in one process, and their 20 wake-ups a second each were
        CPU that the hosts' answers waited for."""
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(self, selectors.EVENT_READ)
                selector.register(self._wake_reader, selectors.EVENT_READ)
                while True:
                    ready = selector.select()
                    if self._stop_requested:
                        break
                    if any(key.fileobj is self for key, _ in ready):
                        self.handle_request()  # readable: it accepts at once
                    self.service_actions()
        finally:
            self._served.set()

    def stop_serving(self) -> None:
        """Like shutdown(): returns once serve() has left its loop."""
        self._stop_requested = True
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"\0")
        self._served.wait()

    def server_close(self) -> None:
        super().server_close()
        self._wake_reader.close()
        self._wake_writer.close()

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        if self.tls is not None:
            # The handshake runs on the connection's own thread (its first read),
            # so a client that refuses the certificate never stalls accept().
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a refused handshake or a dropped peer is the client's business

    def close_connections(self) -> None:
        with self.connections_lock:
            for sock in list(self.connections):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: Negotiate authenticates a connection
    # TCP_NODELAY on each connection (socketserver.StreamRequestHandler,
    # https://docs.python.org/3/library/socketserver.html): a reply went out
    # as two sends (headers, then body), and with Nagle's algorithm the body
    # waited for the peer's delayed ACK of the headers, about 40 ms on
    # Linux (RFC 1122 4.2.3.2, RFC 896), on top of `latency_ms`. A WinRM
    # listener (HTTP.sys) shows no such stall, and the benches' "50 ms per
    # request" then meant about 90. _reply now sends both at once; a 401
    # or a large body still must not wait for an ACK.
    disable_nagle_algorithm = True
    server: _HTTPServer
    negotiate: Any = None

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
        # The schemes a WinRM listener offers on a 401, one per enabled Auth/*
        # setting (Negotiate covers NTLM and Kerberos; Kerberos alone is offered
        # too): https://learn.microsoft.com/windows/win32/winrm/authentication-for-remote-connections
        auth = self.server.emulator.auth
        return (
            (["Negotiate"] if auth & {"ntlm", "kerberos"} else [])
            + (["Kerberos"] if "kerberos" in auth else [])
            + (['Basic realm="WSMAN"'] if "basic" in auth else [])
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
        if scheme.lower() in ("negotiate", "ntlm", "kerberos") and emulator.acceptor is not None:
            return self._negotiate_step(value.strip(), scheme)
        if self.negotiate is not None and self.negotiate.complete:
            return True  # a Negotiate-authenticated connection
        self._unauthorized()
        return False

    def _negotiate_step(self, token: str, scheme: str) -> bool:
        emulator = self.server.emulator
        acceptor = emulator.acceptor
        assert acceptor is not None
        try:
            if self.negotiate is None or self.negotiate.complete:
                self.negotiate = acceptor.new_context(emulator.channel_bindings)
            out = acceptor.step(self.negotiate, base64.b64decode(token))
        except Exception:  # any spnego failure is a rejected logon
            self.negotiate = None
            self._unauthorized()
            return False
        challenge = f"{scheme} {base64.b64encode(out).decode()}" if out else None
        if not self.negotiate.complete:
            self._unauthorized([challenge] if challenge else self._offers())
            return False
        protocol = str(self.negotiate.negotiated_protocol).lower()
        if protocol not in emulator.auth:
            # Negotiate picked a protocol this listener has switched off
            # (Auth/Kerberos or NTLM through Auth/Negotiate).
            self.negotiate = None
            self._unauthorized()
            return False
        principal = getattr(self.negotiate, "client_principal", None) or ""
        emulator.record_logon(Logon(protocol=protocol, principal=str(principal)))
        self.pending_challenge = challenge  # the final token (AP-REP) rides on the 200
        return True

    def _serve(self, body: bytes) -> None:
        content_type = self.headers.get("Content-Type", "")
        encrypted = content_type.lower().startswith("multipart/encrypted")
        if encrypted:
            if self.negotiate is None or not self.negotiate.complete:
                self._unauthorized()
                return
            try:
                body = unwrap(self.negotiate, body, content_type)
            except (EncryptionError, ValueError, Exception):
                self._reply(400, b"", "text/plain")
                return
        if not body:
            # pypsrp's empty POST that sets up the encryption context.
            self._reply(200, b"", _SOAP)
            return
        emulator = self.server.emulator
        if not encrypted and emulator.tls is None and not emulator.allow_unencrypted:
            # AllowUnencrypted false (Windows' default): over HTTP the
            # service takes only sealed messages. A client that sends one in
            # the clear sees the request fail with a server error; nothing
            # in it is read, so nothing runs.
            self._reply(500, b"", "text/plain")
            return
        status, answer = emulator.wsman.handle(body)
        if encrypted:
            kind, answer = wrap(self.negotiate, answer)
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
        # Head and body in one send: end_headers() writes the head to wfile
        # on its own, a second system call and TCP segment for every reply.
        head, wfile = io.BytesIO(), self.wfile
        self.wfile = head
        try:
            self.end_headers()
        finally:
            self.wfile = wfile
        self.wfile.write(head.getvalue() + body)


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
        keytab: Path | None = None,
        tls: TlsIdentity | None = None,
        allow_unencrypted: bool = True,
    ) -> None:
        self.host = host
        self.allow_unencrypted = allow_unencrypted
        self.auth = frozenset(a.lower() for a in auth)
        unknown = self.auth - AUTHS
        if unknown:
            raise ValueError(
                f"unsupported auth {sorted(unknown)}; use any of {', '.join(sorted(AUTHS))}"
            )
        if "kerberos" in self.auth and keytab is None:
            raise ValueError("kerberos auth needs keytab= (the HTTP/<host> service keys)")
        self.users = dict(users if users is not None else DEFAULT_USERS)
        self.latency_ms = latency_ms
        self.log = log if log is not None else EmulatorLog()
        self.basic = BasicAuth(self.users)
        self.keytab = keytab
        self.tls = tls
        self.channel_bindings = tls.channel_bindings() if tls is not None else None
        self.acceptor: NegotiateAcceptor | None = None
        self.logons: list[Logon] = []
        self._logons_lock = threading.Lock()
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
                late=lambda: self._faults.late,
            )

        return PsrpSession(context)

    def unauthorized_now(self) -> bool:
        return self._faults.unauthorized

    def record_logon(self, logon: Logon) -> None:
        # Its own lock: stop() holds _lock while it joins the handler threads.
        with self._logons_lock:
            self.logons.append(logon)

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
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{LOOPBACK}:{self._port}/wsman"

    def start(self) -> EmulatorServer:
        """Listen; CannotListen when the port cannot be bound (nothing is
        left open then: the server can be started again)."""
        with self._lock:
            if self._started:
                return self
            if self.auth & {"ntlm", "kerberos"}:
                self.acceptor = NegotiateAcceptor(self.users, keytab=self.keytab)
            self.stopping.clear()
            self._started = True
            self._port = self._requested_port
            try:
                self._listen()
            except BaseException:
                self.stop()
                raise
            if self._faults.refuse:
                # Bound once to learn the port; now refuse connections.
                self._stop_listening()
        return self

    def _listen(self) -> None:
        try:
            httpd = _HTTPServer((LOOPBACK, self._port), self)
        except OSError as exc:
            raise CannotListen(self.host.name, self._port, exc) from exc
        self._port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve,
            name=f"emulator-{self.host.name}-{self._port}",
            daemon=True,
        )
        self._thread.start()

    def _stop_listening(self) -> None:
        httpd, thread = self._httpd, self._thread
        self._httpd, self._thread = None, None
        if httpd is None:
            return
        httpd.stop_serving()
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
            if self.acceptor is not None:
                self.acceptor.close()
                self.acceptor = None

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
