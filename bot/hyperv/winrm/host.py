"""The real backend: `HyperVHost` over WinRM/PSRP with pypsrp.

    WinRMFleet(inventory, env, fanout=64, call_timeout=60, idle_timeout=300)
    ├── .host(name) -> WinRMHost            cached, one runspace pool each
    └── .close()
    WinRMHost(host, credential, timeouts)   a HyperVHost

Every operation sends cmdlet pipelines built in `winrm.commands` (no
scripts, so a JEA endpoint in NoLanguage mode serves it; deploy/jea/), runs
them under a hard deadline (`winrm.pool`), checks both `had_errors` and the
error stream, and maps the output (`winrm.mapping`) and errors
(`winrm.errors`) to the typed results and errors. Ids are checked to be
GUIDs before anything is sent, so a `*` or `;` never reaches a host.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from bot.domain import is_canonical_guid
from bot.hyperv.errors import (
    CREDENTIALS_REJECTED,
    CheckpointNotFound,
    CommandNotVisible,
    HostAuthError,
    HostUnreachable,
    NotFoundError,
    PowerShellError,
    VMNotFound,
)
from bot.hyperv.types import (
    Checkpoint,
    CheckpointType,
    DiscoveredVM,
    VMFacts,
    VMInfo,
    Volume,
)
from bot.hyperv.winrm import commands as cmds
from bot.hyperv.winrm import mapping as mapping
from bot.hyperv.winrm.connect import (
    Credentials,
    HostCredential,
    refused_in_clear,
    what_to_check,
    wsman_factory,
)
from bot.hyperv.winrm.errors import error_from_records
from bot.hyperv.winrm.idle import IdleReaper
from bot.hyperv.winrm.pool import (
    Outcome,
    Pipeline,
    PoolSession,
    SessionStats,
    WinRMTimeouts,
    render,
)
from bot.inventory.inventory import Inventory
from bot.inventory.models import Host

log = logging.getLogger(__name__)

T = TypeVar("T")


class HostSession(Protocol):
    """Where a WinRMHost runs its pipelines: a runspace pool over WinRM
    (`PoolSession`), or any transport that answers with what pypsrp hands
    back (`bot.devtools.simulator.session.InProcessSession`)."""

    @property
    def stats(self) -> SessionStats: ...

    @property
    def is_open(self) -> bool: ...

    def run(self, pipeline: Pipeline) -> Outcome: ...

    def close(self, *, wait: bool = True) -> None: ...


_Told = TypeVar("_Told", HostAuthError, HostUnreachable)


def _told_more(exc: _Told, clause: str) -> _Told:
    """`exc` again with what only the host's inventory entry can add."""
    return type(exc)(
        f"{exc.message}; {clause}", host=exc.host, category=exc.category, error_id=exc.error_id
    )


class WinRMHost:
    """One Hyper-V host over WinRM. Thread-safe; calls to one host run one
    at a time on its pool (hosts run in parallel)."""

    def __init__(
        self,
        host: Host,
        credential: HostCredential,
        *,
        timeouts: WinRMTimeouts | None = None,
        connect: Callable[[], Any] | None = None,
        session: HostSession | None = None,
        sleep: Callable[[float], None] = time.sleep,
        reaper: IdleReaper | None = None,
    ) -> None:
        """`session` replaces the runspace pool (and with it `credential`,
        `connect` and the transport timeouts). `reaper` closes the pool when
        idle (the fleet's, shared by its hosts; else one of its own)."""
        self._host = host
        self._sleep = sleep
        self._timeouts = timeouts or WinRMTimeouts()
        self._session: HostSession = session or PoolSession(
            host.name,
            connect or wsman_factory(host, credential, self._timeouts),
            timeouts=self._timeouts,
            configuration_name=host.configuration_name,
            reaper=reaper,
        )
        # Whether the endpoint runs Where-Object (`_on_own_checkpoint`):
        # assumed until it says otherwise.
        self._filters = True

    def __repr__(self) -> str:
        if not isinstance(self._session, PoolSession):
            return f"WinRMHost({self.name!r}, {self._session!r})"
        scheme = self._host.transport.value
        return f"WinRMHost({self.name!r}, {scheme}://{self._host.address}:{self._host.port})"

    @property
    def name(self) -> str:
        return self._host.name

    @property
    def stats(self) -> SessionStats:
        return self._session.stats

    @property
    def is_open(self) -> bool:
        return self._session.is_open

    def close(self, *, wait: bool = True) -> None:
        self._session.close(wait=wait)

    # -- plumbing -----------------------------------------------------------------

    def _run(
        self,
        pipeline: Pipeline,
        *,
        missing: type[NotFoundError] = VMNotFound,
        read_only: bool = False,
    ) -> list[Any]:
        """Run one pipeline. A read-only one that could not reach the host is
        tried again (bounded, with backoff); one that changes something never
        is: whether it ran is unknown, and the caller decides."""
        log.debug("%s: %s", self.name, render(pipeline))
        attempts = 1 + (self._timeouts.read_retries if read_only else 0)
        delay = self._timeouts.retry_backoff
        for attempt in range(1, attempts + 1):
            try:
                outcome = self._session.run(pipeline)
                break
            except HostAuthError as exc:
                if exc.error_id != CREDENTIALS_REJECTED:
                    raise
                # Only the host spec knows where the refused credential came
                # from: the pool that saw the 401 knows the host's name only.
                raise _told_more(exc, what_to_check(self._host)) from exc
            except HostUnreachable as exc:
                # A certificate that does not validate will not on a retry either.
                if attempt == attempts or exc.category == "SecurityError":
                    # An HTTP 500 to Basic over HTTP reads as an outage but
                    # is most likely the host refusing unencrypted messages:
                    # only the host spec knows how it was asked.
                    clause = refused_in_clear(self._host, exc.error_id)
                    if clause is None:
                        raise
                    raise _told_more(exc, clause) from exc
                log.info("%s: %s; trying again in %.1fs", self.name, exc.message, delay)
                self._sleep(delay)
                delay *= 2
        if outcome.failed:
            raise error_from_records(outcome.errors, host=self.name, missing=missing)
        return outcome.output

    def _mapped(self, convert: Callable[[], T]) -> T:
        try:
            return convert()
        except mapping.MappingError as exc:
            raise PowerShellError(
                f"unexpected output from the host: {exc}",
                host=self.name,
                category="InvalidResult",
                error_id="UnexpectedOutput",
            ) from None

    def _vm_id(self, vm_id: object) -> str:
        # Strict canonical form only: an id also travels inside a WQL filter
        # (commands.kvp), where nothing but hex and dashes may pass.
        if not is_canonical_guid(vm_id):
            raise VMNotFound(
                f"not a VM id (expected a lower-case GUID): {_shown(vm_id)}",
                host=self.name,
                category="InvalidArgument",
                error_id="NotAGuid",
            )
        return str(vm_id)

    def _checkpoint_id(self, checkpoint_id: object) -> str:
        if not is_canonical_guid(checkpoint_id):
            raise CheckpointNotFound(
                f"not a checkpoint id (expected a lower-case GUID): {_shown(checkpoint_id)}",
                host=self.name,
                category="InvalidArgument",
                error_id="NotAGuid",
            )
        return str(checkpoint_id)

    def _one_vm(self, outputs: list[Any], vm_id: str) -> VMInfo:
        vms = self._mapped(lambda: [mapping.vm_info(out, self.name) for out in outputs])
        for vm in vms:
            if vm.vm_id == vm_id:
                return vm
        raise VMNotFound(
            f'Hyper-V was unable to find a virtual machine with ID "{vm_id}".',
            host=self.name,
            category="ObjectNotFound",
        )

    def _owned_checkpoint(self, vm_id: str, checkpoint_id: str) -> None:
        """The checkpoint exists and belongs to this VM (ids are global on a
        host, so a wrong pairing is a caller's mistake that must not act)."""
        outputs = self._run(
            cmds.checkpoint_owner(checkpoint_id), missing=CheckpointNotFound, read_only=True
        )
        owners = self._mapped(
            lambda: [
                mapping.guid(mapping.pick(mapping.properties(out), "VMId"), field="VMId")
                for out in outputs
            ]
        )
        if not owners:
            raise CheckpointNotFound(
                "Unable to find a snapshot matching the given criteria.",
                host=self.name,
                category="ObjectNotFound",
            )
        if owners[0] != vm_id:
            raise CheckpointNotFound(
                f"checkpoint {checkpoint_id} belongs to VM {owners[0]}, not {vm_id}",
                host=self.name,
                category="InvalidArgument",
                error_id="CheckpointOfAnotherVM",
            )

    # -- queries -----------------------------------------------------------------

    def list_vms(self) -> list[VMInfo]:
        outputs = self._run(cmds.list_vms(), read_only=True)
        vms = self._mapped(lambda: [mapping.vm_info(out, self.name) for out in outputs])
        return sorted(vms, key=lambda vm: (vm.name.lower(), vm.vm_id))

    def get_vm(self, vm_id: str) -> VMInfo:
        vm_id = self._vm_id(vm_id)
        return self._one_vm(self._run(cmds.get_vm(vm_id), read_only=True), vm_id)

    def list_checkpoints(self, vm_id: str | None = None) -> list[Checkpoint]:
        if vm_id is not None:
            vm_id = self._vm_id(vm_id)
        outputs = self._run(cmds.list_checkpoints(vm_id), read_only=True)
        found = self._mapped(lambda: [mapping.checkpoint(out, self.name) for out in outputs])
        # Sorted stably by creation time: the host's order is by VM, then tree.
        return sorted(found, key=lambda cp: cp.created_at)

    def volumes(self) -> list[Volume]:
        return self._volumes_from(self._run(cmds.volumes(), read_only=True))

    def _volumes_from(self, outputs: list[Any]) -> list[Volume]:
        found = self._mapped(lambda: [mapping.volume(out, self.name) for out in outputs])
        return sorted((v for v in found if v is not None), key=lambda v: v.path)

    def vm_facts(self, vm_id: str) -> VMFacts:
        vm_id = self._vm_id(vm_id)
        try:
            outputs = self._run(cmds.vm_facts(vm_id), read_only=True)
            by_kind = mapping.split_by_kind(outputs, cmds.FACT_KINDS)
        except (PowerShellError, NotFoundError, mapping.MappingError) as exc:
            # An error record or an output it cannot place: ask statement by
            # statement, which says exactly what failed (a missing VM, a
            # cmdlet the endpoint lacks). Read-only, so asking again is safe;
            # a transport fault is not caught here and means "not asked".
            log.debug("%s: facts in one invocation failed (%s); asking one by one", self.name, exc)
            return self._vm_facts_one_by_one(vm_id)
        if len(by_kind["vm"]) != 1:
            return self._vm_facts_one_by_one(vm_id)
        return self._facts_from(
            vm_id,
            by_kind["vm"],
            by_kind["disk"],
            mapping.kvp_items(by_kind["kvp"]),
            self._mapped(lambda: [mapping.checkpoint(o, self.name) for o in by_kind["checkpoint"]]),
            self._volumes_from(by_kind["volume"]),
            fibre_channel=(by_kind["fibre_channel"], ""),
        )

    def _vm_facts_one_by_one(self, vm_id: str) -> VMFacts:
        vm_out = self._run(cmds.get_vm(vm_id), read_only=True)
        self._one_vm(vm_out, vm_id)
        disk_out = self._run(cmds.hard_disks(vm_id), read_only=True)
        # A role without Get-CimInstance leaves the guest's word unknown (the
        # rules that need it fail closed), not the whole VM unreadable; why
        # is kept, so the guest is not blamed for the role.
        kvp_out, kvp_refused = self._optional(cmds.kvp(vm_id))
        kvp = mapping.kvp_items(kvp_out)
        # So is one without Get-VMFibreChannelHba: whether the VM has virtual
        # Fibre Channel is then unknown, never "no".
        return self._facts_from(
            vm_id,
            vm_out,
            disk_out,
            kvp,
            self.list_checkpoints(vm_id),
            self.volumes(),
            kvp_unavailable=kvp_refused,
            fibre_channel=self._optional(cmds.fibre_channel(vm_id)),
        )

    def _facts_from(
        self,
        vm_id: str,
        vm_out: list[Any],
        disk_out: list[Any],
        kvp: dict[str, str],
        checkpoints: list[Checkpoint],
        volumes: list[Volume],
        *,
        kvp_unavailable: str = "",
        fibre_channel: tuple[list[Any], str],
    ) -> VMFacts:
        vm = self._one_vm(vm_out, vm_id)
        disks = self._mapped(lambda: tuple(mapping.disk(out) for out in disk_out))
        vm_path = mapping.text(mapping.pick(mapping.properties(vm_out[0]), "Path"))
        first_disk = next((d.path for d in disks if not d.passthrough), "")
        return VMFacts(
            vm=vm,
            disks=disks,
            kvp_product_type=mapping.kvp_product_type(kvp),
            kvp_fqdn=kvp.get("FullyQualifiedDomainName") or None,
            kvp_os_name=kvp.get("OSName") or None,
            replication_enabled=self._replication_enabled(vm_id, vm),
            checkpoint_count=len(checkpoints),
            volume=mapping.volume_for(first_disk or vm_path, volumes),
            extra={k: v for k, v in kvp.items() if k in _KVP_EXTRA},
            kvp_unavailable=kvp_unavailable,
            fibre_channel=None if fibre_channel[1] else bool(fibre_channel[0]),
            fibre_channel_unavailable=fibre_channel[1],
        )

    def discover_vms(self) -> list[DiscoveredVM]:
        """Six calls for the whole host, whatever its number of VMs: the
        VMs, their hard disk drives, their virtual Fibre Channel adapters,
        replication, the guests' KVP items and the volumes
        (docs/discovery.md).

        The VMs and their drives must be read (a drive not seen would be a
        pass-through disk taken for none). What else the endpoint refuses
        (a JEA role without Get-CimInstance, Get-VMFibreChannelHba,
        Get-VMReplication or Get-Volume) leaves those facts unknown, or Get-VM's word for them,
        and is said on each VM."""
        vm_out = self._run(cmds.discover_vms(), read_only=True)
        disk_out = self._run(cmds.discover_disks(), read_only=True)
        replication_out, _ = self._optional(cmds.discover_replication())
        kvp_out, kvp_refused = self._optional(cmds.discover_kvp())
        fibre_channel_out, fibre_channel_refused = self._optional(cmds.discover_fibre_channel())
        try:
            volumes = self.volumes()
        except (PowerShellError, NotFoundError):
            volumes = []
        return self._mapped(
            lambda: mapping.discovered_vms(
                self.name,
                vm_out,
                disk_out,
                replication_out,
                kvp_out,
                volumes,
                kvp_unavailable=kvp_refused,
                fibre_channel=(fibre_channel_out, fibre_channel_refused),
            )
        )

    def _optional(self, pipeline: Pipeline) -> tuple[list[Any], str]:
        """A read whose refusal by the endpoint (not a connection failure)
        leaves its facts unknown: (output, "") or ([], why). A command the
        role hides is said in the role's terms: the engine's "not
        recognized" text would send the reader to the wrong place."""
        try:
            return self._run(pipeline, missing=NotFoundError, read_only=True), ""
        except (PowerShellError, NotFoundError) as exc:
            why = exc.in_role_terms() if isinstance(exc, CommandNotVisible) else exc.message
            log.info("%s: %s", self.name, why)
            return [], why

    def _replication_enabled(self, vm_id: str, vm: VMInfo) -> bool | None:
        if vm.replication_state == "Disabled":
            # Get-VM's ReplicationState already says so; asking
            # Get-VMReplication would only leave an error record on the host
            # ("Replication is not enabled for virtual machine ...").
            return False
        try:
            outputs = self._run(cmds.replication(vm_id), read_only=True)
        except (PowerShellError, NotFoundError):
            # A VM without replication is an error for Get-VMReplication
            # ("Replication is not enabled for virtual machine ..."); the VM
            # itself was just found, and Get-VM's ReplicationState says it.
            return vm.replication_state != "Disabled"
        if not outputs:
            return vm.replication_state != "Disabled"
        states = [
            mapping.replication_state(mapping.pick(mapping.properties(out), "State"))
            for out in outputs
        ]
        return any(state != "Disabled" for state in states)

    # -- changes -----------------------------------------------------------------

    def create_checkpoint(self, vm_id: str, name: str) -> Checkpoint:
        vm_id = self._vm_id(vm_id)
        problem = cmds.checkpoint_name_problem(name)
        if problem is not None:
            raise PowerShellError(
                f"checkpoint name {problem}",
                host=self.name,
                category="InvalidArgument",
                error_id="InvalidCheckpointName",
            )
        outputs = self._run(cmds.create_checkpoint(vm_id, name))
        found = self._mapped(lambda: [mapping.checkpoint(out, self.name) for out in outputs])
        mine = [cp for cp in found if cp.vm_id == vm_id]
        if not mine:
            raise PowerShellError(
                "Checkpoint-VM -Passthru returned no checkpoint of this VM",
                host=self.name,
                category="InvalidResult",
                error_id="NoCheckpointReturned",
            )
        return mine[-1]

    def restore_checkpoint(self, vm_id: str, checkpoint_id: str) -> VMInfo:
        vm_id = self._vm_id(vm_id)
        checkpoint_id = self._checkpoint_id(checkpoint_id)
        outputs = self._on_own_checkpoint(
            vm_id,
            checkpoint_id,
            "Restore-VMSnapshot",
            cmds.restore_checkpoint(checkpoint_id, vm_id),
            lambda: cmds.restore_checkpoint_by_id(checkpoint_id, vm_id),
        )
        return self._one_vm(outputs, vm_id)

    def remove_checkpoint(
        self, vm_id: str, checkpoint_id: str, *, include_children: bool = False
    ) -> None:
        vm_id = self._vm_id(vm_id)
        checkpoint_id = self._checkpoint_id(checkpoint_id)
        self._on_own_checkpoint(
            vm_id,
            checkpoint_id,
            "Remove-VMSnapshot",
            cmds.remove_checkpoint(checkpoint_id, vm_id, include_children=include_children),
            lambda: cmds.remove_checkpoint_by_id(checkpoint_id, include_children=include_children),
        )

    def _on_own_checkpoint(
        self,
        vm_id: str,
        checkpoint_id: str,
        cmdlet: str,
        filtered: Pipeline,
        by_id: Callable[[], Pipeline],
    ) -> list[Any]:
        """Act on the VM's own checkpoint in one round trip (winrm.commands
        `_acting_on_own`) and return the outputs that are neither the
        checkpoint found nor what the act passed through.

        An endpoint whose role lacks Where-Object (deploy/jea before
        2026-12-05) refuses the pipeline, and nothing acted: the acting
        cmdlet only gets what Where-Object passes on. Then, and from then on
        for this host, the owner is asked first and the checkpoint acted on
        by Id: two round trips, as before."""
        owner_asked = False
        if self._filters:
            try:
                outputs = self._run(filtered, missing=CheckpointNotFound)
            except CommandNotVisible as exc:
                if exc.command.casefold() != "where-object":
                    raise
                log.warning(
                    "%s: the endpoint has no Where-Object; a checkpoint's owner is asked in a "
                    "call of its own before %s (deploy/jea/README.md)",
                    self.name,
                    cmdlet,
                )
                self._filters = False
            else:
                kinds = (
                    ("found", cmds.OWNED_PROPERTIES),
                    ("acted", cmds.ACTED_PROPERTIES),
                    ("rest", cmds.VM_PROPERTIES),
                )
                by_kind = self._mapped(lambda: mapping.split_by_kind(outputs, kinds))
                if self._proven(by_kind["found"], by_kind["acted"], vm_id, checkpoint_id, cmdlet):
                    return by_kind["rest"]
                log.warning(
                    "%s: Where-Object did not find checkpoint %s among its VM's own; a "
                    "checkpoint's owner is asked in a call of its own before %s",
                    self.name,
                    checkpoint_id,
                    cmdlet,
                )
                self._filters = False
                owner_asked = True  # by `_proven`: the VM's own
        if not owner_asked:
            self._owned_checkpoint(vm_id, checkpoint_id)
        return self._run(by_id(), missing=CheckpointNotFound)

    def _proven(
        self, found: list[Any], acted: list[Any], vm_id: str, checkpoint_id: str, cmdlet: str
    ) -> bool:
        """True when the reply shows the checkpoint was the VM's and that
        `cmdlet` acted on that VM. Nothing found means nothing acted; the
        owner query then says why (raises `CheckpointNotFound`), or, when
        it finds the checkpoint is the VM's after all, the filter does not
        work on this endpoint: False, and the caller acts by Id."""

        def ids(outputs: list[Any], *names: str) -> set[tuple[str, ...]]:
            return self._mapped(
                lambda: {
                    tuple(
                        mapping.guid(mapping.pick(mapping.properties(out), n), field=n)
                        for n in names
                    )
                    for out in outputs
                }
            )

        seen = ids(found, "Id", "VMId")
        if not seen and not acted:
            self._owned_checkpoint(vm_id, checkpoint_id)  # raises: none, or another VM's
            return False
        if seen == {(checkpoint_id, vm_id)} and ids(acted, "VMId") == {(vm_id,)}:
            return True
        # The checkpoint was the VM's a moment before, and the act did not
        # say it acted (or said it acted elsewhere): what was done is not
        # known, and is not guessed.
        raise PowerShellError(
            f"{cmdlet} was given checkpoint {checkpoint_id} of VM {vm_id} but passed "
            f"{len(acted)} object(s) through: whether it acted is not known; look at the VM "
            "before trying again",
            host=self.name,
            category="InvalidResult",
            error_id="UnprovenAct",
        )

    def start_vm(self, vm_id: str) -> VMInfo:
        vm_id = self._vm_id(vm_id)
        return self._one_vm(self._run(cmds.start_vm(vm_id)), vm_id)

    def set_checkpoint_settings(
        self,
        vm_id: str,
        *,
        checkpoint_type: CheckpointType | None = None,
        automatic_checkpoints: bool | None = None,
    ) -> VMInfo:
        vm_id = self._vm_id(vm_id)
        if checkpoint_type is None and automatic_checkpoints is None:
            return self.get_vm(vm_id)
        pipeline = cmds.set_checkpoint_settings(
            vm_id, checkpoint_type=checkpoint_type, automatic_checkpoints=automatic_checkpoints
        )
        return self._one_vm(self._run(pipeline), vm_id)


# KVP items kept in VMFacts.extra besides the three it has fields for.
_KVP_EXTRA = frozenset({"OSVersion", "OSBuildNumber", "IntegrationServicesVersion"})


def _shown(value: object) -> str:
    """A rejected value for an error message: repr, cut short."""
    shown = repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."


class WinRMFleet:
    """The inventory's hosts over WinRM, with a bounded fan-out."""

    def __init__(
        self,
        inventory: Inventory,
        env: Mapping[str, str],
        *,
        fanout: int = 64,  # hyperv.fanout's default (bot.config)
        call_timeout: float = 60.0,
        idle_timeout: float = 300.0,
        timeouts: WinRMTimeouts | None = None,
    ) -> None:
        if fanout < 1:
            raise ValueError(f"fanout must be at least 1, got {fanout}")
        self._inventory = inventory
        self._credentials = Credentials(env)
        self._fanout = fanout
        base = timeouts or WinRMTimeouts()
        self._timeouts = WinRMTimeouts(
            call=call_timeout,
            connect=base.connect,
            read=base.read,
            operation=base.operation,
            idle=idle_timeout,
            stop_grace=base.stop_grace,
        )
        self._hosts: dict[str, WinRMHost] = {}
        # One thread closes every idle pool, at most `fanout` at once.
        self._reaper = IdleReaper(closers=fanout)
        self._closed = False

    def __repr__(self) -> str:
        return f"WinRMFleet({len(self._inventory.hosts)} hosts, fanout={self._fanout})"

    def host(self, name: str) -> WinRMHost:
        """The cached WinRMHost for an inventory host (InvalidName / UnknownHost
        for anything the inventory does not list)."""
        if self._closed:
            raise RuntimeError("the fleet is closed")
        spec = self._inventory.host(name)
        cached = self._hosts.get(spec.name)
        if cached is None:
            credential = self._credentials.for_host(spec)
            # setdefault: two threads racing for a new host keep one of them.
            cached = self._hosts.setdefault(
                spec.name,
                WinRMHost(spec, credential, timeouts=self._timeouts, reaper=self._reaper),
            )
        return cached

    def close(self, *, wait: bool = True) -> None:
        """Close every host's pool; without `wait`, those whose call is in
        progress are left to it (`PoolSession.close`)."""
        self._closed = True
        self._reaper.stop()
        hosts, self._hosts = list(self._hosts.values()), {}
        if not hosts:
            return
        with ThreadPoolExecutor(max_workers=min(self._fanout, len(hosts))) as pool:
            list(pool.map(lambda host: host.close(wait=wait), hosts))
