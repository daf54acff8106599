"""Slack, faked at its edges for tests and the bench.

- `FakeSlackApi`: a Web API server on 127.0.0.1 (stdlib ThreadingHTTPServer)
  that answers the methods the bot calls like Slack does, records every call
  (method and parsed body), and checks posted blocks and views with
  slack_sdk.models the way Slack would: an unknown block, a block that fails
  `to_dict()`, or more than 50 blocks (100 in a view) is `invalid_blocks`.
  It also takes `response_url` posts, at `/response/<n>`.
- `SlackSender`: sends what Slack sends, signed exactly like Slack
  (`v0:{ts}:{body}`, HMAC-SHA256 with the signing secret).
- `running_bot`: the bot in HTTP mode for real (waitress on an ephemeral
  port) against a demo context and the fake API; with `emulated=True` its
  hosts are the WinRM emulator (real pypsrp over loopback), whose command
  log says which cmdlets reached a host.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import parse_qsl, urlencode, urlsplit

from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.clock import ScaledClock
from bot.config import HyperVConfig, Settings
from bot.context import AppContext, build_context
from bot.devtools.emulator import EmulatedFleet, EmulatorLog
from bot.devtools.emulator.pointing import EMULATOR_PASSWORD_ENV, emulated_inventory
from bot.devtools.hostmodel import InMemoryHostStateStore, demo_hosts_path, load_host_model
from bot.inventory import demo_inventory_path, load_inventory
from bot.notify import ChannelPacer, ThreadNotifier
from bot.slack_http import HttpServer, SlackWsgi, consumer_running, database_answers
from handlers.app import build_bolt_app
from templates import Renderer
from templates.blocks import SlackRenderer
from tests.helpers import T0, settings_for

SIGNING_SECRET = "test-signing-secret"
BOT_TOKEN = "xoxb-test"
TEAM_ID = "T0TEST"  # the fake API's auth.test team, and what SlackSender sends
EMULATOR_USER, EMULATOR_PASSWORD = "hvadmin", "Passw0rd!"
MESSAGE_BLOCKS, VIEW_BLOCKS = 50, 100


@dataclass(frozen=True)
class Call:
    method: str
    body: dict[str, Any]
    at: float
    # What the fake Web API answered (None for a response_url post): where a
    # message landed and its ts, as a later chat.update must name them.
    answer: dict[str, Any] | None = None


def _decode(raw: bytes, content_type: str, query: str) -> dict[str, Any]:
    body: dict[str, Any] = dict(parse_qsl(query))
    if not raw:
        return body
    if "json" in content_type:
        body.update(json.loads(raw))
    else:
        body.update(dict(parse_qsl(raw.decode())))
    # Form-encoded calls carry nested values as JSON strings.
    for key in ("blocks", "view", "attachments"):
        if isinstance(body.get(key), str):
            body[key] = json.loads(body[key])
    return body


def block_problem(payload: dict[str, Any]) -> str | None:
    """What Slack would reject in a message's blocks or a view, or None."""
    blocks = payload.get("blocks")
    view = payload.get("view")
    try:
        if blocks is not None:
            if len(blocks) > MESSAGE_BLOCKS:
                return f"{len(blocks)} blocks"
            for raw, parsed in zip(
                blocks, cast(list[Block | None], Block.parse_all(blocks)), strict=True
            ):
                if parsed is None:
                    return f"unknown block: {raw.get('type')}"
                parsed.to_dict()
        if view is not None:
            if len(view.get("blocks", [])) > VIEW_BLOCKS:
                return "too many view blocks"
            View(**view).to_dict()
            for raw, parsed in zip(
                view.get("blocks", []),
                cast(list[Block | None], Block.parse_all(view.get("blocks", []))),
                strict=True,
            ):
                if parsed is None:
                    return f"unknown block in view: {raw.get('type')}"
                parsed.to_dict()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


class FakeSlackApi:
    def __init__(self, usergroups: list[dict[str, Any]] | None = None) -> None:
        self.calls: list[Call] = []
        self.usergroups = usergroups or []
        # Methods that answer an error (method -> Slack's error code), as
        # Slack does when it is down for them or a scope is missing.
        self.failing: dict[str, str] = {}
        # users.info's team per user (default: ours): externals of a shared channel.
        self.user_teams: dict[str, str] = {}
        # users.info's `tz` per user (default UTC): what `--at` is read in.
        self.user_tz: dict[str, str] = {}
        # What apps.connections.open hands out: a Socket Mode server's ws:// URL.
        self.socket_url = ""
        self._ts = itertools.count(1)
        self._views = itertools.count(1)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = _decode(raw, self.headers.get("Content-Type", ""), parts.query)
                if parts.path.startswith("/response/"):
                    method = "response_url:" + parts.path.rsplit("/", 1)[1]
                    problem = block_problem(body)
                    api.record(method, body)
                    status, text = (400, "invalid_blocks") if problem else (200, "ok")
                    self._send(status, text.encode(), "text/plain")
                    return
                method = parts.path.removeprefix("/api/")
                answer = api.answer(method, body)
                self._send(200, json.dumps(answer).encode(), "application/json")

            def _send(self, status: int, data: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeSlackApi:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def record(
        self, method: str, body: dict[str, Any], answer: dict[str, Any] | None = None
    ) -> None:
        with self._changed:
            self.calls.append(Call(method, body, time.monotonic(), answer))
            self._changed.notify_all()

    def answer(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        found = self._answer(method, body)
        self.record(method, body, found)
        return found

    def _answer(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        problem = block_problem(body)
        if problem:
            return {"ok": False, "error": "invalid_blocks", "detail": problem}
        ts = f"{1_700_000_000 + next(self._ts)}.000100"
        channel = _landed_in(str(body.get("channel", "C0TEST")))
        answers: dict[str, Callable[[], dict[str, Any]]] = {
            "auth.test": lambda: {
                "url": "https://test.slack.com/",
                "team": "Test",
                "user": "checkpoint-bot",
                "team_id": "T0TEST",
                "user_id": "U0BOT",
                "bot_id": "B0BOT",
            },
            "chat.postMessage": lambda: {"channel": channel, "ts": ts, "message": {"ts": ts}},
            "chat.update": lambda: {"channel": channel, "ts": body.get("ts")},
            "chat.postEphemeral": lambda: {"message_ts": ts},
            "views.open": lambda: {"view": {**body.get("view", {}), "id": self._view_id()}},
            "views.update": lambda: {"view": {**body.get("view", {}), "id": self._view_id()}},
            "views.publish": lambda: {"view": {**body.get("view", {}), "id": self._view_id()}},
            "users.info": lambda: {
                "user": {
                    "id": body.get("user"),
                    "team_id": self.user_teams.get(str(body.get("user")), TEAM_ID),
                    "tz": self.user_tz.get(str(body.get("user")), "UTC"),
                }
            },
            "usergroups.list": lambda: {"usergroups": self.usergroups},
            "conversations.info": lambda: {"channel": {"id": channel, "name": "ops"}},
            "apps.connections.open": lambda: {"url": self.socket_url},
        }
        make = answers.get(method)
        if method in self.failing:
            return {"ok": False, "error": self.failing[method]}
        if make is None:
            return {"ok": False, "error": "unknown_method"}
        return {"ok": True, **make()}

    def _view_id(self) -> str:
        return f"V{next(self._views):08d}"

    def of(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def wait_for(self, predicate: Callable[[list[Call]], Any], timeout: float = 10.0) -> list[Call]:
        """Block until `predicate(calls)` is truthy; the calls at that moment."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self.calls):
                left = deadline - time.monotonic()
                if left <= 0:
                    methods = [c.method for c in self.calls]
                    raise AssertionError(f"timed out waiting; calls so far: {methods}")
                self._changed.wait(left)
            return list(self.calls)


def _landed_in(channel: str) -> str:
    """Where Slack says a message landed: a post to a user id lands in the
    DM with the bot, a `D…` conversation, and chat.update takes only that
    id (https://api.slack.com/methods/chat.postMessage#channels)."""
    return f"D{channel[1:]}" if channel[:1] in ("U", "W") else channel


def signature(secret: str, timestamp: str, body: str) -> str:
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


@dataclass
class Reply:
    status: int
    body: str
    seconds: float


@dataclass
class SlackSender:
    """Posts to the bot what Slack would, signed like Slack: from our
    workspace by default; `team` another workspace (the same app installed
    there, or a correctly signed request an attacker got Slack to send);
    `user_team` the clicking user's own team where it differs from the
    workspace the channel is in (an external member of a shared channel);
    `enterprise` an Enterprise Grid organisation id."""

    bot_url: str
    api: FakeSlackApi
    secret: str = SIGNING_SECRET
    _n: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    team: str = TEAM_ID
    user_team: str | None = None
    enterprise: str | None = None

    def as_team(
        self, team: str, *, user_team: str | None = None, enterprise: str | None = None
    ) -> SlackSender:
        """The same sender (one response_url numbering) for another origin."""
        return replace(self, team=team, user_team=user_team, enterprise=enterprise)

    def _user(self, user: str) -> dict[str, str]:
        return {"id": user, "username": user.lower(), "team_id": self.user_team or self.team}

    def _team(self) -> dict[str, str]:
        found = {"id": self.team, "domain": "test"}
        if self.enterprise:
            found["enterprise_id"] = self.enterprise
        return found

    def _interaction(self, kind: str, user: str, **rest: Any) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "type": kind,
            "team": self._team(),
            "user": self._user(user),
            "api_app_id": "A0TEST",
            "token": "legacy",
            "enterprise": {"id": self.enterprise, "name": "Grid"} if self.enterprise else None,
            "is_enterprise_install": False,
            **rest,
        }
        return payload

    def post(
        self,
        body: str,
        content_type: str,
        *,
        timestamp: int | None = None,
        secret: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        sent = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": signature(secret or self.secret, ts, body),
            **(headers or {}),
        }
        split = urlsplit(self.bot_url)
        conn = http.client.HTTPConnection(split.hostname or "127.0.0.1", split.port, timeout=10)
        started = time.monotonic()
        try:
            conn.request("POST", "/slack/events", body=body.encode(), headers=sent)
            answer = conn.getresponse()
            text = answer.read().decode()
        finally:
            conn.close()
        return Reply(answer.status, text, time.monotonic() - started)

    def response_url(self) -> tuple[str, str]:
        key = f"r{next(self._n)}"
        return key, f"{self.api.url}/response/{key}"

    def command(
        self, text: str, *, user: str = "U0ALICE", channel: str = "C0OPS", **kw: Any
    ) -> tuple[Reply, str]:
        """A signed /checkpoint; returns the reply and its response_url key."""
        key, url = self.response_url()
        form = {
            "token": "legacy",
            "team_id": self.team,
            "team_domain": "test",
            "channel_id": channel,
            "channel_name": "ops",
            "user_id": user,
            "user_name": user.lower(),
            "command": "/checkpoint",
            "text": text,
            "api_app_id": "A0TEST",
            "is_enterprise_install": "false",
            "response_url": url,
            "trigger_id": f"trigger.{key}",
        }
        if self.enterprise:
            form["enterprise_id"] = self.enterprise
        return self.post(
            urlencode(form), "application/x-www-form-urlencoded", **kw
        ), "response_url:" + key

    def click(
        self,
        action_id: str,
        value: str,
        *,
        user: str = "U0BOB",
        channel: str = "C0OPS",
        message: dict[str, Any] | None = None,
        ephemeral: bool = False,
    ) -> tuple[Reply, str]:
        """A signed block_actions click on a button in a channel message
        (`message`: the message clicked, as Slack sends it along;
        `ephemeral`: a message only the clicker sees, such as a command's
        answer, which Slack's payload says in `container.is_ephemeral`)."""
        key, url = self.response_url()
        container = {"type": "message", "channel_id": channel, "message_ts": "1.0"}
        payload = self._interaction(
            "block_actions",
            user,
            container={**container, "is_ephemeral": ephemeral},
            trigger_id=f"trigger.{key}",
            channel={"id": channel, "name": "ops"},
            message=message or {"ts": "1.0", "text": "x"},
            response_url=url,
            actions=[_button(action_id, value)],
        )
        body = urlencode({"payload": json.dumps(payload)})
        return self.post(body, "application/x-www-form-urlencoded"), "response_url:" + key

    def home_click(self, action_id: str, value: str, *, user: str = "U0BOB") -> Reply:
        """A click on a button in the App Home: no channel, no response_url
        (the bot answers in the clicker's DM)."""
        key, _ = self.response_url()
        payload = self._interaction(
            "block_actions",
            user,
            container={"type": "view", "view_id": "V0HOME"},
            trigger_id=f"trigger.{key}",
            view={"id": "V0HOME", "type": "home", "team_id": self.team},
            actions=[_button(action_id, value)],
        )
        return self.post(
            urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded"
        )

    def submit_view(self, view: dict[str, Any], *, user: str = "U0ALICE") -> Reply:
        # Slack gives every submission its own trigger_id.
        trigger = f"trigger.view.{next(self._n)}"
        payload = self._interaction("view_submission", user, trigger_id=trigger, view=view)
        body = urlencode({"payload": json.dumps(payload)})
        return self.post(body, "application/x-www-form-urlencoded")

    def event(
        self, event: dict[str, Any], event_id: str, *, shared: bool = False, **kw: Any
    ) -> Reply:
        """`shared`: from a channel shared with another organisation."""
        envelope: dict[str, Any] = {
            "token": "legacy",
            "team_id": self.team,
            "api_app_id": "A0TEST",
            "event": event,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "authorizations": [{"team_id": self.team, "user_id": "U0BOT", "is_bot": True}],
            "is_ext_shared_channel": shared,
        }
        if self.enterprise:
            envelope["enterprise_id"] = self.enterprise
        return self.post(json.dumps(envelope), "application/json", **kw)


def _button(action_id: str, value: str) -> dict[str, Any]:
    return {
        "type": "button",
        "action_id": action_id,
        "block_id": "b1",
        "value": value,
        "action_ts": str(time.time()),
    }


@dataclass
class RunningBot:
    api: FakeSlackApi
    server: HttpServer
    ctx: AppContext
    slack: SlackSender
    # What the emulated hosts received (`emulated=True` only).
    emulator_log: EmulatorLog | None = None
    # The emulated hosts themselves (`emulated=True` only): what an admin changes.
    fleet: EmulatedFleet | None = None

    def host_commands(self, cmdlet: str) -> list[str]:
        """The hosts that received `cmdlet`, in order (needs `emulated=True`)."""
        assert self.emulator_log is not None, "running_bot(..., emulated=True)"
        return [
            e.host for e in self.emulator_log.entries if e.cmdlet.casefold() == cmdlet.casefold()
        ]


@contextmanager
def running_bot(
    workdir: Path,
    usergroups: list[dict[str, Any]] | None = None,
    *,
    policy_text: str | None = None,
    emulated: bool = False,
    team_ids: tuple[str, ...] | None = None,
    jobs: dict[str, Any] | None = None,
    sweep: dict[str, Any] | None = None,
    database_url: str | None = None,
) -> Iterator[RunningBot]:
    """The bot in HTTP mode (waitress, ephemeral port) on a demo context whose
    notifier and Bolt app both talk to the fake Web API; jobs run in threads
    with the clock at 600x so simulated host work finishes in a blink.

    `usergroups` is what the fake `usergroups.list` answers; `policy_text`, a
    policy file (written to `workdir`) merged over the shipped default, as a
    deployment's `policy:` is. `emulated`: the hosts are the WinRM emulator
    (`RunningBot.emulator_log`). `team_ids`: the workspace(s) configured as
    `slack.team_ids` (default: none, so demo mode takes auth.test's T0TEST).
    `jobs`: settings of `jobs:` to change (`queue: redis` uses that queue
    instead of Huey's in-memory one). `sweep`: settings of `sweep:` to
    change, before anything ticks. `database_url`: a migrated database
    (default: SQLite in `workdir`)."""
    settings = settings_for(workdir, database_url)
    if policy_text is not None:
        policy_file = workdir / "policy.yaml"
        policy_file.write_text(policy_text, encoding="utf-8")
        settings = replace(settings, policy_files=(policy_file,))
    if team_ids is not None:
        settings = replace(settings, slack=replace_model(settings.slack, team_ids=team_ids))
    # At 600x, the shipped 30-minute create and restore deadlines are 3 s of
    # real time: a loaded CI machine (four test workers on two cores) ran a
    # wave's jobs past them. Two hours here (12 s), as a merge has; a test
    # of deadlines passes its own in `jobs`.
    roomy = {"create_deadline": "2h", "restore_deadline": "2h"}
    settings = replace(settings, jobs=replace_model(settings.jobs, **{**roomy, **(jobs or {})}))
    if sweep is not None:
        settings = replace(settings, sweep=replace_model(settings.sweep, **sweep))
    clock = ScaledClock(600, start=T0)
    with contextlib.ExitStack() as stack:
        env: dict[str, str] = {}
        log = None
        fleet: EmulatedFleet | None = None
        if emulated:
            log = EmulatorLog()
            inventory = load_inventory(demo_inventory_path())
            fleet = EmulatedFleet.start(
                InMemoryHostStateStore(),
                model=load_host_model(demo_hosts_path()),
                users={EMULATOR_USER: EMULATOR_PASSWORD},
                log=log,
                clock=clock,
            )
            stack.callback(fleet.stop)
            pointed = workdir / "emulated-inventory.yaml"
            ports = {name: server.port for name, server in fleet.servers.items()}
            pointed.write_text(
                emulated_inventory(inventory, ports, EMULATOR_USER, EMULATOR_PASSWORD_ENV),
                encoding="utf-8",
            )
            settings = replace(
                settings,
                inventory_path=pointed,
                hyperv=HyperVConfig(backend="winrm", call_timeout=timedelta(seconds=60)),
            )
            env[EMULATOR_PASSWORD_ENV] = EMULATOR_PASSWORD
        api = stack.enter_context(FakeSlackApi(usergroups))
        yield from _serve(settings, api, clock, env, log, fleet)


def replace_model(model: Any, **changes: Any) -> Any:
    """A frozen pydantic model with `changes` (validated again)."""
    return type(model).model_validate({**model.model_dump(), **changes})


def _serve(
    settings: Settings,
    api: FakeSlackApi,
    clock: ScaledClock,
    env: dict[str, str],
    log: EmulatorLog | None,
    fleet: EmulatedFleet | None = None,
) -> Iterator[RunningBot]:
    env = {**env, "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_API_URL": api.api_url}
    kind: Literal["redis", "memory"] = "redis" if settings.jobs.queue == "redis" else "memory"
    ctx = build_context(settings, env=env, clock=clock, huey_kind=kind)
    # Slack's real pace (1 post/s per channel) would make every test wait
    # on the thread's replies; the fake API has no rate limit.
    if isinstance(ctx.notifier, ThreadNotifier):
        ctx.notifier.pacer = ChannelPacer(rate=1000.0, burst=1000)
    consumer = ctx.start_workers()
    try:
        app = build_bolt_app(
            ctx,
            bot_token=BOT_TOKEN,
            signing_secret=SIGNING_SECRET,
            api_url=api.api_url,
            renderer=SlackRenderer(Renderer()),
        )
        wsgi = SlackWsgi(
            app,
            database_ok=lambda: database_answers(ctx.engine),
            consumer_ok=lambda: consumer_running(consumer),
            signing_secret=SIGNING_SECRET,
        )
        server = HttpServer(wsgi, "127.0.0.1", 0).start()
        try:
            yield RunningBot(api, server, ctx, SlackSender(server.url, api), log, fleet)
        finally:
            server.stop()
    finally:
        ctx.close()
