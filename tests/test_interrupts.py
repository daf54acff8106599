"""Stopping signals (Ctrl-C, SIGTERM) and the main thread (bot/interrupts.py).

A signal taken in the middle of a database transaction. Seen: Ctrl-C on
`checkpoint create` while its job ran (the CLI polls the job's row every
10 ms) sometimes did not stop it within 30 s. The
interrupt had landed half-way into the poll's transaction: SQLite's
`BEGIN IMMEDIATE` had run and SQLAlchemy had not yet recorded it, so the
transaction stayed open with the write lock, and the command's next
transaction (its close, asking which jobs it leaves running) waited for
it; other times the interrupt came out as SQLAlchemy's
PendingRollbackError. Here a real SIGINT is sent to this process at random
moments while its main thread runs transactions on a real SQLite file.

A signal another thread took while the main thread waits (for hosts, for
an export's next batch, for a running bot's answer): Python runs the
handler only in the main thread, which an untimed wait kept asleep. Here
the signal is sent to another thread on purpose."""

from __future__ import annotations

import os
import random
import signal
import socket
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from bot.cli.local_socket import Request, converse
from bot.hyperv.fanout import ask_hosts
from bot.interrupts import interrupts_held
from bot.service.audit import _read_ahead
from bot.store.db import make_engine, session_scope
from tests.signal_support import seconds_to_see_a_signal_another_thread_took

TRIALS = 150


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'record.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    yield engine
    engine.dispose()


def _write_lock_free(path: str) -> bool:
    probe = sqlite3.connect(path, timeout=0.2, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        probe.close()


def test_ctrl_c_during_transactions_is_an_interrupt_and_leaves_none_open(
    engine: Engine,
) -> None:
    assert threading.current_thread() is threading.main_thread()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    path = str(engine.url.database)
    rng = random.Random(20261206)
    for trial in range(TRIALS):
        timer = threading.Timer(
            rng.uniform(0.0005, 0.01), lambda: os.kill(os.getpid(), signal.SIGINT)
        )
        try:
            # Inside the try: on a loaded machine the signal can come
            # before the first transaction.
            timer.start()
            while True:
                with session_scope(engine) as s:
                    s.exec(text("SELECT count(*) FROM t")).one()  # type: ignore[call-overload]
                    s.exec(text("INSERT INTO t VALUES (1)"))  # type: ignore[call-overload]
        except KeyboardInterrupt:
            pass
        finally:
            timer.join()
        assert _write_lock_free(path), f"trial {trial}: a transaction was left open"


def test_a_signal_inside_the_block_is_handled_as_it_ends() -> None:
    seen: list[str] = []

    def handler(signum: int, _frame: object) -> None:
        seen.append(f"handled {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        with interrupts_held():
            signal.raise_signal(signal.SIGTERM)
            seen.append("block ended")
        seen.append("after")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen == ["block ended", "handled SIGTERM", "after"]
    assert signal.getsignal(signal.SIGTERM) is previous


def test_ctrl_c_inside_the_block_raises_as_it_ends() -> None:
    ended = False
    with pytest.raises(KeyboardInterrupt), interrupts_held():
        signal.raise_signal(signal.SIGINT)
        ended = True
    assert ended
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_outside_the_main_thread_nothing_is_held() -> None:
    handlers: list[object] = []

    def look() -> None:
        with interrupts_held():
            handlers.append(signal.getsignal(signal.SIGINT))

    other = threading.Thread(target=look)
    other.start()
    other.join()
    assert handlers == [signal.default_int_handler]


def test_a_signal_without_a_python_handler_keeps_its_disposition() -> None:
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        with interrupts_held():
            inside = signal.getsignal(signal.SIGTERM)
            signal.raise_signal(signal.SIGTERM)  # ignored, as outside
        after = signal.getsignal(signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert inside == after == signal.SIG_IGN


# --- a signal another thread took, while the main thread waits ----------------------


def test_asking_hosts_sees_a_ctrl_c_while_one_host_takes_its_time() -> None:
    """`checkpoint list` waits for every host's answer; a host that never
    answered held a Ctrl-C taken by another thread until its call's
    deadline (`hyperv.call_timeout`)."""
    asked, answer = threading.Event(), threading.Event()

    def operation(name: str) -> str:
        if name == "HV02":
            asked.set()
            answer.wait()
        return name

    took = seconds_to_see_a_signal_another_thread_took(
        lambda: ask_hosts(lambda n: n, ["HV01", "HV02"], operation, fanout=2),  # type: ignore[arg-type, return-value]
        asked.wait,
        answer.set,
    )
    assert took < 1.0, f"the main thread took {took:.1f} s to see the signal"


def test_an_audit_export_sees_a_ctrl_c_while_the_server_computes() -> None:
    """`audit export` on PostgreSQL reads the next batch in a thread while
    it writes the last (`_read_ahead`); it waited for that batch on a queue
    without a timeout, where a signal taken by another thread was seen only
    once the batch came."""
    computing, computed = threading.Event(), threading.Event()

    def batches() -> Iterator[list[int]]:
        yield [1]
        computing.set()
        # The batch in flight is fetched before the export stops (the
        # cursor is the reader's until then); the signal is seen at once.
        computed.wait(2.0)
        yield [2]

    def export() -> list[list[int]]:
        return list(_read_ahead(batches()))

    took = seconds_to_see_a_signal_another_thread_took(export, computing.wait, computed.set)
    assert took < 1.0, f"the main thread took {took:.1f} s to see the signal"


def test_a_cli_handed_to_a_running_bot_sees_a_ctrl_c_while_the_bot_works() -> None:
    """The light CLI waits for the bot's answer on a Unix socket; a job can
    take minutes."""
    ours, bots = socket.socketpair()
    reading, answered = threading.Event(), threading.Event()

    def bot_side() -> None:
        bots.recv(1 << 16)  # the request
        reading.set()
        answered.wait()
        bots.close()

    bot = threading.Thread(target=bot_side, daemon=True)
    bot.start()
    request = Request(op="list", target=None, user="alice")

    took = seconds_to_see_a_signal_another_thread_took(
        lambda: converse(ours, request), reading.wait, answered.set
    )
    bot.join()
    assert took < 1.0, f"the main thread took {took:.1f} s to see the signal"
