"""A bug in the bot during a host call leaves the change interrupted (its
outcome is unknown: the call may have reached the host), and the record a
person reads says so in words, without the exception's class name or its
text, which are for the log (seen: "checkpoint: outcome unknown (KeyError:
'Id'); the host must be checked …" in the change's history and thread).

Demo mode; the simulated host is wrapped so that its checkpoint call hits a
bug after the host took the checkpoint, as a mapping error on its answer
would."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from bot.clock import ScaledClock
from bot.context import build_context
from bot.hyperv import HyperVHost
from bot.service import request_checkpoint, show_change
from tests.helpers import T0, run_inline, settings_for


class _MisreadsItsAnswer:
    """The host as it is, but reading the answer to Checkpoint-VM fails."""

    def __init__(self, host: HyperVHost) -> None:
        self._host = host

    def create_checkpoint(self, vm_id: str, name: str) -> Any:
        self._host.create_checkpoint(vm_id, name)
        raise KeyError("Id")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._host, name)


def test_a_bug_during_the_call_is_said_in_words_and_logged_whole(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ScaledClock(600, start=T0)
    ctx = build_context(settings_for(tmp_path), clock=clock, huey_kind="memory")
    try:
        out = request_checkpoint(ctx, "STG-WEB01", reason="patch", requester="alice")
        assert out.job_id is not None
        ctx.host_for.wrap(lambda _name, host: _MisreadsItsAnswer(host))  # type: ignore[arg-type,return-value]
        with caplog.at_level(logging.ERROR):
            run_inline(ctx.runner, out.job_id)
        change = show_change(ctx, out.change.ref)
    finally:
        ctx.close()
    assert change.state == "interrupted"
    said = change.events[-1].message
    assert said.startswith("checkpoint: outcome unknown (")
    assert "KeyError" not in said and "'Id'" not in said, said
    assert "the bot's log has why" in said
    # The log keeps the whole of it, with the traceback.
    assert any(r.exc_info and r.exc_info[0] is KeyError for r in caplog.records)
