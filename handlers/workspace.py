"""A principal is (workspace, user): requests from any other workspace, or
from another organisation's user in a shared channel, are refused here,
before any listener runs and so before the policy is asked.

Slack user ids are unique only within a workspace (within an Enterprise Grid
organisation on Grid). An app installed in several workspaces, on Grid, or
used from a Slack Connect channel receives correctly signed requests from
people whose ids may equal ours; the signature says the request came from
Slack, not from our workspace. So every request must name a configured team
(`slack.team_ids`), the configured organisation where Grid is used
(`slack.enterprise_id`), and, where Slack says which team the *user* belongs
to (`user.team_id` in interactions, `user_team` in events), that too.

What Slack sends (docs.slack.dev/reference/interaction-payloads, the slash
command payload, the Events API envelope):

    slash command     team_id, enterprise_id, is_enterprise_install, user_id
    block_actions     team{id, enterprise_id}, enterprise{id}, is_enterprise_install,
    view_submission   user{id, team_id}: the user's own team (on Grid the
    block_suggestion  organisation's E… id), view{team_id, app_installed_team_id}
    event_callback    team_id, enterprise_id, is_ext_shared_channel,
                      authorizations[0]{team_id, enterprise_id, is_enterprise_install},
                      event{user, user_team, team, source_team}

Anything missing or not ours fails closed. The refused person is told on
the request's own way back (the ack body, or its response_url), never
through the Web API: our token would deliver a DM to *our* user who has
the same id.

A slash command does not say which team its *user* belongs to, only the
workspace it was typed in; so before a command acts, `UserHomes` asks
`users.info` (cached) for the user's own team, and an external member of a
shared channel is refused there (`SlackDeps.principal(..., verify_home=True)`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from slack_bolt.middleware import Middleware
from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError
from slack_sdk.webhook import WebhookClient

from bot.config import ConfigError, SlackConfig
from handlers import messages

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Workspace:
    """The workspace(s) the bot serves: team ids, and the Grid organisation."""

    team_ids: frozenset[str]
    enterprise_id: str | None = None

    def describe(self) -> str:
        teams = ", ".join(sorted(self.team_ids)) or "no workspace"
        return f"{teams} (organisation {self.enterprise_id})" if self.enterprise_id else teams

    def serves_user_team(self, team: str) -> bool:
        # On Grid, Slack reports the user's organisation (E…) as their team.
        return team in self.team_ids or (
            self.enterprise_id is not None and team == self.enterprise_id
        )


def missing_workspace(slack: SlackConfig, *, demo: bool) -> ConfigError | None:
    """The configuration error of a deployment that names no workspace, so
    that `serve` can say it before it starts anything (None: it names one,
    or demo mode learns it from the token)."""
    if slack.team_ids or demo:
        return None
    return ConfigError(
        "slack.team_ids is missing: name the Slack workspace the bot serves (its team id, "
        "T…, from the workspace's URL or auth.test), and slack.enterprise_id on Enterprise "
        "Grid; requests from any other workspace are refused"
    )


def workspace_from(
    slack: SlackConfig, *, demo: bool, auth_test: Callable[[], Mapping[str, Any]]
) -> Workspace:
    """The configured workspace; in demo mode without one, the bot token's own
    (auth.test), so `serve` with just the tokens works. A configured
    deployment must name it: guessing would be trusting whoever's token it is."""
    if slack.team_ids:
        return Workspace(frozenset(slack.team_ids), slack.enterprise_id)
    missing = missing_workspace(slack, demo=demo)
    if missing is not None:
        raise missing
    answer = auth_test()
    team = answer.get("team_id")
    enterprise = answer.get("enterprise_id") or None
    if not team:
        # Nothing to bind to: every request will be refused, and the log says why.
        log.warning(messages.log_no_workspace())
        return Workspace(frozenset(), enterprise)
    return Workspace(frozenset({str(team)}), str(enterprise) if enterprise else None)


@dataclass(frozen=True)
class Origin:
    """Where a request says it came from."""

    kind: str
    team: str | None
    enterprise: str | None
    enterprise_install: bool
    user: str | None
    # The user's own team, where Slack says (interactions, most events).
    user_team: str | None
    # An event in a channel shared with another organisation.
    ext_shared: bool


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, str) and value else None


def _flag(value: Any) -> bool:
    return value is True or value == "true"


def kind_of(body: Mapping[str, Any]) -> str:
    if "command" in body:
        return "command"
    if body.get("type") == "event_callback":
        event = body.get("event") or {}
        return f"event {event.get('type', '?')}" if isinstance(event, dict) else "event"
    return str(body.get("type") or "request")


def origin_of(body: Mapping[str, Any]) -> Origin:
    """Pure: the payload's own words, no Bolt context (which prefers
    `view.app_installed_team_id` and the like, and may fill gaps)."""
    kind = kind_of(body)
    if kind == "command":
        return Origin(
            kind,
            _text(body.get("team_id")),
            _text(body.get("enterprise_id")),
            _flag(body.get("is_enterprise_install")),
            _text(body.get("user_id")),
            None,
            False,
        )
    if body.get("type") == "event_callback":
        event = body.get("event") if isinstance(body.get("event"), dict) else {}
        assert isinstance(event, dict)
        auth = (body.get("authorizations") or [{}])[0]
        auth = auth if isinstance(auth, dict) else {}
        user = event.get("user")
        user_id = _text(user.get("id")) if isinstance(user, dict) else _text(user)
        return Origin(
            kind,
            _text(body.get("team_id")),
            _text(body.get("enterprise_id")) or _text(auth.get("enterprise_id")),
            _flag(auth.get("is_enterprise_install")) or _flag(body.get("is_enterprise_install")),
            user_id,
            _text(event.get("user_team")) or _text(event.get("source_team")),
            _flag(body.get("is_ext_shared_channel")),
        )
    team = body.get("team") if isinstance(body.get("team"), dict) else {}
    user = body.get("user") if isinstance(body.get("user"), dict) else {}
    enterprise = body.get("enterprise") if isinstance(body.get("enterprise"), dict) else {}
    assert isinstance(team, dict) and isinstance(user, dict) and isinstance(enterprise, dict)
    return Origin(
        kind,
        _text(team.get("id")),
        _text(enterprise.get("id")) or _text(team.get("enterprise_id")),
        _flag(body.get("is_enterprise_install")),
        _text(user.get("id")),
        _text(user.get("team_id")),
        False,
    )


def refusal(ws: Workspace, origin: Origin) -> str | None:
    """Why the request must be refused (for the log), or None. Unknown fails closed."""
    if not ws.team_ids:
        return "no workspace is configured, so no request can be trusted"
    if origin.team is None:
        return "the request does not say which workspace it came from"
    if origin.team not in ws.team_ids:
        return f"it came from workspace {origin.team}; this bot serves {ws.describe()}"
    if origin.enterprise != ws.enterprise_id:
        if ws.enterprise_id is None:
            return f"it came from Grid organisation {origin.enterprise}, and none is configured"
        if origin.enterprise is None:
            return f"it does not say it came from organisation {ws.enterprise_id}"
        return f"it came from organisation {origin.enterprise}, not {ws.enterprise_id}"
    if origin.enterprise_install and ws.enterprise_id is None:
        return "it comes from an organisation-wide install, and no organisation is configured"
    if origin.user_team is not None and not ws.serves_user_team(origin.user_team):
        return (
            f"user {origin.user} is of {origin.user_team}: an external member of a shared channel"
        )
    if origin.ext_shared and origin.user is not None and origin.user_team is None:
        return "an event in a shared channel that does not say which organisation its user is in"
    return None


def request_team(body: Mapping[str, Any]) -> str | None:
    """The workspace a request came from: the team of the principal acting."""
    return origin_of(body).team


class BindWorkspace(Middleware):
    """Refuse, tell and log any request that is not from our workspace."""

    def __init__(
        self,
        workspace: Workspace,
        *,
        refused_view: Callable[[str], dict[str, Any]],
        refused_message: Callable[[str], dict[str, Any]],
        tell: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        self.workspace = workspace
        self.refused_view = refused_view
        self.refused_message = refused_message
        # Posting to a response_url happens after the ack (in a thread).
        self.tell = tell or _in_thread

    def process(
        self,
        *,
        req: BoltRequest,
        resp: BoltResponse,
        next: Callable[[], BoltResponse],  # Bolt passes it by this name
    ) -> BoltResponse | None:
        body = req.body or {}
        if body.get("type") in ("url_verification", "ssl_check"):
            return next()
        origin = origin_of(body)
        why = refusal(self.workspace, origin)
        if why is None:
            return next()
        log.warning(messages.log_foreign_request(origin.kind, origin.team, origin.user, why))
        external = origin.team in self.workspace.team_ids
        text = messages.foreign_user() if external else messages.foreign_workspace()
        if origin.kind == "command":
            # Slack shows a slash command's ack body to whoever typed it.
            answer = {"response_type": "ephemeral", "text": text}
            return _json_response(answer)
        if origin.kind == "view_submission":
            return _json_response({"response_action": "update", "view": self.refused_view(text)})
        if origin.kind == "block_suggestion":
            return _json_response({"options": []})
        url = _text(body.get("response_url"))
        if url is not None:
            message = self.refused_message(text)
            self.tell(lambda: _respond(url, message))
        return BoltResponse(status=200, body="")


def _json_response(data: dict[str, Any]) -> BoltResponse:
    return BoltResponse(
        status=200,
        body=json.dumps(data),
        headers={"content-type": "application/json;charset=utf-8"},
    )


def _respond(url: str, message: dict[str, Any]) -> None:
    try:
        WebhookClient(url, timeout=10).send(
            text=message["text"],
            blocks=message.get("blocks"),
            response_type="ephemeral",
            replace_original=False,
        )
    except Exception:
        log.warning(messages.log_unexpected("telling a refused request why"), exc_info=True)


def _in_thread(work: Callable[[], None]) -> None:
    threading.Thread(target=work, name="workspace-refusal", daemon=True).start()


class UserHomes:
    """The team each user belongs to, from `users.info`, cached for `ttl`
    seconds: for requests that do not say it (slash commands). A lookup that
    fails answers None, and the caller refuses: unknown fails closed. The
    same answer carries the user's time zone (`tz`, an IANA name:
    https://api.slack.com/types/user), which `--at` reads times in."""

    def __init__(
        self,
        client: WebClient,
        ttl: float = 600.0,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client, self.ttl = client, ttl
        self._monotonic = monotonic
        self._known: dict[str, tuple[float, tuple[str | None, str | None], str | None]] = {}
        self._lock = threading.Lock()

    def of(self, user_id: str) -> tuple[str | None, str | None]:
        """(the user's team, their Grid organisation), either None if unknown."""
        return self._info(user_id)[0]

    def tz_of(self, user_id: str) -> str | None:
        """The user's time zone as their Slack profile says (e.g.
        "Europe/Berlin"); None when Slack could not say."""
        return self._info(user_id)[1]

    def _info(self, user_id: str) -> tuple[tuple[str | None, str | None], str | None]:
        now = self._monotonic()
        with self._lock:
            cached = self._known.get(user_id)
            if cached is not None and now - cached[0] < self.ttl:
                return cached[1], cached[2]
        found, tz = self._fetch(user_id)
        if found[0] is not None:
            with self._lock:
                self._known[user_id] = (now, found, tz)
        return found, tz

    def _fetch(self, user_id: str) -> tuple[tuple[str | None, str | None], str | None]:
        try:
            answer = self.client.users_info(user=user_id)
        except (SlackClientError, OSError) as exc:
            log.warning(messages.log_user_lookup_failed(type(exc).__name__))
            return (None, None), None
        user = answer.get("user") or {}
        grid = user.get("enterprise_user") or {}
        found = (_text(user.get("team_id")), _text(grid.get("enterprise_id")))
        return found, _text(user.get("tz"))

    def belongs(self, ws: Workspace, user_id: str) -> bool:
        team, org = self.of(user_id)
        if team is None:
            return False
        return ws.serves_user_team(team) or (org is not None and org == ws.enterprise_id)
