"""Logging for `serve` and `worker`: text or JSON lines, with the context of
the work under way (change, job, VM, host, Slack user, request id) bound
once where that work starts and carried by `contextvars`.

Only the message, the bound fields and an exception's traceback reach a
line: never a request body, never a record's `args` dumped whole. Secrets
stay out because nothing that holds one is bound or logged (bot.secrets
keeps them wrapped; Slack errors are logged by code, never by request).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal, ParamSpec, TypeVar

from bot.library_logs import LibraryNoise

LogFormat = Literal["text", "json"]
# The context fields, in the order a line shows them.
FIELDS = ("request_id", "slack_user", "change", "job", "job_kind", "vm", "host")

# Immutable default: bindings replace the mapping, never change it.
_context: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "checkpoint_bot_log_context", default=MappingProxyType({})
)

P = ParamSpec("P")
R = TypeVar("R")


def current() -> Mapping[str, str]:
    """The fields bound in this context."""
    return _context.get()


@contextlib.contextmanager
def bound(**fields: object) -> Iterator[None]:
    """Bind `fields` (those not None) for the work inside the block; the
    outer binding comes back after it."""
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise ValueError(f"cannot bind {sorted(unknown)}, expected some of {FIELDS}")
    merged = {**_context.get(), **{k: str(v) for k, v in fields.items() if v is not None}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


class ContextThreadPool(ThreadPoolExecutor):
    """A thread pool whose tasks run in a copy of the submitter's context,
    so a binding made when a Slack request arrives follows the listener
    into Bolt's pool (a plain pool starts every task in an empty context)."""

    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Future[R]:
        ctx = contextvars.copy_context()

        def in_context() -> R:
            return ctx.run(fn, *args, **kwargs)

        return super().submit(in_context)


class ContextFilter(logging.Filter):
    """Puts the bound fields on every record (as `record.context`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.context = dict(_context.get())
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp (UTC, ISO 8601), level, logger,
    message, the bound fields, and `exception` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = getattr(record, "context", None) or dict(_context.get())
        line.update({k: context[k] for k in FIELDS if k in context})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The classic line, with the bound fields as key=value at its end."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        context = getattr(record, "context", None) or {}
        extra = " ".join(f"{k}={context[k]}" for k in FIELDS if k in context)
        if not extra:
            return text
        first, sep, rest = text.partition("\n")
        return f"{first} [{extra}]{sep}{rest}"


# The product's own loggers: `debug=True` (`-v`) opens these to DEBUG, and
# only these (slack_sdk's DEBUG lines carry request bodies).
OURS = ("bot", "checkpoint_bot", "handlers")


def configure(
    fmt: LogFormat, level: int, *, stream: Any = None, debug: bool = False
) -> logging.Handler:
    """Send the root logger's records to stderr (or `stream`) in `fmt`,
    replacing handlers set before (the CLI's plain default). `debug`: the
    product's own DEBUG lines too, such as the traceback of a database or
    queue outage, which is otherwise said in one line."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    handler.addFilter(LibraryNoise())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in OURS:
        # Reset as well as set: tests configure many times in one process.
        logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.NOTSET)
    # Alembic says "Context impl ..." at INFO on every schema read, and
    # /readyz reads the schema on every probe; at the first read it lists
    # each plugin it sets up (seven lines before a process's first word).
    # pypsrp says "Initialising PowerShell in remote Runspace Pool" and the
    # like at INFO for every pipeline: about 30 lines for one merge, whose
    # job asks the host every half second until the disk is merged. Every
    # host call is counted and timed by cmdlet (bot.observe.hosts) and each
    # job's start and end is logged; pypsrp's warnings still show.
    for name in ("alembic.runtime.migration", "alembic.runtime.plugins", "pypsrp"):
        chatty = logging.getLogger(name)
        if chatty.level == logging.NOTSET:
            chatty.setLevel(logging.WARNING)
    return handler
