"""Socket Mode for `checkpoint-bot serve`: slack_sdk's websocket-client based
client, with the waits that made a refresh and a stop slow taken out.

Slack closes every Socket Mode connection after a few hours and says so
first with `{"type": "disconnect", "reason": "refresh_requested"}`; the app
opens a new one (https://docs.slack.dev/apis/events-api/using-socket-mode/).
Envelopes that come meanwhile must still be acked within 3 s
(https://api.slack.com/interactivity/handling#acknowledgment_response).

slack_sdk's built-in client (`slack_sdk.socket_mode.builtin`) reads the new
connection only once the old one is closed, and closing waits out the old
socket's 3 s read timeout: the first ack after a refresh came after ~3 s.
Its websocket-client based client
(https://docs.slack.dev/tools/python-slack-sdk/socket-mode/) reconnects at
once, but, measured with slack_sdk 3.48 and websocket-client 1.9
(bench/socket_reconnect.py):

- one thread runs the sessions one after the other, polling every 0.5 s,
  so the new connection waits for the old one to end and for the poll;
- closing a session closes the socket under the thread reading it, whose
  epoll wait then does not always wake: it waited out its 10 s select
  timeout, so a stop took ~9 s and a refresh now and then never reached the
  new connection before the next health check;
- the health check and the old session's close callback each opened one
  more connection (`apps.connections.open`) when one was already opening.

This client runs each session in its own thread, started with the session;
ends a session by sending the close frame (RFC 6455 section 5.5.1) and
letting its reader finish on the peer's answer, and only on a stop that
takes too long shuts the socket down under it; and lets only the current
session's close, or a current session that ended, ask for a new
connection. The rest (envelope queue, listeners, acks, pings) is slack_sdk's.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from logging import Logger

import websocket
from slack_bolt import App
from slack_bolt.adapter.socket_mode.websocket_client import SocketModeHandler as _Handler
from slack_bolt.util.utils import get_boot_message
from slack_sdk import WebClient
from slack_sdk.socket_mode.websocket_client import SocketModeClient as _Client
from websocket import WebSocketApp

__all__ = ["SocketModeClient", "SocketModeHandler"]

# How often the main thread, held by `SocketModeHandler.start`, wakes to run
# a signal handler another thread took the signal for.
WAKE_SECONDS = 0.2

# The close code of a close handshake that ended as asked (RFC 6455 section 7.4.1).
NORMAL_CLOSURE = 1000

# How long an old connection may take to answer the close frame after a
# refresh before it is cut off; nothing waits for it meanwhile.
REFRESH_GRACE_SECONDS = 5.0

# How long a stop waits for the peer to answer the close frame before
# shutting the socket down under the reader (Slack answers in milliseconds;
# a stop must take at most 1 s in all, issue #18).
CLOSE_GRACE_SECONDS = 0.5


class _OwnCloseFilter(logging.Filter):
    """websocket-client (1.9) reports every close, even the handshake this
    client started and the peer answered with 1000, as an error: on_error
    with a WebSocketConnectionClosedException, then `ERROR websocket: ...
    (code 1000) - goodbye` from the reader's thread. This drops that one
    line when it comes from the reader of a session this client is ending;
    any other close (the peer's own, another code, a lost connection) is
    still logged as websocket-client logs it."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._readers: set[int] = set()

    def expect(self, reader: int | None) -> None:
        if reader is not None:
            with self._lock:
                self._readers.add(reader)

    def done(self, reader: int | None) -> None:
        with self._lock:
            self._readers.discard(reader or 0)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or record.thread not in self._readers:
            return True
        return not record.getMessage().endswith(f"(code {NORMAL_CLOSURE}) - goodbye")


def _normal_closure(error: Exception) -> bool:
    """The peer answered the close frame with 1000 (websocket-client sets
    `status_code` on the exception it makes of the peer's close frame)."""
    return (
        isinstance(error, websocket.WebSocketConnectionClosedException)
        and getattr(error, "status_code", None) == NORMAL_CLOSURE
    )


def _join(threads: list[threading.Thread], seconds: float) -> None:
    """Join all of `threads` within `seconds` in all."""
    deadline = time.monotonic() + seconds
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


class SocketModeClient(_Client):
    """slack_sdk's websocket-client based Socket Mode client, reconnecting and
    stopping without its waits (see the module's docstring)."""

    def __init__(
        self,
        app_token: str,
        logger: Logger | None = None,
        web_client: WebClient | None = None,
        ping_interval: float = 10,
        concurrency: int = 10,
    ) -> None:
        self._sessions: dict[WebSocketApp, threading.Thread] = {}
        # The library's socket of each session being ended, closed for good
        # once its reader is done.
        self._ending: dict[WebSocketApp, websocket.WebSocket] = {}
        self._sessions_lock = threading.Lock()
        self._timers: list[threading.Timer] = []
        self._opened: set[WebSocketApp] = set()
        # This client's own: on websocket-client's logger while it is open,
        # dropping only the "goodbye" of the sessions it ends itself.
        self._own_close = _OwnCloseFilter()
        logging.getLogger("websocket").addFilter(self._own_close)
        super().__init__(
            app_token=app_token,
            logger=logger,
            web_client=web_client,
            ping_interval=ping_interval,
            concurrency=concurrency,
        )
        # The parent's one-after-the-other runner has no session yet: stop it
        # (it wakes at once); connect() starts a thread per session instead.
        self.current_session_runner.shutdown()  # type: ignore[no-untyped-call]

    # --- sessions ----------------------------------------------------------

    def _run_session(self, session: WebSocketApp) -> None:
        try:
            self.logger.info("Starting to receive messages from a new connection")
            session.run_forever(ping_interval=self.ping_interval)
            self.logger.info("Stopped receiving messages from a connection")
        except Exception as exc:
            self.logger.exception(f"Failed to start or stop the current session: {exc}")
        finally:
            self._own_close.done(threading.get_ident())
            with self._sessions_lock:
                self._sessions.pop(session, None)
                self._opened.discard(session)
                ending = self._ending.pop(session, None)
            if ending is not None:
                # The descriptor; the close handshake is done.
                ending.shutdown()  # type: ignore[no-untyped-call]

    def _end_session(self, session: WebSocketApp, drop_after: float | None) -> None:
        """Send the close frame; the reader goes on until the peer's close
        frame, then tears down (RFC 6455 section 7.1.1: the client closes the
        TCP connection after the handshake). The socket is marked closed so
        that the teardown sends no second close frame; _run_session closes
        the descriptor after it. A peer that never answers is cut off after
        `drop_after` seconds (None: the caller does it)."""
        sock = session.sock
        if sock is None or not sock.connected:
            session.keep_running = False
            return
        with self._sessions_lock:
            reader = self._sessions.get(session)
            if reader is not None:
                # Before the close frame goes: the peer's answer, and what
                # websocket-client says of it, may come at once.
                self._ending[session] = sock
                self._own_close.expect(reader.ident)
        try:
            sock.send_close()
        except (OSError, websocket.WebSocketException):
            session.keep_running = False  # the peer is gone: stop reading
        sock.connected = False
        if drop_after is not None:
            timer = threading.Timer(drop_after, self._force_end, (session,))
            timer.daemon = True
            self._timers = [t for t in self._timers if t.is_alive()]
            self._timers.append(timer)
            timer.start()

    def _force_end(self, only: WebSocketApp | None = None) -> None:
        """Wake readers that still wait for the peer's close frame:
        shutdown(2) makes their select return, and they tear down."""
        with self._sessions_lock:
            stuck = [
                ws.sock.sock
                for ws in self._ending
                if ws.sock is not None and ws.sock.sock is not None and only in (None, ws)
            ]
        for raw in stuck:
            with contextlib.suppress(OSError):  # already closed
                raw.shutdown(socket.SHUT_RDWR)

    def connect(self) -> None:
        # slack_sdk's connect (slack_sdk/socket_mode/websocket_client), with
        # a thread per session, the old session ended by _end_session, and a
        # close callback that reconnects only for the current session.
        def on_open(ws: WebSocketApp) -> None:
            with self._sessions_lock:
                self._opened.add(ws)

        def on_message(_ws: WebSocketApp, message: str) -> None:
            self.enqueue_message(message)

        def on_error(ws: WebSocketApp, error: Exception) -> None:
            with self._sessions_lock:
                ours = ws in self._ending
            if ours and _normal_closure(error):
                # The end of a session this client closed (a stop, a reload,
                # a refresh), answered as asked: not an error.
                self.logger.debug("Connection closed as asked (code 1000)")
                return
            self.logger.error(f"on_error invoked (error: {type(error).__name__}, message: {error})")

        def on_close(ws: WebSocketApp, code: int | None = None, _why: str | None = None) -> None:
            if self.logger.isEnabledFor(logging.DEBUG):
                self.logger.debug(f"on_close invoked (code: {code})")
            with self._sessions_lock:
                was_open = ws in self._opened
            # A connection that never opened is not retried from here, or an
            # endpoint that refuses would be asked again in a tight loop: the
            # health check retries it every ping_interval, as slack_sdk does.
            if (
                was_open
                and ws is self.current_session
                and self.auto_reconnect_enabled
                and not self.closed
            ):
                self.logger.info("Received CLOSE event. Reconnecting...")
                self.connect_to_new_endpoint(force=True)

        old_session = self.current_session
        if self.wss_uri is None:
            self.wss_uri = self.issue_new_wss_url()
        session = WebSocketApp(
            self.wss_uri,
            on_open=on_open,
            on_message=on_message,
            on_error=on_error,
            on_close=on_close,
        )
        runner = threading.Thread(
            target=self._run_session, args=(session,), name="socket-mode-session", daemon=True
        )
        with self._sessions_lock:
            self._sessions[session] = runner
        self.current_session = session
        self.auto_reconnect_enabled = self.default_auto_reconnect_enabled
        runner.start()
        if not self.current_app_monitor_started:
            self.current_app_monitor_started = True
            self.current_app_monitor.start()
        if old_session is not None:
            self._end_session(old_session, drop_after=REFRESH_GRACE_SECONDS)
        self.logger.info("A new session has been established")

    def _monitor_current_session(self) -> None:
        # slack_sdk reconnects when the current session has no socket, which
        # is also true while it is still opening; only a session whose
        # thread has ended is lost.
        if not self.auto_reconnect_enabled or self.closed:
            return
        with self._sessions_lock:
            running = self.current_session in self._sessions
        if not running:
            self.logger.info("The session seems to be already closed. Reconnecting...")
            try:
                self.connect_to_new_endpoint(force=True)
            except Exception as exc:
                self.logger.error(
                    "Failed to reconnect to the server "
                    f"(error: {type(exc).__name__}, message: {exc})"
                )

    def is_connected(self) -> bool:
        session = self.current_session
        sock = session.sock if session is not None else None
        return sock is not None and sock.connected

    def disconnect(self) -> None:
        if self.current_session is not None:
            self._end_session(self.current_session, drop_after=None)

    def close(self) -> None:
        self.closed = True
        self.auto_reconnect_enabled = False
        self.disconnect()
        # The message processor waits up to 1 s on its queue: wake it (it
        # skips None) so that it sees `closed`.
        self.message_queue.put(None)
        for timer in self._timers:
            timer.cancel()
        with self._sessions_lock:
            runners = list(self._sessions.values())
        _join(runners, CLOSE_GRACE_SECONDS)
        if any(r.is_alive() for r in runners):
            self._force_end()
            _join(runners, CLOSE_GRACE_SECONDS)
        self.current_app_monitor.shutdown()  # type: ignore[no-untyped-call]
        self.message_processor.shutdown()  # type: ignore[no-untyped-call]
        self.message_workers.shutdown()
        logging.getLogger("websocket").removeFilter(self._own_close)


class SocketModeHandler(_Handler):
    """slack_bolt's websocket-client adapter on the client above."""

    client: SocketModeClient

    def __init__(self, app: App, app_token: str, ping_interval: float = 10) -> None:
        # The adapter's own __init__ would start slack_sdk's client (threads
        # that take up to 1 s to stop); this one sets the same fields on ours.
        self.app = app
        self.app_token = app_token
        self.client = SocketModeClient(
            app_token=app_token,
            logger=app.logger,
            web_client=app.client,
            ping_interval=ping_interval,
        )
        self.client.socket_mode_request_listeners.append(self.handle)  # type: ignore[arg-type]

    def start(self) -> None:
        """Connect, then hold the calling (main) thread until a signal
        handler raises there (Ctrl-C; `serve` makes SIGTERM one).

        Bolt's own `start()` holds it in an untimed `Event().wait()`. A
        signal sent to the process is delivered to any one thread that does
        not block it (https://man7.org/linux/man-pages/man7/signal.7.html),
        while Python runs the handler in the main thread only, between
        bytecodes (https://docs.python.org/3/library/signal.html#signals-and-threads):
        taken by another thread, it never woke a main thread blocked on a
        lock, and `serve` given SIGTERM under load went on forever. Short
        sleeps let the main thread see it within WAKE_SECONDS."""
        self.connect()  # type: ignore[no-untyped-call]
        self.app.logger.info(get_boot_message())
        while True:
            time.sleep(WAKE_SECONDS)
