"""The host model's state stores: JSON round trip, transactional edit, serialized writers."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy.engine import Engine

from bot.devtools.hostmodel import (
    CheckpointType,
    HostStateStore,
    InMemoryHostStateStore,
    SnapshotType,
    SqlHostStateStore,
    UnknownHost,
    VMState,
)
from bot.devtools.hostmodel.state import (
    HostState,
    ModelCheckpoint,
    ModelDisk,
    ModelGuest,
    ModelMerge,
    ModelVM,
    ModelVolume,
)
from bot.store.db import make_engine

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _state(host: str = "HV01") -> HostState:
    state = HostState(host=host)
    state.volumes["D:\\"] = ModelVolume("D:\\", 100, 10)
    state.vms["vm-1"] = ModelVM(
        vm_id="vm-1",
        name="WEB01",
        state=VMState.Running,
        checkpoint_type=CheckpointType.ProductionOnly,
        volume_path="D:\\",
        automatic_checkpoints=True,
        guest=ModelGuest(product_type=2, vss=False),
        disks=(
            ModelDisk(path="D:\\a.vhdx", shared=True),
            ModelDisk(path="Disk 2", passthrough=True, disk_number=2),
        ),
        started_at=NOW,
    )
    state.checkpoints["cp-1"] = ModelCheckpoint(
        id="cp-1",
        vm_id="vm-1",
        name="a",
        parent_id=None,
        created_at=NOW,
        snapshot_type=SnapshotType.Standard,
        captured_state=VMState.Off,
        path="D:\\Hyper-V\\WEB01\\Snapshots",
        seq=1,
        avhdx_bytes=7,
    )
    state.merges.append(ModelMerge("vm-1", "D:\\", 3, NOW))
    state.as_of = NOW
    return state


def test_state_round_trips_through_json() -> None:
    import json

    state = _state()
    again = HostState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert again == state
    assert again.checkpoints["cp-1"].created_at.tzinfo is not None
    assert again.checkpoints["cp-1"].captured_state is VMState.Off
    assert again.vms["vm-1"].checkpoint_type is CheckpointType.ProductionOnly
    assert again.vms["vm-1"].automatic_checkpoints is True
    assert again.vms["vm-1"].guest.vss is False


@pytest.fixture(params=["memory", "sql"])
def store(request: pytest.FixtureRequest) -> HostStateStore:
    if request.param == "memory":
        return InMemoryHostStateStore()
    engine: Engine = request.getfixturevalue("sqlite_engine")
    return SqlHostStateStore(engine)


def test_seed_read_edit_hosts(store: HostStateStore) -> None:
    with pytest.raises(UnknownHost):
        store.read("HV01")
    store.seed(_state("HV02"))
    store.seed(_state("HV01"))
    assert store.hosts() == ["HV01", "HV02"]
    with store.edit("HV01") as state:
        state.vms["vm-1"].name = "RENAMED"
    assert store.read("HV01").vms["vm-1"].name == "RENAMED"
    assert store.read("HV02").vms["vm-1"].name == "WEB01"
    store.seed(_state("HV01"))  # replaces
    assert store.read("HV01").vms["vm-1"].name == "WEB01"


def test_edit_discards_on_exception(store: HostStateStore) -> None:
    store.seed(_state())
    with pytest.raises(RuntimeError), store.edit("HV01") as state:
        state.vms.clear()
        raise RuntimeError("boom")
    assert "vm-1" in store.read("HV01").vms
    with pytest.raises(UnknownHost), store.edit("nope"):
        pass


def test_reads_are_detached_copies(store: HostStateStore) -> None:
    store.seed(_state())
    store.read("HV01").vms.clear()
    assert "vm-1" in store.read("HV01").vms


def _bump(store: HostStateStore, times: int) -> None:
    for _ in range(times):
        with store.edit("HV01") as state:
            volume = state.volumes["D:\\"]
            seen = volume.used_bytes
            # Widen the race window: a lost update would show up here.
            threading.Event().wait(0.001)
            volume.used_bytes = seen + 1


def _in_threads(target: Callable[[], None], count: int) -> None:
    threads = [threading.Thread(target=target) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_memory_store_serializes_threads() -> None:
    store = InMemoryHostStateStore()
    store.seed(_state())
    _in_threads(lambda: _bump(store, 25), 4)
    assert store.read("HV01").volumes["D:\\"].used_bytes == 10 + 100


def test_sql_store_serializes_threads(engine: Engine) -> None:
    store = SqlHostStateStore(engine)
    store.seed(_state())
    _in_threads(lambda: _bump(store, 10), 4)
    assert store.read("HV01").volumes["D:\\"].used_bytes == 10 + 40


def _bump_in_process(url: str, times: int) -> None:
    engine = make_engine(url)
    try:
        _bump(SqlHostStateStore(engine), times)
    finally:
        engine.dispose()


def test_sql_store_serializes_processes(db_url: str) -> None:
    engine = make_engine(db_url)
    store = SqlHostStateStore(engine)
    store.seed(_state())
    engine.dispose()  # no pooled connections cross the fork
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_bump_in_process, args=(db_url, 10)) for _ in range(3)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    assert store.read("HV01").volumes["D:\\"].used_bytes == 10 + 30
    engine.dispose()
