"""The CREATE_PIPELINE message a pool sends (pool.begin_invoke, its Data
serialised once per pipeline in clixml.py) is, byte for byte, the one
pypsrp's own `PowerShell.begin_invoke()` builds afresh, once the ids that
belong to one pool and one pipeline are set aside: the RPID and PID of the
message header (MS-PSRP 2.2.1) and the object id of its fragments (2.2.4).
Every pipeline `winrm.commands` builds is checked, for each protocol version
pypsrp serialises differently, in one fragment and in several."""

from __future__ import annotations

import base64
import struct
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest
from pypsrp.complex_objects import ApartmentState, PSThreadOptions
from pypsrp.messages import MessageType
from pypsrp.powershell import Fragment, PowerShell, RunspacePool
from pypsrp.wsman import NAMESPACES

from bot.hyperv.winrm import clixml
from bot.hyperv.winrm import commands as cmds
from bot.hyperv.winrm.clixml import create_pipeline, quicken
from bot.hyperv.winrm.pool import Cmd, Pipeline, begin_invoke
from tests.sent_pipelines import PIPELINES, VM

# pypsrp serialises a Command with or without the MergeError.. properties by
# the protocol version the pool negotiated (2.2 and later have them).
VERSIONS = ("2.1", "2.2", "2.3")


@dataclass
class Connection:
    """What RunspacePool reads of its WSMan before anything is sent."""

    max_payload_size: int


@dataclass
class RecordingShell:
    """A WinRS that keeps the fragments a pipeline sends: the first in the
    wxf:Command's Arguments, the rest in wxf:Send (MS-PSRP 3.1.5.3.3)."""

    sent: list[bytes] = field(default_factory=list)

    def command(
        self, executable: str, arguments: list[str], command_id: str | None = None, **_: Any
    ) -> ET.Element:
        assert executable == ""
        self.sent.extend(base64.b64decode(a) for a in arguments)
        root = ET.Element("Body")
        response = ET.SubElement(root, f"{{{NAMESPACES['rsp']}}}CommandResponse")
        ET.SubElement(response, f"{{{NAMESPACES['rsp']}}}CommandId").text = command_id
        return root

    def send(self, stream: str, data: bytes, command_id: str | None = None, **_: Any) -> None:
        assert stream == "stdin"
        self.sent.append(data)


def opened_pool(version: str, payload: int, *, quick: bool) -> tuple[Any, RecordingShell]:
    pool = RunspacePool(Connection(payload))
    if quick:
        quicken(pool)
    shell = RecordingShell()
    pool.shell = shell
    pool.protocol_version = version
    return pool, shell


@dataclass(frozen=True)
class Sent:
    """One message as its fragments carried it, the per-session ids apart."""

    object_ids: tuple[int, ...]
    framing: tuple[tuple[int, bool, bool, int], ...]  # fragment id, start, end, length
    destination: int
    message_type: int
    rpid: uuid.UUID
    pid: uuid.UUID
    data: bytes


def sent(fragments: list[bytes]) -> Sent:
    parts = [Fragment.unpack(f) for f in fragments]
    assert all(rest == b"" for _, rest in parts)
    frags = [f for f, _ in parts]
    whole = b"".join(f.data for f in frags)
    # MS-PSRP 2.2.1: Destination and MessageType (little-endian), RPID and
    # PID (GUIDs in .NET's byte order), then Data.
    destination, message_type = struct.unpack("<II", whole[:8])
    return Sent(
        object_ids=tuple(f.object_id for f in frags),
        framing=tuple((f.fragment_id, f.start, f.end, len(f.data)) for f in frags),
        destination=destination,
        message_type=message_type,
        rpid=uuid.UUID(bytes_le=whole[8:24]),
        pid=uuid.UUID(bytes_le=whole[24:40]),
        data=whole[40:],
    )


def pypsrp_reference(pipeline: Pipeline, version: str, payload: int) -> tuple[Sent, Any, Any]:
    """What pypsrp sends for the pipeline, built its own way from scratch."""
    pool, shell = opened_pool(version, payload, quick=False)
    ps = PowerShell(pool)
    for cmd in pipeline:
        ps.add_cmdlet(cmd.name)
        for key, value in cmd.params:
            ps.add_parameter(key, value)
        if cmd.end_of_statement:
            ps.add_statement()
    ps.begin_invoke()
    return sent(shell.sent), pool, ps


def ours(pipeline: Pipeline, version: str, payload: int) -> tuple[Sent, Any, Any]:
    pool, shell = opened_pool(version, payload, quick=True)
    ps = PowerShell(pool)
    begin_invoke(ps, pipeline)
    return sent(shell.sent), pool, ps


@pytest.fixture(autouse=True)
def cold_cache() -> None:
    clixml._CREATE_PIPELINE.clear()


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", sorted(PIPELINES))
# 500 kB: one fragment (WinRM's default); 600 bytes: several, the rest by Send.
@pytest.mark.parametrize("payload", [512000, 600])
def test_message_is_pypsrps_own(name: str, version: str, payload: int) -> None:
    pipeline = PIPELINES[name]
    expected, ref_pool, ref_ps = pypsrp_reference(pipeline, version, payload)
    for attempt in ("built", "from the cache"):
        got, pool, ps = ours(pipeline, version, payload)
        # Everything but the ids of this pool and pipeline is pypsrp's own.
        assert got.data == expected.data, attempt
        assert got.framing == expected.framing, attempt
        assert (got.destination, got.message_type) == (expected.destination, expected.message_type)
        assert got.message_type == MessageType.CREATE_PIPELINE
        assert len(got.object_ids) == len(expected.object_ids)
        # And those ids are this pool's and this pipeline's.
        assert got.rpid == uuid.UUID(pool.id) and expected.rpid == uuid.UUID(ref_pool.id)
        assert got.pid == uuid.UUID(ps.id) and expected.pid == uuid.UUID(ref_ps.id)
        assert set(got.object_ids) == {pool._fragmenter.outgoing_counter - 1}
        assert ps.state == ref_ps.state
        assert ps._command_id == ps.id and pool.pipelines[ps.id] is ps
    if payload < 1000:
        assert len(expected.framing) > 1, "the small payload must need several fragments"


def test_ids_are_set_aside_and_each_message_is_still_pypsrps_own() -> None:
    """A pipeline is serialised once per shape: other ids (as a Guid, as
    text, or inside text like the KVP filter's upper-case VMId) get the same
    bytes with their own ids, byte for byte what pypsrp builds for them,
    from one cache entry."""
    builders = {
        "restore": lambda vm, cp: cmds.restore_checkpoint(cp, vm),
        "remove": lambda vm, cp: cmds.remove_checkpoint(cp, vm, include_children=False),
        "facts": lambda vm, _cp: cmds.vm_facts(vm),
        "owner": lambda _vm, cp: cmds.checkpoint_owner(cp),
        "named after an id": lambda vm, cp: cmds.create_checkpoint(vm, f"{cp.upper()} <&> x"),
    }
    for name, build in builders.items():
        clixml._CREATE_PIPELINE.clear()
        for _ in range(3):
            vm, cp = str(uuid.uuid4()), str(uuid.uuid4())
            pipeline = build(vm, cp)
            expected, _, _ = pypsrp_reference(pipeline, "2.3", 512000)
            got, _, _ = ours(pipeline, "2.3", 512000)
            assert got.data == expected.data, name
            assert vm.encode() in got.data or cp.encode() in got.data
        assert len(clixml._CREATE_PIPELINE._data) == 1, name
    # Text that already holds a stand-in's is built as it is, not set aside.
    stand_in = clixml._stand_in(1)
    for odd in (str(stand_in), str(stand_in).upper(), stand_in, f"x {stand_in} y"):
        clixml._CREATE_PIPELINE.clear()
        pipeline = (Cmd("Get-VM", (("Id", odd),)), Cmd("Get-VMSnapshot", (("Id", VM),)))
        expected, _, _ = pypsrp_reference(pipeline, "2.3", 512000)
        assert ours(pipeline, "2.3", 512000)[0].data == expected.data
        assert len(clixml._CREATE_PIPELINE._data) == 0


def test_each_message_of_a_pool_gets_its_own_object_id() -> None:
    # MS-PSRP 2.2.4: the ObjectId numbers the messages a sender sends, so a
    # reused Data field must not reuse the framing of the last message.
    pool, shell = opened_pool("2.3", 512000, quick=True)
    first, second = PowerShell(pool), PowerShell(pool)
    begin_invoke(first, PIPELINES["list_checkpoints"])
    begin_invoke(second, PIPELINES["list_checkpoints"])
    a, b = (Fragment.unpack(f)[0] for f in shell.sent)
    assert b.object_id == a.object_id + 1
    assert a.data[40:] == b.data[40:]
    assert a.data[24:40] != b.data[24:40]  # each pipeline's PID


def test_the_cache_tells_apart_what_serialises_differently() -> None:
    pool, _ = opened_pool("2.3", 512000, quick=True)
    one = create_pipeline(pool, (Cmd("Get-VM", (("Count", 1),)),)).data
    true = create_pipeline(pool, (Cmd("Get-VM", (("Count", True),)),)).data
    listed = create_pipeline(pool, (Cmd("Get-VM", (("Count", [1]),)),)).data
    assert len({one, true, listed}) == 3
    assert b"<I32" in one and b"<B" in true
    assert create_pipeline(pool, (Cmd("Get-VM", (("Count", 1),)),)).data is one
    pool.protocol_version = "2.1"
    assert create_pipeline(pool, (Cmd("Get-VM", (("Count", 1),)),)).data != one


def test_the_cache_is_bounded() -> None:
    cache = clixml._Built(size=3)
    pool, _ = opened_pool("2.3", 512000, quick=True)
    for n in range(10):
        commands = (Cmd("Get-VM", (("Id", f"{n}"),)),)
        cache.data(
            clixml._key(pool, commands), partial(clixml.build_create_pipeline, pool, commands)
        )
    assert len(cache._data) == 3


class _Sent(Exception):
    """Stops `RunspacePool.open()` once its creationXml is built."""

    def __init__(self, creation_xml: bytes) -> None:
        super().__init__()
        self.creation_xml = creation_xml


@dataclass
class OpeningShell:
    """A WinRS whose Create keeps the creationXml (MS-PSRP 3.1.5.3.1) and
    goes no further: the negotiation that follows needs a host."""

    def open(self, _options: Any, open_content: ET.Element) -> None:
        raise _Sent(base64.b64decode(open_content.text or ""))


def opening_messages(pool: Any, **open_args: Any) -> list[Sent]:
    pool.shell = OpeningShell()
    with pytest.raises(_Sent) as sent_:
        pool.open(**open_args)
    rest, messages = sent_.value.creation_xml, []
    while rest:
        fragment, rest = Fragment.unpack(rest)
        messages.append(sent([fragment.pack()]))
    return messages


@pytest.mark.parametrize(
    ("settings", "open_args"),
    [
        ({}, {}),
        ({"min_runspaces": 1, "max_runspaces": 4}, {}),
        (
            {"thread_options": PSThreadOptions.REUSE_THREAD, "apartment_state": ApartmentState.MTA},
            {},
        ),
        ({}, {"application_arguments": {"Ticket": "CHG-1"}}),  # not kept: built each time
    ],
)
def test_pool_opening_messages_are_pypsrps_own(
    settings: dict[str, Any], open_args: dict[str, Any]
) -> None:
    clixml._OPENING.clear()
    expected = opening_messages(RunspacePool(Connection(512000), **settings), **open_args)
    assert [m.message_type for m in expected] == [
        MessageType.SESSION_CAPABILITY,
        MessageType.INIT_RUNSPACEPOOL,
    ]
    for attempt in ("built", "from the cache"):
        pool = quicken(RunspacePool(Connection(512000), **settings))
        got = opening_messages(pool, **open_args)
        # The Data is pypsrp's own; the header's RPID is this pool's.
        assert [(m.message_type, m.data, m.framing) for m in got] == [
            (m.message_type, m.data, m.framing) for m in expected
        ], attempt
        assert {m.rpid for m in got} == {uuid.UUID(pool.id)}
    assert len(clixml._OPENING._data) == (1 if open_args else 2)
