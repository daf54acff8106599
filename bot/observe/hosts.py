"""Host calls, measured: a `HyperVHost` that counts and times every call of
the host it wraps, by cmdlet and host, and counts failures by category."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from bot.hyperv import (
    Checkpoint,
    CheckpointType,
    DiscoveredVM,
    HostAuthError,
    HostTimeout,
    HostUnreachable,
    HyperVError,
    HyperVHost,
    NotFoundError,
    PowerShellError,
    VMFacts,
    VMInfo,
    Volume,
)
from bot.observe.metrics import Metrics

T = TypeVar("T")

# The cmdlet each interface call runs on the host (bot/hyperv/interface.py);
# the facts call runs several, named after the first.
CMDLETS = {
    "list_vms": "Get-VM",
    "get_vm": "Get-VM",
    "vm_facts": "Get-VM+facts",
    "discover_vms": "Get-VM+discovery",
    "list_checkpoints": "Get-VMSnapshot",
    "create_checkpoint": "Checkpoint-VM",
    "restore_checkpoint": "Restore-VMSnapshot",
    "remove_checkpoint": "Remove-VMSnapshot",
    "start_vm": "Start-VM",
    "set_checkpoint_settings": "Set-VM",
    "volumes": "Get-Volume",
}


def error_category(exc: BaseException) -> str:
    """The bounded label for a failed call (bot/hyperv/errors.py's tree)."""
    for kind, label in (
        (HostUnreachable, "unreachable"),
        (HostAuthError, "auth"),
        (HostTimeout, "timeout"),
        (NotFoundError, "not_found"),
        (PowerShellError, "powershell"),
        (HyperVError, "hyperv"),
    ):
        if isinstance(exc, kind):
            return label
    return "other"


class MeteredHost:
    """Wraps one host; anything beyond the interface passes straight through."""

    def __init__(self, inner: HyperVHost, host: str, metrics: Metrics) -> None:
        self._inner, self._host, self._metrics = inner, host, metrics

    def __repr__(self) -> str:
        return f"MeteredHost({self._inner!r})"

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _call(self, method: str, fn: Callable[[], T]) -> T:
        cmdlet, m = CMDLETS[method], self._metrics
        started = time.perf_counter()
        try:
            result = fn()
        except BaseException as exc:
            m.host_seconds.labels(cmdlet, self._host).observe(time.perf_counter() - started)
            m.host_calls.labels(cmdlet, self._host, "error").inc()
            m.host_errors.labels(cmdlet, self._host, error_category(exc)).inc()
            raise
        m.host_seconds.labels(cmdlet, self._host).observe(time.perf_counter() - started)
        m.host_calls.labels(cmdlet, self._host, "ok").inc()
        return result

    @property
    def name(self) -> str:
        return self._inner.name

    def list_vms(self) -> list[VMInfo]:
        return self._call("list_vms", self._inner.list_vms)

    def get_vm(self, vm_id: str) -> VMInfo:
        return self._call("get_vm", lambda: self._inner.get_vm(vm_id))

    def vm_facts(self, vm_id: str) -> VMFacts:
        return self._call("vm_facts", lambda: self._inner.vm_facts(vm_id))

    def discover_vms(self) -> list[DiscoveredVM]:
        return self._call("discover_vms", self._inner.discover_vms)

    def list_checkpoints(self, vm_id: str | None = None) -> list[Checkpoint]:
        return self._call("list_checkpoints", lambda: self._inner.list_checkpoints(vm_id))

    def create_checkpoint(self, vm_id: str, name: str) -> Checkpoint:
        return self._call("create_checkpoint", lambda: self._inner.create_checkpoint(vm_id, name))

    def restore_checkpoint(self, vm_id: str, checkpoint_id: str) -> VMInfo:
        return self._call(
            "restore_checkpoint", lambda: self._inner.restore_checkpoint(vm_id, checkpoint_id)
        )

    def remove_checkpoint(
        self, vm_id: str, checkpoint_id: str, *, include_children: bool = False
    ) -> None:
        self._call(
            "remove_checkpoint",
            lambda: self._inner.remove_checkpoint(
                vm_id, checkpoint_id, include_children=include_children
            ),
        )

    def start_vm(self, vm_id: str) -> VMInfo:
        return self._call("start_vm", lambda: self._inner.start_vm(vm_id))

    def set_checkpoint_settings(
        self,
        vm_id: str,
        *,
        checkpoint_type: CheckpointType | None = None,
        automatic_checkpoints: bool | None = None,
    ) -> VMInfo:
        return self._call(
            "set_checkpoint_settings",
            lambda: self._inner.set_checkpoint_settings(
                vm_id, checkpoint_type=checkpoint_type, automatic_checkpoints=automatic_checkpoints
            ),
        )

    def volumes(self) -> list[Volume]:
        return self._call("volumes", self._inner.volumes)


def metered(host_for: Callable[[str], HyperVHost], metrics: Metrics) -> Callable[[str], HyperVHost]:
    """`host_for`, with every host it hands out measured. Failing to get a
    host at all (an unknown or unreachable one) counts as a failed call."""

    def wrapped(name: str) -> HyperVHost:
        try:
            inner = host_for(name)
        except HyperVError as exc:
            metrics.host_errors.labels("connect", name, error_category(exc)).inc()
            raise
        return MeteredHost(inner, name, metrics)

    return wrapped
