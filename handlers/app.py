"""The Bolt app: one WebClient with slack_sdk's retry handlers, the retry-
dropping middleware, and the listeners, each a few lines that hand over to
`handlers.commands` or `handlers.actions`.

Listeners are acknowledged before any work (Bolt answers the HTTP request
or the Socket Mode envelope as soon as `ack()` is called, and runs the rest
of the listener in its thread pool), so Slack's three seconds are spent on
nothing but the ack.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_sdk import WebClient

from bot.context import AppContext
from bot.observe.logs import ContextThreadPool
from bot.observe.slack_api import make_web_client
from bot.service import delivery_keys, lookups, with_slack
from handlers import sweep_actions
from handlers.actions import Actions
from handlers.commands import Commands
from handlers.delivery import DropRetries
from handlers.deps import SlackDeps
from handlers.home_refresh import HomeRefresher
from handlers.observe import ObservedApp
from handlers.shape import CheckShape
from handlers.waves import Waves
from handlers.workspace import BindWorkspace, UserHomes, workspace_from
from templates.blocks import SlackRenderer

SLASH_COMMAND = "/checkpoint"
CHANGE_BUTTONS = re.compile(
    r"^checkpoint:(approve|reject|withdraw|rollback|merge|extend|start|unschedule"
    r"|resolve_(active|failed|rolled_back|merged))$"
)
# Bolt runs each listener in this pool and answers Slack when the listener
# acks; its default of 5 threads makes acks queue behind slow work (a host
# query, a post) under a burst of commands.
LISTENER_THREADS = 32
# Work after the ack (service calls, rendering, answers); see SlackDeps.work.
WORK_THREADS = 4
# The create modal's VM select becomes an external_select beyond 100 VMs.
MAX_VM_OPTIONS = 100


class _TokenAlreadyGiven(logging.Filter):
    """Drops Bolt's "As you gave `client` as well, `token` will be unused":
    given no `token`, Bolt's App reads $SLACK_BOT_TOKEN from the process
    environment by itself, and warns on every start that the client (which
    already holds that token) wins. Nothing is wrong, yet it paged on-call.
    Only that message, on Bolt's own logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


def _quiet_token_warning() -> None:
    bolt = logging.getLogger("slack_bolt.App")
    if not any(isinstance(f, _TokenAlreadyGiven) for f in bolt.filters):
        bolt.addFilter(_TokenAlreadyGiven())


def build_bolt_app(
    ctx: AppContext,
    *,
    bot_token: str,
    signing_secret: str,
    api_url: str | None,
    renderer: SlackRenderer,
    token_verification: bool = True,
) -> App:
    client = make_web_client(bot_token, api_url, ctx.metrics)
    _quiet_token_warning()
    app = ObservedApp(
        metrics=ctx.metrics,
        name="checkpoint-bot",
        client=client,
        signing_secret=signing_secret,
        token_verification_enabled=token_verification,
        # Listeners run in the request's log context (handlers/observe.py).
        listener_executor=ContextThreadPool(LISTENER_THREADS, thread_name_prefix="bolt"),
    )
    workspace = workspace_from(
        ctx.settings.slack, demo=ctx.settings.demo, auth_test=lambda: _auth_test(client)
    )
    # The first check here and every re-check (approvals, jobs) ask alike.
    ctx.decider.directory = with_slack(ctx.decider.directory, client)
    work = ContextThreadPool(WORK_THREADS, thread_name_prefix="slack-work")
    # Work still queued when the process stops is done before the notifier
    # and the database close: a command already acked is recorded (Slack was
    # told it was taken), and no App Home round runs against a closed client.
    ctx.at_close(lambda: work.shutdown(wait=True))
    deps = SlackDeps(
        ctx=ctx,
        renderer=renderer,
        groups=ctx.decider.directory,
        homes=UserHomes(client),
        work=work,
        workspace=workspace,
    )
    register(app, deps)
    return app


def _auth_test(client: WebClient) -> dict[str, Any]:
    data = client.auth_test().data
    return data if isinstance(data, dict) else {}


def register(app: App, deps: SlackDeps) -> None:
    """Attach the middleware and every listener to `app`."""
    # First: a payload not shaped as Slack's reaches nothing that reads it.
    app.use(CheckShape())
    # Then: a request from another workspace goes no further.
    app.use(
        BindWorkspace(
            deps.workspace,
            refused_view=lambda text: deps.view(
                "notice_modal", title="checkpoint-bot", message=text
            ),
            refused_message=deps.error,
        )
    )
    app.use(DropRetries(durable=delivery_keys(deps.ctx)))
    commands, actions = Commands(deps), Actions(deps)
    # Every Home a change concerns follows it (handlers/home_refresh.py).
    refresher = HomeRefresher(deps, app.client, actions.republish_home)
    actions.home_viewers = refresher.opened
    deps.ctx.notifier.listen(refresher.changed)
    # ...and so does every Home a worker process left behind (it has no app).
    deps.ctx.tick_here(refresher)

    @app.command(SLASH_COMMAND)
    def on_command(ack: Ack, command: dict[str, Any], respond: Respond, client: WebClient) -> None:
        commands(ack, command, respond, client)

    @app.action(CHANGE_BUTTONS)
    def on_button(ack: Ack, body: dict[str, Any], respond: Respond, client: WebClient) -> None:
        actions.button(ack, body, respond, client)

    waves = Waves(deps)

    @app.action(re.compile(r"^checkpoint:wave_(take|cancel|rollback|merge|approve|withdraw|show)$"))
    def on_wave_button(ack: Ack, body: dict[str, Any], respond: Respond, client: WebClient) -> None:
        waves.button(ack, body, respond, client)

    @app.action("checkpoint:open_create")
    def on_open_create(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        actions.open_create(ack, body, client)

    @app.options("vm")
    def on_vm_options(ack: Ack, payload: dict[str, Any]) -> None:
        names = lookups.vm_names(deps.ctx, str(payload.get("value") or ""))
        ack(
            options=[
                {"text": {"type": "plain_text", "text": n[:75]}, "value": n[:150]}
                for n in names[:MAX_VM_OPTIONS]
            ]
        )

    @app.view("checkpoint:create")
    def on_create(ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        actions.submit_create(ack, body, view, client)

    @app.view("checkpoint:reject")
    def on_reject(ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        actions.submit_reject(ack, body, view, client)

    @app.view("checkpoint:extend")
    def on_extend(ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        actions.submit_extend(ack, body, view, client)

    @app.event("app_home_opened")
    def on_home(event: dict[str, Any], body: dict[str, Any], client: WebClient) -> None:
        actions.home_opened(event, body, client)

    sweep_actions.register(app, deps)
