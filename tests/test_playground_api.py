"""The playground's Slack face without a browser: its Web API answers
slack_sdk's WebClient as Slack does (auth, errors, threads, ephemerals,
views, response_url semantics), and what it sends the app is signed so
that slack_sdk's own verifier accepts it."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier

from bot.devtools.playground import PlaygroundApp, PlaygroundUi, WebApi, Workspace
from bot.devtools.playground.signing import AppLink, signature
from bot.devtools.playground.workspace import TRIGGER_SECONDS, ResponseTarget
from bot.slack_http import HttpServer

TOKEN = "xoxb-test"
SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ws(clock: Clock) -> Workspace:
    return Workspace(monotonic=clock)


@pytest.fixture
def served(ws: Workspace) -> Iterator[str]:
    ui = PlaygroundUi(ws, response_base="")
    # The long poll returns as soon as something changes; 5 s only bounds a failure.
    server = HttpServer(PlaygroundApp(ws, WebApi(ws, TOKEN), ui, poll_seconds=5), "127.0.0.1", 0)
    ui.response_base = f"{server.url}/response_url"
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def client(served: str) -> WebClient:
    return WebClient(token=TOKEN, base_url=f"{served}/api/")


def error_of(call: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as caught:
        call()
    return caught.value


def test_every_call_needs_the_bot_token(served: str) -> None:
    assert WebClient(token=TOKEN, base_url=f"{served}/api/").auth_test()["user_id"] == "U0CHECKBOT"
    wrong = WebClient(token="xoxb-bad", base_url=f"{served}/api/")
    assert error_of(wrong.auth_test).response["error"] == "invalid_auth"
    anonymous = WebClient(base_url=f"{served}/api/")
    assert error_of(anonymous.auth_test).response["error"] == "not_authed"
    unknown = error_of(lambda: WebClient(token=TOKEN, base_url=f"{served}/api/").api_call("x.y"))
    assert unknown.response["error"] == "unknown_method"


def test_malformed_blocks_are_refused_like_slack(client: WebClient, ws: Workspace) -> None:
    too_long = {"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}
    exc = error_of(lambda: client.chat_postMessage(channel="C0OPS", text="t", blocks=[too_long]))
    assert exc.response["error"] == "invalid_blocks"
    messages = exc.response["response_metadata"]["messages"]
    assert messages == [
        "[ERROR] text attribute cannot exceed 150 characters [json-pointer:/blocks/0]"
    ]
    unknown = error_of(
        lambda: client.chat_postMessage(channel="C0OPS", text="t", blocks=[{"type": "nope"}])
    )
    assert "unsupported type: nope" in unknown.response["response_metadata"]["messages"][0]
    many = [SECTION] * 51
    assert error_of(
        lambda: client.chat_postMessage(channel="C0OPS", text="t", blocks=many)
    ).response["error"] == "invalid_blocks"  # fmt: skip
    empty = error_of(lambda: client.api_call("chat.postMessage", json={"channel": "C0OPS"}))
    assert empty.response["error"] == "no_text"
    assert ws.snapshot("U0ALICE")["messages"]["C0OPS"] == []  # nothing refused was posted


def test_threads_updates_and_dms(client: WebClient, ws: Workspace) -> None:
    root = client.chat_postMessage(channel="C0OPS", text="root", blocks=[SECTION])
    reply = client.chat_postMessage(channel="C0OPS", text="step 1", thread_ts=root["ts"])
    assert reply["message"]["thread_ts"] == root["ts"] and float(reply["ts"]) > float(root["ts"])
    client.chat_update(channel="C0OPS", ts=root["ts"], text="root, now active")
    lost = error_of(lambda: client.chat_postMessage(channel="C0OPS", text="x", thread_ts="1.2"))
    assert lost.response["error"] == "thread_not_found"
    missing = error_of(lambda: client.chat_update(channel="C0OPS", ts="1.2", text="x"))
    assert missing.response["error"] == "message_not_found"
    nowhere = error_of(lambda: client.chat_postMessage(channel="C0NOPE", text="x"))
    assert nowhere.response["error"] == "channel_not_found"
    # A user id as channel is the app's DM with that person, seen only by them.
    dm = client.chat_postMessage(channel="U0ALICE", text="your result")
    assert dm["channel"] == "D0ALICE"

    seen = ws.snapshot("U0BOB")["messages"]["C0OPS"]
    assert [(m["text"], m["thread_ts"], m["edited"]) for m in seen] == [
        ("root, now active", None, True),
        ("step 1", root["ts"], False),
    ]
    assert "D0ALICE" not in ws.snapshot("U0BOB")["messages"]
    assert ws.snapshot("U0ALICE")["messages"]["D0ALICE"][0]["text"] == "your result"


def test_ephemeral_messages_are_for_one_person(client: WebClient, ws: Workspace) -> None:
    answer = client.chat_postEphemeral(channel="C0OPS", user="U0ALICE", text="only you")
    assert answer["message_ts"]
    assert [m["text"] for m in ws.snapshot("U0ALICE")["messages"]["C0OPS"]] == ["only you"]
    assert ws.snapshot("U0BOB")["messages"]["C0OPS"] == []
    stranger = error_of(
        lambda: client.chat_postEphemeral(channel="C0OPS", user="U0NOBODY", text="x")
    )
    assert stranger.response["error"] == "user_not_found"


def test_a_trigger_opens_one_modal_within_three_seconds(
    client: WebClient, ws: Workspace, clock: Clock
) -> None:
    modal = {
        "type": "modal",
        "callback_id": "checkpoint:create",
        "title": {"type": "plain_text", "text": "Checkpoint"},
        "blocks": [SECTION],
    }
    trigger = ws.new_trigger("U0ALICE")
    opened = client.views_open(trigger_id=trigger, view=modal)["view"]
    assert ws.snapshot("U0ALICE")["modal"]["id"] == opened["id"]
    assert ws.snapshot("U0BOB")["modal"] is None
    again = error_of(lambda: client.views_open(trigger_id=trigger, view=modal))
    assert again.response["error"] == "exchanged_trigger_id"
    late = ws.new_trigger("U0ALICE")
    clock.now += TRIGGER_SECONDS + 0.1
    assert error_of(lambda: client.views_open(trigger_id=late, view=modal)).response[
        "error"
    ] == "expired_trigger_id"  # fmt: skip
    bad = {**modal, "title": {"type": "plain_text", "text": "x" * 25}}
    refused = error_of(lambda: client.views_open(trigger_id=ws.new_trigger("U0ALICE"), view=bad))
    assert refused.response["error"] == "invalid_arguments"
    updated = client.views_update(view_id=opened["id"], view={**modal, "blocks": [SECTION] * 2})
    assert len(ws.snapshot("U0ALICE")["modal"]["blocks"]) == 2 and updated["view"]["hash"]
    home = {"type": "home", "blocks": [SECTION]}
    client.views_publish(user_id="U0BOB", view=home)
    assert ws.snapshot("U0BOB")["home"]["blocks"] == [SECTION]


def test_directory_methods(client: WebClient) -> None:
    assert client.users_info(user="U0BOB")["user"]["name"] == "bob"
    assert error_of(lambda: client.users_info(user="U0X")).response["error"] == "user_not_found"
    groups = client.usergroups_list(include_users=True)["usergroups"]
    assert [(g["id"], g["users"]) for g in groups] == [("S0APPROVERS", ["U0BOB"])]
    assert "users" not in client.usergroups_list()["usergroups"][0]
    assert client.usergroups_users_list(usergroup="S0APPROVERS")["users"] == ["U0BOB"]
    assert client.conversations_info(channel="C0OPS")["channel"]["name"] == "ops"


def respond(url: str, body: dict[str, Any]) -> tuple[int, str]:
    request = urllib.request.Request(  # noqa: S310 (loopback)
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310 (loopback)
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_response_url_semantics(served: str, client: WebClient, ws: Workspace) -> None:
    source = client.chat_postMessage(channel="C0OPS", text="original")
    key = ws.new_response_target(ResponseTarget("U0ALICE", "C0OPS", source["ts"], None, None))
    url = f"{served}/response_url/{key}"

    def texts(user: str) -> list[tuple[str, bool]]:
        return [(m["text"], m["ephemeral"]) for m in ws.snapshot(user)["messages"]["C0OPS"]]

    assert respond(url, {"text": "just you"}) == (200, "ok")  # ephemeral by default
    assert respond(url, {"text": "everyone", "response_type": "in_channel"}) == (200, "ok")
    assert texts("U0ALICE") == [("original", False), ("just you", True), ("everyone", False)]
    assert texts("U0BOB") == [("original", False), ("everyone", False)]
    assert respond(url, {"text": "replaced", "replace_original": True}) == (200, "ok")
    assert texts("U0BOB")[0] == ("replaced", False)
    bad = {"text": "x", "blocks": [{"type": "nope"}]}
    assert respond(url, bad) == (400, "invalid_blocks")
    assert respond(url, {"delete_original": True}) == (200, "ok")
    assert texts("U0BOB") == [("everyone", False)]
    # Five uses, as Slack allows (the refused one counted too); then it is spent.
    assert respond(url, {"text": "sixth"}) == (404, "used_url")
    assert respond(f"{served}/response_url/R404", {"text": "x"}) == (404, "no_service")


def test_long_poll_wakes_on_change(served: str, client: WebClient) -> None:
    def state(since: int) -> dict[str, Any]:
        url = f"{served}/ui/state?user=U0ALICE&since={since}"
        with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 (loopback)
            loaded: dict[str, Any] = json.loads(answer.read())
            return loaded

    first = state(-1)
    timer = threading.Timer(0.05, lambda: client.chat_postMessage(channel="C0OPS", text="new"))
    timer.start()
    later = state(first["version"])
    timer.join()
    assert later["version"] > first["version"]
    assert [m["text"] for m in later["messages"]["C0OPS"]] == ["new"]


def test_static_files_only_from_the_package(served: str) -> None:
    with urllib.request.urlopen(f"{served}/", timeout=5) as page:  # noqa: S310 (loopback)
        assert b"DEMO MODE" in page.read()
    for path in ("/../pyproject.toml", "/static/../ui.py", "/.hidden.js", "/ui.py"):
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(f"{served}{path}", timeout=5)  # noqa: S310 (loopback)
        assert caught.value.code == 404, path


# --- what the app receives ---------------------------------------------------------


class Recorder(BaseHTTPRequestHandler):
    seen: list[tuple[dict[str, str], bytes]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Recorder.seen.append((dict(self.headers), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def app_url() -> Iterator[str]:
    Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/slack/events"
    finally:
        server.shutdown()
        server.server_close()


def test_signature_is_what_slacks_own_verifier_makes() -> None:
    # Slack's scheme ("Verifying requests from Slack": v0 HMAC-SHA256 of
    # "v0:timestamp:body"), checked against slack_sdk's own implementation.
    secret = "test-signing-secret"
    body = b"team_id=T0TEST&user_id=U0ALICE&command=%2Fcheckpoint&text=list"
    expected = SignatureVerifier(secret).generate_signature(timestamp="1531420618", body=body)
    assert signature(secret, "1531420618", body) == expected
    assert signature(secret, "1531420619", body) != expected


def test_commands_and_clicks_reach_the_app_signed(app_url: str, ws: Workspace) -> None:
    secret = "a-signing-secret"
    ui = PlaygroundUi(ws, response_base="http://127.0.0.1:1/response_url")
    ui.app = AppLink(app_url, secret)
    assert "secret" not in repr(ui.app)
    assert ui.command("U0ALICE", "C0OPS", '/checkpoint create WEB01 --reason "x"')["ok"]
    msg = ws.post("C0OPS", "root", [SECTION])
    button = {"type": "button", "action_id": "checkpoint:approve", "value": "CHG-1:v1"}
    assert ui.action("U0BOB", {"channel": "C0OPS", "ts": msg.ts, "action": button})["ok"]

    verifier = SignatureVerifier(secret)
    (_, command), (_, click) = Recorder.seen
    for headers, body in Recorder.seen:
        assert verifier.is_valid(
            body, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"]
        )
    form = {k: v[0] for k, v in parse_qs(command.decode()).items()}
    assert form["command"] == "/checkpoint" and form["text"] == 'create WEB01 --reason "x"'
    assert form["user_id"] == "U0ALICE" and form["channel_id"] == "C0OPS"
    assert form["response_url"].startswith("http://127.0.0.1:1/response_url/R")
    assert ws.take_trigger(form["trigger_id"]) == "U0ALICE"
    payload = json.loads(parse_qs(click.decode())["payload"][0])
    assert payload["type"] == "block_actions" and payload["user"]["id"] == "U0BOB"
    assert payload["actions"][0]["value"] == "CHG-1:v1"
    assert payload["message"]["ts"] == msg.ts and payload["container"]["channel_id"] == "C0OPS"


def test_a_command_the_app_fails_says_so_like_slack(ws: Workspace) -> None:
    ui = PlaygroundUi(ws, response_base="http://127.0.0.1:1/response_url")
    ui.app = AppLink("http://127.0.0.1:1/slack/events", "s", timeout=1)  # nothing listens
    assert not ui.command("U0ALICE", "C0OPS", "/checkpoint help")["ok"]
    (notice,) = ws.snapshot("U0ALICE")["messages"]["C0OPS"]
    assert notice["user"] == "USLACKBOT" and "dispatch_failed" in notice["text"]
    ui.command("U0ALICE", "C0OPS", "/nope")
    assert "not a valid command" in ws.snapshot("U0ALICE")["messages"]["C0OPS"][-1]["text"]
    assert ws.snapshot("U0BOB")["messages"]["C0OPS"] == []
