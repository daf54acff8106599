"""The local Slack playground (`checkpoint-bot demo`): a Slack Web API and a
browser UI on loopback that drive the real bot with signed requests.

    workspace.py   people, channels, threads, ephemerals, modals, App Home (in memory)
    blockcheck.py  what Slack would reject in blocks and views (`invalid_blocks`)
    webapi.py      the Web API methods the bot calls, and response_urls
    signing.py     slash commands, interactions and events, signed like Slack's
    ui.py          the browser's actions turned into those requests
    server.py      one WSGI app serving both faces and the static UI (static/)
    demo.py        the emulated hosts, the bot and the playground, started together
"""

from bot.devtools.playground.blockcheck import message_errors, view_errors
from bot.devtools.playground.demo import Demo, DemoOptions, start_demo
from bot.devtools.playground.server import PlaygroundApp
from bot.devtools.playground.signing import AppLink, signature
from bot.devtools.playground.ui import PlaygroundUi
from bot.devtools.playground.webapi import WebApi
from bot.devtools.playground.workspace import DEMO_USERS, DemoUser, SlackError, Workspace

__all__ = [
    "DEMO_USERS",
    "AppLink",
    "Demo",
    "DemoOptions",
    "DemoUser",
    "PlaygroundApp",
    "PlaygroundUi",
    "SlackError",
    "WebApi",
    "Workspace",
    "message_errors",
    "signature",
    "start_demo",
    "view_errors",
]
