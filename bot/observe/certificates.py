"""The hosts whose WinRM certificate the bot does not check, as a gauge.

`cert_validation: false` in the inventory makes the bot take any
certificate from that host: whoever can answer at its address gets the
bot's login and its commands. The CLI and `serve`/`worker` say so on
stderr when they read the inventory (bot/cli/runtime.py); the gauge
`checkpoint_bot_hosts_without_cert_validation` lets an alert see it too
(docs/operations.md). It is the count the process read at start: the
inventory changes only with a reload, which starts the process again.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from bot.observe.metrics import PREFIX


class UncheckedCertificates:
    """A prometheus-client collector: how many hosts are reached over HTTPS
    without checking their certificate (0 when every one is checked)."""

    def __init__(self, hosts: tuple[str, ...]) -> None:
        self.hosts = hosts

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            PREFIX + "hosts_without_cert_validation",
            "Hosts of the inventory reached over HTTPS without checking their certificate "
            "(cert_validation: false and no ca_bundle); 0 when every one is checked.",
        )
        gauge.add_metric([], len(self.hosts))
        yield gauge
