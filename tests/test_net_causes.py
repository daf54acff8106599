"""The socket's own error, found under the HTTP libraries' wrapping
(bot/net_causes.py), and said where it is seen: `serve`'s check of its
Slack token (the WinRM client's: tests/test_winrm_map.py)."""

from __future__ import annotations

import ssl
import urllib.error
from pathlib import Path

import pytest
import requests
import yaml
from hypothesis import given
from hypothesis import strategies as st
from slack_sdk import WebClient

from bot.net_causes import SocketProblem, causes, socket_problem
from tests.cli_support import invoke, one_line_error
from tests.helpers import refused_port
from tests.multiproc_support import DEMO_INVENTORY
from tests.slack_support import FakeSlackApi


def test_requests_and_urllib3_wrapping_is_seen_through() -> None:
    with pytest.raises(requests.exceptions.ConnectionError) as refused:
        requests.get(f"http://127.0.0.1:{refused_port()}/", timeout=5)
    found = socket_problem(refused.value)
    assert found is not None and found[0] is SocketProblem.REFUSED
    assert isinstance(found[1], ConnectionRefusedError)
    with pytest.raises(requests.exceptions.ConnectionError) as unknown:
        requests.get("http://nowhere.invalid/", timeout=5)  # RFC 2606: never resolves
    named = socket_problem(unknown.value)
    assert named is not None and named[0] is SocketProblem.NO_NAME


def test_slack_sdks_urllib_wrapping_is_seen_through() -> None:
    client = WebClient(token="xoxb-test", base_url=f"http://127.0.0.1:{refused_port()}/api/")
    with pytest.raises(urllib.error.URLError) as refused:
        client.auth_test()
    found = socket_problem(refused.value)
    assert found is not None and found[0] is SocketProblem.REFUSED


def test_a_certificate_error_is_tls_before_it_is_an_os_error() -> None:
    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    wrapped = requests.exceptions.SSLError(error)
    found = socket_problem(wrapped)
    assert found is not None and found[0] is SocketProblem.TLS


@given(st.recursive(st.none(), lambda inner: st.tuples(inner, inner), max_leaves=10))
def test_any_chain_is_walked_once_and_ends(shape: object) -> None:
    def build(node: object) -> BaseException:
        if node is None:
            return ValueError("leaf")
        assert isinstance(node, tuple)
        left, right = node
        outer = RuntimeError(build(left))
        outer.__context__ = build(right)
        outer.__cause__ = outer  # a cycle: still walked once
        return outer

    made = build(shape)
    walked = causes(made)
    assert walked[0] is made and len(walked) <= 20
    assert len({id(e) for e in walked}) == len(walked)
    assert socket_problem(made) is None


def test_serve_says_why_it_could_not_check_its_token(tmp_path: Path) -> None:
    env = {
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_SIGNING_SECRET": "s" * 32,
        "SLACK_API_URL": f"http://127.0.0.1:{refused_port()}/api/",
    }
    result = invoke(tmp_path, "serve", "--http", "--port", "0", env=env)
    assert result.returncode == 3
    assert one_line_error(result) == (
        "checkpoint-bot: error: Slack refused or did not answer auth.test: connection refused"
    )
    assert "xoxb-test" not in result.stderr + result.stdout


def test_serve_names_slacks_code_when_slack_refuses_the_bot_token(tmp_path: Path) -> None:
    """Bolt wraps auth.test's refusal in its own error; Slack's code, not
    "bad token", is what tells a revoked token from a mistyped one."""
    with FakeSlackApi() as api:
        api.failing["auth.test"] = "token_revoked"
        env = {
            "SLACK_BOT_TOKEN": "xoxb-test",
            "SLACK_SIGNING_SECRET": "s" * 32,
            "SLACK_API_URL": api.api_url,
        }
        result = invoke(tmp_path, "serve", "--http", "--port", "0", env=env)
    assert result.returncode == 3
    assert one_line_error(result) == (
        "checkpoint-bot: error: Slack refused or did not answer auth.test: token_revoked"
    )
    assert "xoxb-test" not in result.stderr + result.stdout


def test_serve_says_in_one_line_that_slack_refuses_the_app_token(tmp_path: Path) -> None:
    """Seen: a Socket Mode token Slack refused ended `serve` with a
    traceback and "internal error", exit 1. It is one line, exit 3 as for
    the bot token, with what a Socket Mode token must be."""
    with FakeSlackApi() as api:
        api.failing["apps.connections.open"] = "invalid_auth"
        env = {
            "SLACK_BOT_TOKEN": "xoxb-test",
            "SLACK_APP_TOKEN": "xapp-test",
            "SLACK_API_URL": api.api_url,
        }
        result = invoke(tmp_path, "serve", env=env)
        # Asked once: a refused token is not asked again in a loop.
        assert [c.method for c in api.calls].count("apps.connections.open") == 1
    assert result.returncode == 3, result.stderr
    assert one_line_error(result) == (
        "checkpoint-bot: error: Slack refused or did not answer apps.connections.open: "
        "invalid_auth; slack.app_token must be the app-level token (xapp-…) with the "
        "connections:write scope, not the bot token (docs/slack-setup.md)"
    )
    assert "Traceback" not in result.stderr
    assert "xapp-test" not in result.stderr + result.stdout


def test_serve_without_team_ids_says_so_before_it_starts_anything(tmp_path: Path) -> None:
    """Seen: `serve` of a configured deployment with no `slack.team_ids`
    opened the CLI's socket, asked Slack and swept the hosts before it said
    so, and left the socket's file behind."""
    config = tmp_path / "bot.yaml"
    data = {
        "inventory": str(DEMO_INVENTORY),
        "hyperv": {"backend": "simulator"},
        "sweep": {"enabled": False},
    }
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    sockets = tmp_path / "cli.sock"
    with FakeSlackApi() as api:
        env = {
            "SLACK_BOT_TOKEN": "xoxb-test",
            "SLACK_SIGNING_SECRET": "s" * 32,
            "SLACK_API_URL": api.api_url,
            "CHECKPOINT_BOT_SOCKET": str(sockets),
        }
        assert invoke(tmp_path, "-c", str(config), "db", "upgrade", env=env).returncode == 0
        result = invoke(tmp_path, "-c", str(config), "serve", "--http", "--port", "0", env=env)
        assert api.calls == []
    assert result.returncode == 2
    assert one_line_error(result).startswith("checkpoint-bot: error: slack.team_ids is missing")
    assert not sockets.exists()
    assert "answering" not in result.stderr
