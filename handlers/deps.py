"""What every Slack listener shares: the context, the renderer, the user-group
cache, and small helpers that turn results into validated payloads."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from slack_bolt import Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError

from bot.context import AppContext
from bot.service import (
    AtTime,
    Directory,
    Forbidden,
    Principal,
    ServiceError,
    parse_at,
    zone_of,
)
from handlers import messages
from handlers.workspace import UserHomes, Workspace
from templates.blocks import SlackRenderer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SlackDeps:
    ctx: AppContext
    renderer: SlackRenderer
    # Slack user groups: the same lookup as every later re-check's.
    groups: Directory
    # The work after an ack runs here, not in Bolt's listener threads: a few
    # threads doing CPU work (rendering, policy) leave the GIL to the threads
    # that are acking, so a burst of commands does not slow the acks down.
    work: Executor
    # Who the bot serves; BindWorkspace refuses everyone else before a listener runs.
    workspace: Workspace
    # Each user's own team, for requests that do not say it (slash commands).
    homes: UserHomes

    def later(self, what: str, fn: Callable[..., None], *args: Any) -> None:
        def run() -> None:
            try:
                fn(*args)
            except Exception:
                log.exception(messages.log_unexpected(what))

        try:
            self.work.submit(run)
        except RuntimeError:  # the pool was shut down: the process is stopping
            log.info("%s skipped: the process is stopping", what)

    @property
    def demo(self) -> bool:
        """Every message carries the footer: demo mode, or simulated hosts."""
        return self.ctx.settings.labelled_simulated

    def principal(
        self, user_id: str, channel: str | None, team: str | None, *, verify_home: bool = False
    ) -> Principal:
        """(workspace, user): the middleware already refused other teams; this
        is the second lock on the same door, so a listener reached some other
        way still cannot act for a stranger whose user id equals ours.
        `verify_home`: the request did not say the user's own team (a slash
        command), so ask Slack; an external member of a shared channel, or a
        user Slack cannot tell us about, is refused."""
        self.admit(user_id, team, verify_home=verify_home)
        assert team is not None
        return Principal(user_id, self.groups.groups_of(user_id, team), channel, team=team)

    def admit(self, user_id: str, team: str | None, *, verify_home: bool = False) -> None:
        """The door of `principal`, without asking for the person's groups:
        Forbidden for anyone not of our workspace."""
        if team is None or team not in self.workspace.team_ids:
            raise Forbidden(messages.foreign_workspace())
        if verify_home and not self.homes.belongs(self.workspace, user_id):
            log.warning(
                messages.log_foreign_request("request", team, user_id, "not a member of ours")
            )
            raise Forbidden(messages.foreign_user())

    def payload(self, name: str, **values: Any) -> dict[str, Any]:
        """A message; every one carries the demo footer in demo mode."""
        return self.renderer.payload(name, demo=self.demo, **values)

    def view(self, name: str, **values: Any) -> dict[str, Any]:
        return self.renderer.view(name, demo=self.demo, **values)

    def at_of(self, user_id: str, text: str) -> AtTime:
        """`--at` as `user_id` meant it: read in their Slack time zone (their
        profile's `tz`, from users.info), else in `defaults.timezone` (a zone
        typed after the time wins over both)."""
        zone = zone_of(self.homes.tz_of(user_id))
        if zone is None:
            configured = ZoneInfo(self.ctx.settings.defaults.timezone)
            return parse_at(text, configured, source="configured")
        return parse_at(text, zone, source="slack")

    def notice(self, title: str, *lines: str, hint: str | None = None) -> dict[str, Any]:
        """A short answer (`notice_ephemeral`): a title in plain words, lines
        of mrkdwn the caller escaped, and an optional hint (mrkdwn)."""
        return self.payload("notice_ephemeral", title=title, lines=list(lines), hint=hint)

    def error(
        self,
        message: str,
        hint: str | None = None,
        *,
        escaped: bool = False,
        mentions: bool = False,
    ) -> dict[str, Any]:
        """`hint`: mrkdwn the caller built (handlers/messages.py escapes what
        it echoes), kept as it is: its mentions and date tokens are the bot's.
        `escaped`: the message is mrkdwn already (grammar errors).
        `mentions`: the message is the bot's words, whose mention tokens
        (`<@U…>`, `<!subteam^S…>`) are kept; nothing a person typed is in it."""
        return self.payload(
            "error_ephemeral", message=message, hint=hint, escaped=escaped, mentions=mentions
        )

    def refusal(self, exc: ServiceError, hint: str | None = None) -> dict[str, Any]:
        """A service error for whoever caused it. The errors that name people
        in the bot's own words (who may do it, whose groups, who asked for
        the rollback a merge would lose) say so (`names_people`), and only
        their mentions stay; any other message is escaped whole. `hint`:
        mrkdwn, as `error` takes it."""
        return self.error(exc.message, hint, mentions=exc.names_people)

    @property
    def start_after_restore(self) -> bool:
        return self.ctx.settings.defaults.start_after_restore


def answer_click(
    body: Mapping[str, Any], respond: Respond, client: WebClient, payload: Mapping[str, Any]
) -> None:
    """Answer whoever clicked. A click in a message carries a response_url;
    one in the App Home or a modal does not, so the answer goes to the
    clicker's DM with the bot instead of being lost."""
    if body.get("response_url"):
        ephemeral(respond, payload)
        return
    try:
        client.chat_postMessage(
            channel=str(body["user"]["id"]), text=payload["text"], blocks=payload.get("blocks")
        )
    except (SlackClientError, OSError):
        log.warning(messages.log_unexpected("answering a click by DM"), exc_info=True)


def ephemeral(respond: Respond, payload: Mapping[str, Any]) -> None:
    """Answer only the person who asked, leaving the original message alone."""
    try:
        respond(
            text=payload["text"],
            blocks=payload.get("blocks"),
            response_type="ephemeral",
            replace_original=False,
        )
    except ValueError:
        # Bolt's `respond` without a response_url (a click outside a message).
        log.warning(messages.log_unexpected("answering without a response_url"))
    except (SlackClientError, OSError):
        # The response_url is gone (expired, or Slack unreachable); the change
        # itself is recorded and its thread tells the channel.
        log.warning(messages.log_unexpected("answering via response_url"), exc_info=True)
