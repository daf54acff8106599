"""Local tooling, not the product: what `make demo` and the tests run.

    emulator     a Hyper-V host over real WinRM/PSRP, served from the host model
    hostmodel    what modelled hosts hold, from Microsoft's documented behaviour
    simulator    the real WinRM client on modelled hosts, in process
    playground   a local Slack in the browser (Web API, signed requests, UI)

Their dependencies (psrpcore) come with the `demo` extra, and their state
lives in tables of their own (`hostmodel.table`), never in the bot's schema.
Nothing outside this package imports it except lazily, behind the settings or
CLI commands that ask for it (`hyperv.backend: simulator`, `demo`,
`emulator`), which say what to install when it is missing (`require`).
"""

from __future__ import annotations

import importlib.util

DEMO_EXTRA = "checkpoint-bot[demo]"


class DevtoolsMissing(RuntimeError):
    """The demo tools' dependencies are not installed."""


def require(what: str) -> None:
    """Raise DevtoolsMissing, naming `what` needed them, unless the demo
    extra's dependencies are importable."""
    if importlib.util.find_spec("psrpcore") is None:
        raise DevtoolsMissing(
            f"{what} is part of the demo tools, which are not installed: pip install '{DEMO_EXTRA}'"
        )
