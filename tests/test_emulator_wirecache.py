"""The emulator's wire caches (bot.devtools.emulator.wirecache) send the bytes
psrpcore's own path sends: the same client messages, replayed into a session
without the caches, with cold caches and with warm ones, get byte-identical
answers."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from xml.etree import ElementTree

import pytest
from psrpcore import (
    ClientPowerShell,
    ClientRunspacePool,
    PSRPPayload,
    ServerRunspacePool,
    StreamType,
)
from psrpcore.types import (
    ApplicationPrivateData,
    PipelineState,
    PSNoteProperty,
    PSRPMessageType,
    RunspacePoolState,
    RunspacePoolStateMsg,
    serialize,
)

from bot.devtools.emulator import psrp, wirecache
from bot.devtools.emulator.cmdlets import RunContext
from bot.devtools.emulator.log import EmulatorLog
from bot.devtools.emulator.objects import (
    CUSTOM_OBJECT_TYPES,
    HvObject,
    custom_object,
    ps_enum,
    to_remoting,
    u64,
)
from bot.devtools.hostmodel import (
    InMemoryHostStateStore,
    ModelHost,
    demo_hosts_path,
    load_host_model,
    seed_missing,
)
from bot.devtools.hostmodel.enums import VMState

_NOW = dt.datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=dt.UTC)
_POOL_ID = uuid.UUID("11111111-2222-4333-8444-555555555555")
_SWEEP_PROPERTIES = [
    "Id",
    "VMId",
    "VMName",
    "Name",
    "ParentSnapshotId",
    "CreationTime",
    "SnapshotType",
    "State",
    "Path",
    "SizeOfSystemFiles",
]

Build = Callable[[ClientPowerShell], Any]
PIPELINES: list[Build] = [
    # The fleet sweep's listing (bench/fleet_sweep.py).
    lambda ps: (
        ps.add_command("Get-VM")
        .add_command("Get-VMSnapshot")
        .add_command("Select-Object")
        .add_parameter("Property", _SWEEP_PROPERTIES)
    ),
    lambda ps: ps.add_command("Get-VM"),
    lambda ps: ps.add_command("Get-VMSnapshot").add_parameter("VMName", "*"),
    lambda ps: ps.add_command("Get-VMHardDiskDrive").add_parameter("VMName", "SQL01"),
    lambda ps: ps.add_command("Get-VMReplication").add_parameter("VMName", "REPL-APP01"),
    lambda ps: ps.add_command("Get-Volume"),
    # An enum on its own (not an HvObject: the uncached path).
    lambda ps: (
        ps.add_command("Get-VM")
        .add_parameter("Name", "APP01")
        .add_command("Select-Object")
        .add_parameter("ExpandProperty", "State")
    ),
    # A non-terminating error, then a terminating one.
    lambda ps: ps.add_command("Get-VM").add_parameter("Name", "NO-SUCH-VM"),
    lambda ps: ps.add_command("Remove-Item"),
]


@pytest.fixture
def host() -> ModelHost:
    model = load_host_model(demo_hosts_path())
    store = InMemoryHostStateStore()
    seed_missing(store, model)
    modelled = ModelHost("HV01", store, lambda: _NOW)
    for vm in modelled.get_vms()[:3]:
        modelled.checkpoint_vm(vm.vm_id, "before patching")
    return modelled


@pytest.fixture(autouse=True)
def cold_caches() -> Iterator[None]:
    wirecache.clear()
    yield
    wirecache.clear()


class _Uncached(wirecache.CachingServerPool):
    """psrpcore's own path for everything."""

    def output_message(self, value: Any) -> Any:
        return to_remoting(value)

    def _process_message(self, message: Any) -> Any:
        return ServerRunspacePool._process_message(self, message)


def _context(host: ModelHost) -> Callable[[threading.Event], RunContext]:
    def context(stop: threading.Event) -> RunContext:
        return RunContext(host=host, stop=stop, hang=frozenset, log=EmulatorLog())

    return context


def _drain(session: psrp.PsrpSession, target: uuid.UUID | None) -> bytes:
    data = b""
    while True:
        received = session.receive(target, 5)
        assert received is not None, "the session did not answer"
        data += b"".join(received.chunks)
        if target is None or received.done:
            return data


def _exchange(host: ModelHost, sent: list[bytes] | None = None) -> tuple[list[bytes], list[bytes]]:
    """Opens a pool and runs PIPELINES on a fresh session: (what the client
    sent, what the session answered). With `sent`, those client bytes are
    replayed instead of a live client's (the same ids, the same bytes)."""
    session = psrp.PsrpSession(_context(host))
    client = ClientRunspacePool(runspace_pool_id=_POOL_ID)
    outgoing: list[bytes] = []
    answers: list[bytes] = []

    def feed_client(data: bytes, target: uuid.UUID | None) -> None:
        client.receive_data(PSRPPayload(data, StreamType.default, target))
        while client.next_event() is not None:
            pass

    try:
        client.open()
        first = client.data_to_send()
        assert first is not None
        opening = sent[0] if sent else first.data
        outgoing.append(opening)
        session.open(opening)
        answers.append(_drain(session, None))
        feed_client(answers[-1], None)
        assert client.state == RunspacePoolState.Opened
        for index, build in enumerate(PIPELINES):
            pipeline_id = uuid.UUID(int=index + 1)
            ps = ClientPowerShell(client, pipeline_id=pipeline_id)
            build(ps)
            ps.start()
            created = client.data_to_send()
            assert created is not None
            data = sent[index + 1] if sent else created.data
            outgoing.append(data)
            session.command(pipeline_id, data)
            answers.append(_drain(session, pipeline_id))
            feed_client(answers[-1], pipeline_id)
    finally:
        session.close()
    return outgoing, answers


def test_cached_answers_are_the_uncached_bytes(
    host: ModelHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent, cold = _exchange(host)
    _, warm = _exchange(host, sent)
    with monkeypatch.context() as patch:
        patch.setattr(psrp, "CachingServerPool", _Uncached)
        _, uncached = _exchange(host, sent)
    assert len(cold) == len(PIPELINES) + 1
    assert all(cold), "every exchange answered something"
    assert cold == uncached
    assert warm == uncached


def _psrpcore_message(value: Any) -> bytes:
    """A PIPELINE_OUTPUT message as psrpcore's own prepare_message builds it."""
    pool = ServerRunspacePool()
    pool.runspace_pool_id = _POOL_ID
    clixml = ElementTree.tostring(serialize(to_remoting(value), pool._cipher), encoding="utf-8")
    pool.prepare_message(to_remoting(value), PSRPMessageType.PipelineOutput, uuid.UUID(int=9))
    payload = pool.data_to_send()
    assert payload is not None
    assert clixml in payload.data
    return payload.data


def _cached_message(value: Any) -> bytes:
    """The same through a fresh CachingServerPool (the caches are the process's)."""
    pool = wirecache.CachingServerPool()
    pool.runspace_pool_id = _POOL_ID
    pool.prepare_message(
        pool.output_message(value), PSRPMessageType.PipelineOutput, uuid.UUID(int=9)
    )
    payload = pool.data_to_send()
    assert payload is not None
    return payload.data


def _note_object(value: Any) -> HvObject:
    return HvObject(
        type_names=("Selected.Test", *CUSTOM_OBJECT_TYPES),
        props={},
        notes={"Value": value},
        to_string=f"@{{Value={value}}}",
    )


# Values Python calls equal that differ on the wire: each must get its own entry.
LOOKALIKES = [
    1,
    True,
    1.0,
    u64(1),
    ps_enum(VMState.Other),
    "1",
    [1],
    (1,),
    _NOW,
    _NOW.astimezone(dt.timezone(dt.timedelta(hours=2))),
    _NOW.replace(microsecond=0),
    dt.datetime(2026, 1, 1),  # naive
    0.0,
    -0.0,
    None,
    dt.timedelta(seconds=1),
]


def test_lookalike_values_keep_their_own_bytes() -> None:
    for _ in range(2):  # cold, then warm
        for value in LOOKALIKES:
            obj = _note_object(value)
            assert _cached_message(obj) == _psrpcore_message(obj), repr(value)


def test_selected_objects_match_psrpcore(host: ModelHost) -> None:
    from bot.devtools.emulator import shapes

    snapshots = [shapes.snapshot_object(s) for s in host.get_snapshots()]
    assert snapshots
    for snap in snapshots:
        for names in (_SWEEP_PROPERTIES, ["name", "NoSuchProperty", "vmid"]):
            selected = custom_object(snap, names)
            assert _cached_message(selected) == _psrpcore_message(selected)
            assert _cached_message(selected) == _psrpcore_message(selected)


def test_unkeyable_values_take_the_uncached_path() -> None:
    extended = u64(5)  # an integer with a property of its own goes out as <Obj>
    extended.PSObject.extended_properties.append(PSNoteProperty("Extra", 1))
    for value in (extended, "lone \ud800 surrogate"):
        obj = _note_object(value)
        assert not isinstance(
            wirecache.CachingServerPool().output_message(obj), wirecache.SerializedOutput
        )
        assert _cached_message(obj) == _psrpcore_message(obj)


# Texts psrpcore escapes (_xHHHH_, surrogate pairs) and ElementTree escapes.
AWKWARD_TEXTS = [
    "a & b <c> \"d\" 'e'",
    "_x0041_ and _X0041_",
    "line\r\nbreak\ttab",
    "\x00\x01 control",
    "emoji \U0001f600 astral",
    "\u00fcn\u00efc\u00f6de",
    " ",
    "",
]


def test_awkward_texts_match_psrpcore() -> None:
    for _ in range(2):  # cold, then warm
        for text in AWKWARD_TEXTS:
            for to_string in (text, "", "plain"):
                obj = HvObject(
                    type_names=("Test.Thing", "System.Object"),
                    props={"Name": text, "Other": "x", "Id": uuid.UUID(int=7)},
                    notes={"When": _NOW, "Size": u64(len(text))},
                    to_string=to_string,
                )
                assert _cached_message(obj) == _psrpcore_message(obj), (text, to_string)


def _state_bytes(pool: ServerRunspacePool, message: Any) -> bytes:
    pool.runspace_pool_id = _POOL_ID
    pool.prepare_message(message, None, uuid.UUID(int=9))
    payload = pool.data_to_send()
    assert payload is not None
    return payload.data


_SHARED = {"V": 1}


def test_state_messages_match_psrpcore() -> None:
    messages: list[Callable[[], Any]] = [
        *(lambda s=s: PipelineState(PipelineState=s) for s in range(7)),
        *(lambda s=s: RunspacePoolStateMsg(RunspaceState=s) for s in range(7)),
        lambda: ServerRunspacePool().our_capability,
        lambda: ApplicationPrivateData(
            ApplicationPrivateData=ServerRunspacePool().application_private_data
        ),
        # The same dict twice: declined (psrpcore may write a repeat as <Ref>).
        lambda: ApplicationPrivateData(ApplicationPrivateData={"A": _SHARED, "B": _SHARED}),
        lambda: ApplicationPrivateData(ApplicationPrivateData={"A": {"V": 1}, "B": {"V": 1}}),
    ]
    for _ in range(2):  # cold, then warm
        for make in messages:
            cached = _state_bytes(wirecache.CachingServerPool(), make())
            assert cached == _state_bytes(ServerRunspacePool(), make())
