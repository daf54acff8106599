"""Issue #16, items 5-7, piece by piece: log lines and their bound context,
the readiness checks, the measured host / decider / Web API client wired
by `build_context`, the database gauges, and the shipped Grafana dashboard
and Prometheus alert rules checked against the metrics that exist."""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine

from bot.clock import ScaledClock
from bot.context import AppContext, build_context
from bot.hyperv import VMNotFound
from bot.jobs import make_huey
from bot.observe import Metrics, Readiness, bound, database_check, queue_check
from bot.observe.gauges import CheckpointRow, DatabaseGauges, totals_by_group
from bot.observe.logs import (
    ContextFilter,
    ContextThreadPool,
    JsonFormatter,
    TextFormatter,
    configure,
)
from bot.observe.slack_api import make_web_client
from bot.service import Principal
from bot.store import migrate
from bot.store.db import make_engine, session_scope
from bot.store.models import Change, CheckpointSize, Job
from handlers.grammar import COMMANDS
from handlers.observe import classify, command_kind
from policies import Action
from tests.helpers import T0, settings_for

REPO = Path(__file__).resolve().parent.parent
DASHBOARD = REPO / "deploy" / "grafana" / "checkpoint-bot.json"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yaml"
OPERATIONS = REPO / "docs" / "operations.md"


# --- logs ------------------------------------------------------------------------------------


def json_logger(name: str) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, out


def lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_json_line_carries_the_bound_context_and_only_it() -> None:
    logger, out = json_logger("test.observe.json")
    with bound(change="CHG-0042", job=7, vm="VMID"), bound(host="HV01", job_kind="create"):
        logger.info("job %s started", 7)
    logger.info("outside")
    inside, outside = lines(out)
    assert inside["message"] == "job 7 started"
    assert inside["level"] == "INFO" and inside["logger"] == "test.observe.json"
    assert datetime.fromisoformat(inside["timestamp"]).tzinfo is not None
    assert {k: inside[k] for k in ("change", "job", "vm", "host", "job_kind")} == {
        "change": "CHG-0042",
        "job": "7",
        "vm": "VMID",
        "host": "HV01",
        "job_kind": "create",
    }
    assert set(outside) == {"timestamp", "level", "logger", "message"}


def test_a_binding_ends_with_its_block_even_on_error() -> None:
    logger, out = json_logger("test.observe.nested")
    with bound(request_id="r1"):
        with pytest.raises(RuntimeError), bound(slack_user="U0ALICE"):
            raise RuntimeError("boom")
        logger.error("after", exc_info=RuntimeError("x"))
    (line,) = lines(out)
    assert line["request_id"] == "r1" and "slack_user" not in line
    assert "RuntimeError" in line["exception"]


def test_only_the_known_fields_may_be_bound() -> None:
    with pytest.raises(ValueError, match="cannot bind"), bound(body="a request body"):
        pass


def test_the_text_format_appends_the_context() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    with bound(change="CHG-0001"):
        ContextFilter().filter(record)
    assert TextFormatter().format(record).endswith("x: hello [change=CHG-0001]")


def test_the_binding_follows_work_into_a_context_pool_and_not_a_plain_one() -> None:
    def seen() -> str | None:
        from bot.observe.logs import current

        return current().get("request_id")

    with ContextThreadPool(2) as ours, ThreadPoolExecutor(2) as plain, bound(request_id="abc"):
        assert ours.submit(seen).result() == "abc"
        assert plain.submit(seen).result() is None


# --- Slack request kinds: bounded labels -------------------------------------------------------


KINDS = {c.name for c in COMMANDS} | {"help", "other"}


@given(st.text())
def test_a_command_kind_is_a_command_name_never_user_text(text: str) -> None:
    assert command_kind(text) in KINDS


@given(st.text(max_size=80))
def test_an_action_label_is_ours_or_other(action_id: str) -> None:
    rtype, kind = classify({"type": "block_actions", "actions": [{"action_id": action_id}]})
    assert rtype == "block_actions"
    assert kind == "other" or re.fullmatch(r"[a-z][a-z0-9_:.-]{0,63}", kind)


def test_request_kinds() -> None:
    assert classify({"command": "/checkpoint", "text": "snapshot WEB01"}) == ("command", "create")
    assert classify({"command": "/checkpoint", "text": ""}) == ("command", "help")
    view = {"type": "view_submission", "view": {"callback_id": "checkpoint:create"}}
    assert classify(view) == ("view_submission", "checkpoint:create")
    assert classify({"type": "event_callback", "event": {"type": "app_home_opened"}}) == (
        "event",
        "app_home_opened",
    )


# --- readiness checks ------------------------------------------------------------------------


def test_the_database_check_names_an_old_schema_and_passes_at_head(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'bot.db'}")
    try:
        check = database_check(engine, migrate.head_revision)
        head = migrate.head_revision()
        assert check() == f"schema none, expected {head}: run 'checkpoint-bot db upgrade'"
        migrate.upgrade(engine)
        assert check() is None
    finally:
        engine.dispose()


def test_a_dead_database_is_logged_with_its_reason_and_probed_as_its_kind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The on-call engineer reads why in the log; the probe, which anyone
    who reaches the port can read, says only what kind of failure."""
    engine = make_engine("postgresql://app:s3cret@127.0.0.1:1/checkpoint")
    try:
        with caplog.at_level(logging.WARNING, logger="bot.observe.health"):
            said = database_check(engine, migrate.head_revision)()
    finally:
        engine.dispose()
    assert said == "unreachable: OperationalError"
    (logged,) = [r.getMessage() for r in caplog.records]
    assert logged.startswith("readiness: the database does not answer: connection failed:")
    assert "Connection refused" in logged and "s3cret" not in logged


def test_a_process_log_starts_with_its_own_words_not_alembic_plugins(tmp_path: Path) -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    configure("text", logging.INFO, stream=stream)
    try:
        engine = make_engine(f"sqlite:///{tmp_path / 'bot.db'}")
        migrate.upgrade(engine)
        migrate.current_revision(engine)
        engine.dispose()
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    assert "alembic.runtime" not in stream.getvalue()


def test_pypsrp_says_nothing_at_info_in_a_process_log_but_its_warnings_show() -> None:
    """A real runspace pool and pipeline against the emulator: pypsrp's
    "Initialising PowerShell in remote Runspace Pool" (INFO, every pipeline)
    stays out of a service's log; what it warns of does not."""
    from tests.emulator_support import pool, run, start_fleet

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    configure("text", logging.INFO, stream=stream)
    fleet = start_fleet(["HV01"])
    try:
        with pool(fleet.port_of("HV01")) as rp:
            run(rp, lambda ps: ps.add_cmdlet("Get-VM"))
        logging.getLogger("pypsrp.wsman").warning("a pypsrp warning")
    finally:
        fleet.stop()
        root.handlers[:] = handlers
        root.setLevel(level)
    logged = stream.getvalue()
    assert "Initialising" not in logged and "INFO pypsrp" not in logged
    assert "WARNING pypsrp.wsman: a pypsrp warning" in logged


def test_the_queue_check_names_redis_unreachable(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    huey = make_huey("redis", redis_url=f"redis://127.0.0.1:{port}/0", name="cb-obs-down")
    readiness = Readiness().add("job queue", queue_check(huey))
    with caplog.at_level(logging.WARNING, logger="bot.observe.health"):
        assert readiness.problems() == ["job queue (unreachable: ConnectionError)"]
    # The log says why (redis-py's words), for whoever is on call.
    (logged,) = [r.getMessage() for r in caplog.records]
    assert logged.startswith("readiness: the job queue does not answer: ")
    assert f"127.0.0.1:{port}" in logged and "refused" in logged


def test_a_check_that_raises_is_a_failing_check() -> None:
    def broken() -> str | None:
        raise KeyError("x")

    assert Readiness().add("broken", broken).problems() == ["broken (KeyError)"]


# --- what build_context measures -------------------------------------------------------------


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[AppContext]:
    context = build_context(
        settings_for(tmp_path), clock=ScaledClock(600, start=T0), huey_kind="memory"
    )
    try:
        yield context
    finally:
        context.close()


def scrape(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    body, _ = metrics.exposition()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def test_host_calls_are_counted_and_timed_and_errors_categorised(ctx: AppContext) -> None:
    host = ctx.host_for("HV01")
    vms = host.list_vms()
    with pytest.raises(VMNotFound):
        host.get_vm("00000000-0000-0000-0000-000000000000")
    found = scrape(ctx.metrics)
    calls = "checkpoint_bot_host_calls_total"
    assert (
        found[(calls, frozenset({("cmdlet", "Get-VM"), ("host", "HV01"), ("outcome", "ok")}))] == 1
    )
    assert (
        found[(calls, frozenset({("cmdlet", "Get-VM"), ("host", "HV01"), ("outcome", "error")}))]
        == 1
    )
    errors = (
        "checkpoint_bot_host_errors_total",
        frozenset({("cmdlet", "Get-VM"), ("host", "HV01"), ("category", "not_found")}),
    )
    assert found[errors] == 1
    count = (
        "checkpoint_bot_host_call_seconds_count",
        frozenset({("cmdlet", "Get-VM"), ("host", "HV01")}),
    )
    assert found[count] == 2
    assert vms  # the wrapper hands back what the host said


def test_decisions_are_counted_by_verdict_and_rule(ctx: AppContext) -> None:
    dc = next(vm for vm in ctx.inventory.vms if vm.name == "CORP-DC01")
    decision = ctx.decider.decide(dc, Action.CREATE, Principal("U0ALICE"))
    found = scrape(ctx.metrics)
    verdict = decision.verdict.value
    key = (
        "checkpoint_bot_policy_decisions_total",
        frozenset({("action", "create"), ("verdict", verdict)}),
    )
    assert found[key] == 1
    for fired in decision.fired:
        assert fired.effect is not None
        rule = (
            "checkpoint_bot_policy_rules_fired_total",
            frozenset({("rule", fired.rule), ("verdict", fired.effect.value)}),
        )
        assert found[rule] >= 1
    assert decision.fired, "DC01 is a domain controller: some rule fires"


def test_two_contexts_never_share_a_registry(tmp_path: Path, ctx: AppContext) -> None:
    other = build_context(settings_for(tmp_path / "b"), huey_kind="memory")
    try:
        other.host_for("HV01").list_vms()
        assert other.metrics.registry is not ctx.metrics.registry
        assert not any(k[0] == "checkpoint_bot_host_calls_total" for k in scrape(ctx.metrics))
    finally:
        other.close()


# --- the database gauges ---------------------------------------------------------------------


def add_change(
    engine: Engine, *, host: str, state: str, created: datetime, cid: str | None, ttl: timedelta
) -> None:
    with session_scope(engine) as s:
        s.add(
            Change(
                vm_id=f"vm-{cid}",
                vm_name=f"VM{cid}",
                host=host,
                checkpoint_type="production",
                reason="test",
                requester="U0ALICE",
                state=state,
                ttl_seconds=int(ttl.total_seconds()),
                created_at=created,
                updated_at=created,
                expires_at=created + ttl,
                checkpoint_id=cid,
            )
        )


def test_database_gauges_per_host_group(ctx: AppContext) -> None:
    now = ctx.clock()
    day = timedelta(days=1)
    add_change(ctx.engine, host="HV01", state="active", created=now - 3 * day, cid="c1", ttl=day)
    add_change(
        ctx.engine, host="HV02", state="rolled_back", created=now - day / 2, cid="c2", ttl=day
    )
    add_change(ctx.engine, host="HV03", state="active", created=now - day / 4, cid="c3", ttl=day)
    add_change(ctx.engine, host="HV03", state="merged", created=now - 9 * day, cid="c4", ttl=day)
    with session_scope(ctx.engine) as s:
        for cid, at, size in (("c1", now - day, 5), ("c1", now, 7), ("c2", now, 11)):
            s.add(
                CheckpointSize(
                    host="HV01", vm_id=f"vm-{cid}", checkpoint_id=cid, at=at, size_bytes=size
                )
            )
        s.add(
            Job(
                idempotency_key="k1",
                kind="create",
                vm_id="vm-x",
                host="HV01",
                state="queued",
                created_at=now - timedelta(minutes=5),
            )
        )
        s.add(
            Job(
                idempotency_key="k2",
                kind="create",
                vm_id="vm-y",
                host="HV01",
                state="queued",
                created_at=now,
                not_before=now + day,
            )
        )
    # A clock that stands still: the context's runs 600x.
    metrics = Metrics()
    metrics.add_collector(DatabaseGauges(ctx.engine, ctx.inventory, lambda: now))
    found = scrape(metrics)

    def gauge(name: str, **labels: str) -> float:
        return found[(f"checkpoint_bot_{name}", frozenset(labels.items()))]

    # HV01 and HV02 are prod-cluster; HV03 is standalone (demo inventory).
    assert gauge("active_checkpoints", host_group="prod-cluster") == 2
    assert gauge("active_checkpoints", host_group="standalone") == 1
    assert gauge("expired_checkpoints", host_group="prod-cluster") == 1
    assert gauge("active_checkpoint_bytes", host_group="prod-cluster") == 7 + 11
    assert gauge("oldest_checkpoint_age_seconds", host_group="prod-cluster") == pytest.approx(
        3 * 86400, rel=0.01
    )
    assert gauge("queue_depth") == 1 and gauge("queue_scheduled") == 1
    assert gauge("queue_oldest_age_seconds") == 300
    assert gauge("database_up") == 1


HELD = (
    "active_checkpoints",
    "expired_checkpoints",
    "active_checkpoint_bytes",
    "oldest_checkpoint_age_seconds",
    "unowned_checkpoints",
    "unowned_checkpoint_bytes",
)


def test_a_host_group_that_holds_nothing_reads_0_not_no_data(ctx: AppContext) -> None:
    """Seen: with nothing held on `standalone`, the held gauges had no
    series for it while `unowned_checkpoints` read 0 (docs/operations.md,
    Checkpoints held): an alert or a panel then saw "no data", not "none"."""
    now = ctx.clock()
    day = timedelta(days=1)
    add_change(ctx.engine, host="HV01", state="active", created=now - 2 * day, cid="c1", ttl=day)
    # Settled: holds nothing, on standalone's HV03.
    add_change(ctx.engine, host="HV03", state="merged", created=now - 9 * day, cid="c2", ttl=day)
    metrics = Metrics()
    metrics.add_collector(DatabaseGauges(ctx.engine, ctx.inventory, lambda: now))
    found = scrape(metrics)
    for name in HELD:
        series = {
            dict(labels)["host_group"]: value
            for (metric, labels), value in found.items()
            if metric == f"checkpoint_bot_{name}"
        }
        assert set(series) == {"prod-cluster", "standalone"}, (name, series)
        assert series["standalone"] == 0, name
    assert (
        found[("checkpoint_bot_active_checkpoints", frozenset({("host_group", "prod-cluster")}))]
        == 1
    )
    assert found[
        (
            "checkpoint_bot_oldest_checkpoint_age_seconds",
            frozenset({("host_group", "prod-cluster")}),
        )
    ] == pytest.approx(2 * 86400)


def test_interrupted_jobs_count_until_their_change_is_reconciled(ctx: AppContext) -> None:
    """The alert on this gauge says "interrupted and not yet reconciled":
    a job row stays `interrupted` as history, so only those whose change
    still waits count (seen: 2.0 for ever after one crash)."""
    from sqlmodel import select

    now = ctx.clock()
    day = timedelta(days=1)
    add_change(ctx.engine, host="HV01", state="creating", created=now, cid="c1", ttl=day)
    add_change(ctx.engine, host="HV01", state="interrupted", created=now, cid="c2", ttl=day)
    add_change(ctx.engine, host="HV01", state="active", created=now, cid="c3", ttl=day)
    with session_scope(ctx.engine) as s:
        ids = {c.checkpoint_id: c.id for c in s.exec(select(Change)).all()}
        for cid in ("c1", "c2", "c3"):
            s.add(
                Job(
                    idempotency_key=f"i-{cid}",
                    kind="create",
                    vm_id=f"vm-{cid}",
                    host="HV01",
                    state="interrupted",
                    change_id=ids[cid],
                    created_at=now,
                )
            )
    metrics = Metrics()
    metrics.add_collector(DatabaseGauges(ctx.engine, ctx.inventory, lambda: now))
    # c1 waits for the reconciler, c2 for a human; c3 was reconciled (active).
    assert scrape(metrics)[("checkpoint_bot_jobs_interrupted", frozenset())] == 2


def test_an_unreadable_database_is_a_zero_not_a_failed_scrape(ctx: AppContext) -> None:
    broken = make_engine("sqlite:////nonexistent/dir/bot.db")
    metrics = Metrics()
    metrics.add_collector(DatabaseGauges(broken, ctx.inventory, ctx.clock))
    found = scrape(metrics)
    assert found[("checkpoint_bot_database_up", frozenset())] == 0
    assert not any(k[0] == "checkpoint_bot_queue_depth" for k in found)


@given(
    st.lists(
        st.tuples(st.sampled_from(["HV01", "HV02", "HV03", "GONE"]), st.integers(0, 10**6)),
        max_size=30,
    )
)
def test_group_totals_count_every_held_checkpoint_once(rows: list[tuple[str, int]]) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    held = [
        CheckpointRow(h, f"c{n}", now - timedelta(seconds=age), None)
        for n, (h, age) in enumerate(rows)
    ]
    groups = {"HV01": "a", "HV02": "a", "HV03": "b"}
    totals = totals_by_group(held, {}, lambda h: groups.get(h, h), now)
    assert sum(t.count for t in totals.values()) == len(rows)
    for group, t in totals.items():
        ages = [age for h, age in rows if groups.get(h, h) == group]
        assert t.oldest_seconds == max(ages)


# --- the Slack Web API client ----------------------------------------------------------------


class Throttling:
    """A Web API answering the first `limited` calls with HTTP 429."""

    def __init__(self, limited: int) -> None:
        self.limited, self.calls = limited, 0
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                api.calls += 1
                if api.calls <= api.limited:
                    body, status = b'{"ok": false, "error": "ratelimited"}', 429
                else:
                    body, status = b'{"ok": true, "channel": "C1", "ts": "1.0"}', 200
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Retry-After", "0")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_web_api_calls_429s_and_retries_are_counted() -> None:
    api = Throttling(limited=2)
    metrics = Metrics()
    client = make_web_client("xoxb-test", api.url, metrics)
    try:
        client.chat_postMessage(channel="C1", text="hello")
        found = scrape(metrics)
        assert (
            found[
                (
                    "checkpoint_bot_slack_api_ratelimited_total",
                    frozenset({("method", "chat.postMessage")}),
                )
            ]
            == 2
        )
        assert (
            found[
                ("checkpoint_bot_slack_api_retries_total", frozenset({("reason", "ratelimited")}))
            ]
            == 2
        )
        ok = (
            "checkpoint_bot_slack_api_calls_total",
            frozenset({("method", "chat.postMessage"), ("outcome", "ok")}),
        )
        assert found[ok] == 1
        # Past the handler's three retries the call fails as rate limited.
        api.calls, api.limited = 0, 10
        with pytest.raises(Exception, match="ratelimited"):
            client.chat_postMessage(channel="C1", text="again")
        limited = (
            "checkpoint_bot_slack_api_calls_total",
            frozenset({("method", "chat.postMessage"), ("outcome", "ratelimited")}),
        )
        assert scrape(metrics)[limited] == 1
    finally:
        api.server.shutdown()


# --- the shipped dashboard and alerts reference only what exists -----------------------------


def exposed(tmp_path: Path) -> dict[str, set[str]]:
    """Every sample name a bot exposes, with its label names (histograms'
    _bucket/_count/_sum and counters' _total included)."""
    context = build_context(settings_for(tmp_path), huey_kind="memory")
    try:
        context.watch_files()  # as serve and worker do
        m = context.metrics
        # Touch each labelled metric once so its samples appear.
        m.slack_commands.labels("create", "ok").inc()
        m.slack_refused.labels("signature").inc()
        m.slack_actions.labels("checkpoint:approve", "ok").inc()
        m.ack_seconds.labels("command").observe(0.01)
        m.policy_decisions.labels("create", "allow").inc()
        m.policy_rules.labels("ttl", "warn").inc()
        m.jobs.labels("create", "succeeded").inc()
        m.job_seconds.labels("create", "succeeded").observe(1)
        m.host_calls.labels("Get-VM", "HV01", "ok").inc()
        m.host_seconds.labels("Get-VM", "HV01").observe(0.1)
        m.host_errors.labels("Get-VM", "HV01", "unreachable").inc()
        m.slack_api_calls.labels("chat.postMessage", "ok").inc()
        m.slack_api_ratelimited.labels("chat.postMessage").inc()
        m.slack_api_retries.labels("ratelimited").inc()
        add_change(
            context.engine,
            host="HV01",
            state="active",
            created=context.clock(),
            cid="c1",
            ttl=timedelta(days=1),
        )
        names: dict[str, set[str]] = {}
        for (name, labels), _ in scrape(m).items():
            names.setdefault(name, set()).update(k for k, _ in labels)
        return names
    finally:
        context.close()


METRIC = re.compile(r"\b(checkpoint_bot_[a-z_]+)\b(?:\{([^}]*)\})?")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


def check_expression(expr: str, names: dict[str, set[str]]) -> list[str]:
    """Problems in one PromQL expression: unknown metrics, unknown labels
    in matchers or groupings, unbalanced brackets."""
    problems = []
    used = METRIC.findall(expr)
    if not used:
        problems.append(f"{expr!r} uses no checkpoint_bot_ metric")
    labels_of_used: set[str] = {"le"}
    for name, matchers in used:
        if name not in names:
            problems.append(f"{name} does not exist")
            continue
        labels_of_used |= names[name]
        for matcher in filter(None, (m.strip() for m in matchers.split(","))):
            label = re.split(r"[!=~]", matcher, maxsplit=1)[0].strip()
            if label not in names[name]:
                problems.append(f"{name} has no label {label!r}")
    for group in GROUPING.findall(expr):
        for label in filter(None, (g.strip() for g in group.split(","))):
            if label not in labels_of_used:
                problems.append(f"grouping by {label!r}, which no metric in {expr!r} has")
    for opening, closing in ("()", "[]", "{}"):
        if expr.count(opening) != expr.count(closing):
            problems.append(f"unbalanced {opening}{closing} in {expr!r}")
    return problems


def test_every_metric_is_prefixed_and_documented(tmp_path: Path) -> None:
    names = exposed(tmp_path)
    assert all(n.startswith("checkpoint_bot_") for n in names), sorted(names)
    doc = OPERATIONS.read_text(encoding="utf-8")
    families = {re.sub(r"_(total|bucket|count|sum|created)$", "", n) for n in names}
    missing = [f for f in sorted(families) if f"`{f}" not in doc]
    assert missing == [], f"docs/operations.md does not list {missing}"


def test_the_dashboard_references_only_metrics_that_exist(tmp_path: Path) -> None:
    names = exposed(tmp_path)
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] == "checkpoint-bot" and dashboard["panels"]
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    problems = [p for e in exprs for p in check_expression(e, names)]
    assert problems == []
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    # Every family of metrics appears on some panel.
    shown = {m for e in exprs for m, _ in METRIC.findall(e)}
    families = {re.sub(r"_(total|bucket|count|sum|created)$", "", n) for n in names}
    unseen = [f for f in sorted(families) if not any(s.startswith(f) for s in shown)]
    assert unseen == [], unseen


def test_the_alert_rules_are_well_formed_and_reference_existing_metrics(tmp_path: Path) -> None:
    names = exposed(tmp_path)
    rules = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    (group,) = rules["groups"]
    alerts = {r["alert"]: r for r in group["rules"]}
    for wanted in ("StaleCheckpoints", "JobsStuck", "HostUnreachable", "SlackPostingFailing"):
        assert f"CheckpointBot{wanted}" in alerts
    for name, rule in alerts.items():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}
        assert re.fullmatch(r"CheckpointBot[A-Za-z]+", name)
        assert re.fullmatch(r"\d+[smhd]", rule["for"]), name
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]
        assert check_expression(rule["expr"], names) == [], name


def test_the_checker_catches_a_wrong_name_and_label(tmp_path: Path) -> None:
    names = {"checkpoint_bot_jobs_total": {"kind", "outcome"}}
    assert check_expression('rate(checkpoint_bot_jobs_total{kind="x"}[5m])', names) == []
    assert check_expression("checkpoint_bot_job_total", names) == [
        "checkpoint_bot_job_total does not exist"
    ]
    assert check_expression('sum by (host) (checkpoint_bot_jobs_total{vm="a"})', names) == [
        "checkpoint_bot_jobs_total has no label 'vm'",
        "grouping by 'host', which no metric in "
        "'sum by (host) (checkpoint_bot_jobs_total{vm=\"a\"})' has",
    ]


# --- prometheus-client's multiprocess mode ---------------------------------------------------


MP_SCRIPT = """
import sys
from bot.observe import Metrics
m = Metrics(multiprocess_dir=sys.argv[1])
m.jobs.labels("create", "succeeded").inc()
if sys.argv[2] == "show":
    sys.stdout.write(m.exposition()[0].decode())
"""


def test_multiprocess_mode_merges_the_values_of_every_process(tmp_path: Path) -> None:
    import subprocess
    import sys

    directory = tmp_path / "prom"
    directory.mkdir()
    # The variable must be set before prometheus-client is imported: only a
    # fresh process can show it.
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory), "PYTHONPATH": str(REPO)}

    def run(mode: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", MP_SCRIPT, str(directory), mode],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return done.stdout

    run("count")
    run("count")
    body = run("show")
    found = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }
    key = ("checkpoint_bot_jobs_total", frozenset({("kind", "create"), ("outcome", "succeeded")}))
    assert found[key] == 3
