"""The bot's Prometheus metrics: one `Metrics` object per process, holding
its own `CollectorRegistry`, built at the entry point and passed down.

Nothing here registers into prometheus-client's global default registry.
The one process-wide thing prometheus-client imposes is its multiprocess
mode: with `PROMETHEUS_MULTIPROC_DIR` set *before the library is imported*
every metric value lives in an mmap'd file of that directory, and
`exposition(multiprocess_dir=...)` merges the files of every process
(https://prometheus.github.io/client_python/multiprocess/). The bot's own
processes never fork workers (Huey's consumer runs threads), so each
process serves its own registry on its own port; the multiprocess path is
there for a supervisor that forks several bots sharing one scrape target.

Every name starts with `checkpoint_bot_`; docs/operations.md lists them all.
Label values are bounded sets (kinds, outcomes, cmdlets, hosts of the
inventory): never user text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

PREFIX = "checkpoint_bot_"

# Slack's ack budget is 3 s; the buckets resolve the fast end finely.
ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)
# A production checkpoint can take minutes; a merge, hours.
JOB_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0)
HOST_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0)


@dataclass
class Metrics:
    """Every metric the process records, registered on `registry`."""

    registry: CollectorRegistry = field(
        default_factory=lambda: CollectorRegistry(auto_describe=True)
    )
    # PROMETHEUS_MULTIPROC_DIR as the entry point read it: /metrics then
    # merges the values every process wrote there.
    multiprocess_dir: str | None = None

    def __post_init__(self) -> None:
        r = self.registry
        self.slack_commands = Counter(
            PREFIX + "slack_commands",
            "Slash commands answered, by subcommand and outcome (ok, error).",
            ["command", "outcome"],
            registry=r,
        )
        self.slack_refused = Counter(
            PREFIX + "slack_requests_refused",
            "Requests to the Slack endpoint refused before Bolt saw them, by why "
            "(signature: unsigned or a bad or stale signature; too_large; malformed).",
            ["why"],
            registry=r,
        )
        self.slack_actions = Counter(
            PREFIX + "slack_actions",
            "Button clicks, modal submissions and option loads, by action and outcome.",
            ["action", "outcome"],
            registry=r,
        )
        self.ack_seconds = Histogram(
            PREFIX + "slack_ack_seconds",
            "Seconds from a Slack request's arrival to its ack, by request type.",
            ["type"],
            buckets=ACK_BUCKETS,
            registry=r,
        )
        self.policy_decisions = Counter(
            PREFIX + "policy_decisions",
            "Guardrail decisions, by action and verdict.",
            ["action", "verdict"],
            registry=r,
        )
        self.policy_rules = Counter(
            PREFIX + "policy_rules_fired",
            "Rules that fired in a decision, by rule and the verdict it asked for.",
            ["rule", "verdict"],
            registry=r,
        )
        self.jobs = Counter(
            PREFIX + "jobs",
            "Jobs run by this process, by kind and outcome.",
            ["kind", "outcome"],
            registry=r,
        )
        self.job_seconds = Histogram(
            PREFIX + "job_duration_seconds",
            "Seconds a job ran, by kind and outcome.",
            ["kind", "outcome"],
            buckets=JOB_BUCKETS,
            registry=r,
        )
        self.host_calls = Counter(
            PREFIX + "host_calls",
            "Calls to Hyper-V hosts, by cmdlet, host and outcome (ok, error).",
            ["cmdlet", "host", "outcome"],
            registry=r,
        )
        self.host_seconds = Histogram(
            PREFIX + "host_call_seconds",
            "Seconds a call to a Hyper-V host took, by cmdlet and host.",
            ["cmdlet", "host"],
            buckets=HOST_BUCKETS,
            registry=r,
        )
        self.host_errors = Counter(
            PREFIX + "host_errors",
            "Failed host calls, by cmdlet, host and category "
            "(unreachable, auth, timeout, not_found, powershell).",
            ["cmdlet", "host", "category"],
            registry=r,
        )
        self.slack_api_calls = Counter(
            PREFIX + "slack_api_calls",
            "Slack Web API calls, by method and outcome (ok, error, ratelimited).",
            ["method", "outcome"],
            registry=r,
        )
        self.slack_api_ratelimited = Counter(
            PREFIX + "slack_api_ratelimited",
            "HTTP 429 answers from the Slack Web API, by method.",
            ["method"],
            registry=r,
        )
        self.slack_api_retries = Counter(
            PREFIX + "slack_api_retries",
            "Slack Web API requests retried, by reason (ratelimited, connection).",
            ["reason"],
            registry=r,
        )

    def add_collector(self, collector: Collector) -> None:
        """A collector read at scrape time (the database's gauges)."""
        self.registry.register(collector)

    def exposition(self) -> tuple[bytes, str]:
        """The text format and its content type. In multiprocess mode, the
        values of every process writing to the directory, plus this
        registry's scrape-time collectors."""
        multiprocess_dir = self.multiprocess_dir
        if multiprocess_dir is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        from prometheus_client import multiprocess

        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged, path=multiprocess_dir)  # type: ignore[no-untyped-call]
        for collector in self._scrape_time_collectors():
            merged.register(collector)
        return generate_latest(merged), CONTENT_TYPE_LATEST

    def _scrape_time_collectors(self) -> Iterable[Collector]:
        own = {
            self.slack_commands, self.slack_actions, self.ack_seconds, self.policy_decisions,
            self.policy_rules, self.jobs, self.job_seconds, self.host_calls, self.host_seconds,
            self.host_errors, self.slack_api_calls, self.slack_api_ratelimited,
            self.slack_api_retries,
        }  # fmt: skip
        names = self.registry._collector_to_names  # no public listing of collectors
        return [c for c in list(names) if c not in own]
