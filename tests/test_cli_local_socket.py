"""The CLI hands `checkpoint create`, `rollback` and `merge` to a running bot
of its config over a local socket (bot.cli.local_socket, bot.cli.local_server).

Real processes: the WinRM emulator serving HV01 of the demo estate, a
`checkpoint-bot worker` on SQLite with its queue, and the CLI as its own
process. What must hold:

- the CLI process does the command without importing the bot's libraries,
  and the record, the host and the output are what the CLI would have
  produced itself;
- errors, refusals and exit codes are the same either way;
- a request once sent is never run twice: a bot that dies after taking it
  leaves the CLI saying so (exit 3), and Ctrl-C leaves the job to the bot;
- only the bot's user can ask it, and the CLI talks only to its own user's bot;
- nothing listening (no bot, or a socket file a stopped bot left) means the
  CLI runs the command itself.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from bot.cli.local_server import LocalSocket, Taken, Unusable, Wire, bind, checked_directory
from bot.cli.local_socket import (
    OPERATIONS,
    PROTOCOL,
    SOCKET_ENV,
    HandedOffError,
    OtherVersion,
    Request,
    connect,
    peer_uid,
    socket_path,
)
from bot.devtools.emulator.pointing import EMULATOR_PASSWORD_ENV
from bot.inventory import demo_inventory_path
from tests.cli_support import Ran, invoke, run_reporting_heavy
from tests.multiproc_support import (
    CHECKPOINT_BOT,
    BotProc,
    Cluster,
    Proc,
    process_env,
    wait_until,
)
from tests.slack_support import BOT_TOKEN, SIGNING_SECRET, FakeSlackApi

# Another user's process: the system's interpreter (this one may live where
# that user cannot read, e.g. under /root), running standard-library code.
OTHER_PYTHON = "/usr/bin/python3"
ROOT_ONLY = pytest.mark.skipif(
    os.getuid() != 0 or not os.access(OTHER_PYTHON, os.X_OK),
    reason="switching users needs root and a system python3",
)
NOBODY = 65534


@dataclass
class Estate:
    """An emulated HV01, a config aimed at it, and where the bot listens."""

    cluster: Cluster
    config: Path
    env: dict[str, str]
    socket: Path

    def worker(self) -> Proc:
        proc = self.cluster.worker(self.config, self.env)
        proc.wait_for_output(r"from the CLI at ", timeout=30)
        return proc

    def serve(self, api: FakeSlackApi) -> BotProc:
        """The Slack bot (HTTP) on this config, its Web API `api`."""
        config = yaml.safe_load(self.config.read_text(encoding="utf-8"))
        config["slack"] = {"api_url": api.api_url, "team_ids": ["T0TEST"]}
        self.config.write_text(yaml.safe_dump(config), encoding="utf-8")
        env = {**self.env, "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET}
        return self.cluster.serve(self.config, env)

    def make_web01_a_domain_controller(self) -> Path:
        """Edit the inventory (a DC in a two-DC domain, which the policy
        refuses); its path."""
        inventory = self.cluster.workdir / "inventory.yaml"
        doc = yaml.safe_load(inventory.read_text(encoding="utf-8"))
        [web01] = [vm for vm in doc["vms"] if vm["name"] == "WEB01"]
        web01.update(roles=["domain_controller"], domain="corp.example")
        inventory.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        return inventory

    def cli(self, *args: str, env: dict[str, str] | None = None) -> Ran:
        return run_reporting_heavy(
            self.cluster.workdir, {**self.env, **(env or {})}, "--config", str(self.config), *args
        )

    def change(self, ref: str) -> dict[str, Any]:
        shown = self.cli("change", "show", ref, "--json")
        assert shown.code == 0, shown.stderr
        data: dict[str, Any] = json.loads(shown.stdout)
        return data


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # A socket's path is at most 107 bytes (unix(7)): pytest's tmp_path is too deep.
    found = Path(tempfile.mkdtemp(prefix="cb-"))
    yield found
    shutil.rmtree(found, ignore_errors=True)


@pytest.fixture
def estate(tmp_path: Path, short_dir: Path) -> Iterator[Estate]:
    with Cluster(tmp_path / "run") as cluster:
        inventory = cluster.workdir / "inventory.yaml"
        cluster.emulator(
            cluster.workdir / "commands.jsonl", inventory, "--host", "HV01", env=process_env()
        )
        config = cluster.workdir / "checkpoint-bot.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "inventory": str(inventory),
                    "database_url": f"sqlite:///{cluster.workdir / 'bot.db'}",
                    "hyperv": {"backend": "winrm", "call_timeout": "60s"},
                    "jobs": {"queue": "sqlite"},
                    "sweep": {"enabled": False},
                }
            ),
            encoding="utf-8",
        )
        env = process_env(XDG_RUNTIME_DIR=str(short_dir), CHECKPOINT_BOT_USER="alice")
        path = socket_path(config, env, cluster.workdir)
        assert path is not None
        ready = cluster.cli(config, env, "db", "upgrade")
        assert ready.returncode == 0, ready.stderr
        yield Estate(cluster, config, env, path)


def test_a_running_worker_takes_create_rollback_and_merge_from_a_light_cli(
    estate: Estate,
) -> None:
    worker = estate.worker()
    created = estate.cli("checkpoint", "create", "WEB01", "--reason", "KB5044284", "--json")
    assert created.code == 0, created.stderr
    assert created.heavy == []  # the bot did the work: nothing of it was imported here
    change = created.json()
    ref = change["ref"]
    assert change["state"] == "active"
    assert change["requester"] == "cli:alice"
    assert change["decision"]["verdict"] == "allow"
    assert f"{ref}: checkpoint of WEB01 on HV01 is running…" in created.stderr
    # The worker ran the job (its log), and the host holds the checkpoint.
    worker.wait_for_output(rf"\(create\) succeeded after \S+ \[change={ref} ", timeout=10)
    listed = estate.cli("checkpoint", "list", "--vm", "WEB01", "--json")
    assert (listed.code, listed.heavy) == (0, [])
    [found] = listed.json()["checkpoints"]
    assert (found["id"], found["change_ref"]) == (change["checkpoint_id"], ref)

    # A production VM's rollback waits for an approver (the shipped policy);
    # the approval runs in its own process, beside the bot, on one record.
    asked = estate.cli("checkpoint", "rollback", ref)
    assert (asked.code, asked.heavy) == (0, [])
    assert asked.stdout.startswith(f"{ref}: WAITING FOR APPROVAL — rollback WEB01 on HV01")
    approved = estate.cli("change", "approve", ref, env={"CHECKPOINT_BOT_USER": "bob"})
    assert approved.code == 0, approved.stderr
    assert estate.change(ref)["state"] == "rolled_back"
    merged = estate.cli("checkpoint", "merge", ref, "--json")
    assert (merged.code, merged.json()["state"], merged.heavy) == (0, "merged", [])
    assert estate.change(ref)["state"] == "merged"


def test_serve_answers_too_and_takes_its_socket_away_when_it_stops(estate: Estate) -> None:
    """The Slack bot is the process that runs in most deployments."""
    with FakeSlackApi() as api:
        bot = estate.serve(api)
        bot.proc.wait_for_output(rf"from the CLI at {estate.socket}", timeout=10)
        created = estate.cli("checkpoint", "create", "WEB01", "-r", "from a shell", "--json")
        assert (created.code, created.heavy, created.json()["state"]) == (0, [], "active")
        bot.proc.signal_group(signal.SIGTERM)
        wait_until(lambda: not bot.proc.alive(), 20, "serve to stop")
    assert not estate.socket.exists()
    # No bot now: the CLI does it itself, on the same record.
    merged = estate.cli("checkpoint", "merge", created.json()["ref"], "--json")
    assert merged.code == 0 and "sqlalchemy" in merged.heavy


def test_the_answer_is_the_one_the_cli_gives_itself(estate: Estate) -> None:
    """One request made here, the same made by a bot: the same words and code."""
    alone = {SOCKET_ENV: "off"}
    here = estate.cli("checkpoint", "create", "CORP-DC01", "--reason", "patch", env=alone)
    estate.worker()
    there = estate.cli("checkpoint", "create", "CORP-DC01", "--reason", "patch")
    assert "sqlalchemy" in here.heavy and there.heavy == []
    assert here.code == there.code == 1  # refused: a DC in a domain with two
    assert "REFUSED — checkpoint CORP-DC01 on HV01" in there.stdout
    assert there.stdout == here.stdout.replace("CHG-0001", "CHG-0002")

    for args, code in (
        (("checkpoint", "create", "NOPE", "--reason", "x"), 2),
        (("checkpoint", "create", "WEB01"), 2),  # no reason
        (("checkpoint", "create", "WEB01", "-r", "x", "--ttl", "soon"), 2),
        (("checkpoint", "create", "WEB01", "-r", "x", "--at", "soonish"), 2),
        (("checkpoint", "rollback", "CHG-9999"), 1),  # not found
        (("checkpoint", "merge", "CHG-0001"), 1),  # a refused change has nothing to merge
        (("checkpoint", "list", "--vm", "NOPE"), 2),
        (("checkpoint", "list", "web01"), 0),  # a VM's name: only its checkpoints
        (("checkpoint", "list", "NOPE"), 2),
        (("checkpoint", "list", "HV01", "--host", "HV01"), 2),  # named twice
        (("checkpoint", "create", "WEB01", "-r", ""), 2),  # an empty reason is no reason
        (("checkpoint", "create", "WEB01", "-r", "x" * 600), 2),  # too long, says the service
    ):
        by_bot, by_cli = estate.cli(*args), estate.cli(*args, env=alone)
        assert by_bot.heavy == [], args
        assert by_bot.code == by_cli.code == code, (args, by_bot.stderr, by_cli.stderr)
        assert by_bot.stderr == by_cli.stderr, args
        assert by_bot.stdout == by_cli.stdout, args
        assert by_bot.stderr.count("checkpoint-bot: error") == (1 if code else 0), by_bot.stderr
        assert "Traceback" not in by_bot.stderr

    # Only HV01 answers (HV02's and HV03's credentials are not set here):
    # the listing of what could be asked, then the hosts that could not,
    # exit 3, from the bot as from the CLI alone.
    by_bot, by_cli = estate.cli("checkpoint", "list"), estate.cli("checkpoint", "list", env=alone)
    assert by_bot.heavy == [] and by_bot.code == by_cli.code == 3
    assert by_bot.stdout == by_cli.stdout and "\n! HV02 could not be logged in to" in by_bot.stdout
    assert by_bot.stderr == by_cli.stderr
    # Said as the lines above say it: a credential not set is no outage.
    assert by_bot.stderr.rstrip() == (
        "checkpoint-bot: error: HV02, HV03 could not be logged in to: the list is incomplete"
    )


def test_with_no_bot_or_a_stale_socket_the_cli_does_it_itself(estate: Estate) -> None:
    # A socket file whose process is gone (a bot killed with -9).
    checked_directory(estate.socket)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(os.fspath(estate.socket))
    stale.close()
    done = estate.cli("checkpoint", "create", "WEB01", "-r", "no bot", "--json")
    assert done.code == 0, done.stderr
    assert done.json()["state"] == "active" and "sqlalchemy" in done.heavy
    # A bot started now replaces the stale file and answers.
    estate.worker()
    assert estate.cli("checkpoint", "merge", done.json()["ref"]).heavy == []
    # -v asks for this process's log: it runs here.
    verbose = estate.cli("-v", "checkpoint", "create", "WEB01", "-r", "verbose")
    assert verbose.code == 0 and "sqlalchemy" in verbose.heavy


def test_an_inventory_changed_since_the_bot_started_is_read_afresh(estate: Estate) -> None:
    """The CLI alone reads the files as they are; a bot read them at its
    start. An edit that makes a VM a domain controller must refuse its
    checkpoint at once: the bot declines, and the CLI decides on the file.
    The bot itself says, on its next tick, that it runs on the old copy."""
    worker = estate.worker()
    inventory = estate.make_web01_a_domain_controller()
    done = estate.cli("checkpoint", "create", "WEB01", "-r", "after the edit")
    assert "sqlalchemy" in done.heavy  # run here
    assert (
        "checkpoint-bot: the running bot read inventory.yaml before it last changed, so "
        "this command runs here (reload or restart the bot to give it the new one)"
    ) in done.stderr
    assert done.code == 1 and "REFUSED — checkpoint WEB01 on HV01" in done.stdout
    # One change recorded, by the CLI: the bot did nothing before declining.
    assert estate.change("CHG-0001")["state"] == "denied"
    assert estate.cli("change", "show", "CHG-0002").code == 1
    worker.wait_for_output(
        re.escape(f"{inventory} changed since this process read it: it decides on the old copy")
        + r" until it reloads \(SIGHUP\) or restarts",
        timeout=30,
    )


def test_ctrl_c_leaves_the_job_to_the_bot(estate: Estate) -> None:
    estate.worker()
    ref = estate.cli("checkpoint", "create", "WEB01", "-r", "x", "--json").json()["ref"]
    # A merge takes seconds on the host (it merges the disk): interrupt the wait.
    proc = subprocess.Popen(
        [CHECKPOINT_BOT, "--config", str(estate.config), "checkpoint", "merge", ref],
        cwd=estate.cluster.workdir,
        env=estate.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    assert "is running" in proc.stderr.readline()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert f"stopped waiting; {ref} goes on in the bot" in err
    wait_until(lambda: estate.change(ref)["state"] == "merged", 60, f"{ref} merged by the bot")


def test_a_bot_that_dies_after_taking_the_request_is_not_asked_again(
    estate: Estate,
) -> None:
    """The request may have been recorded: the CLI says so and runs nothing."""
    checked_directory(estate.socket)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(os.fspath(estate.socket))
    listener.listen(1)
    taken: list[bytes] = []

    def die_after_reading() -> None:
        conn, _ = listener.accept()
        taken.append(conn.recv(65536))
        conn.close()  # as a process killed here would

    thread = threading.Thread(target=die_after_reading)
    thread.start()
    done = estate.cli("checkpoint", "create", "WEB01", "-r", "once", "--json")
    thread.join(timeout=10)
    listener.close()
    assert Request.from_line(taken[0].rstrip(b"\n")).target == "WEB01"
    assert done.code == 3
    assert "the bot stopped answering after it took the request" in done.stderr
    assert done.heavy == []  # and it did not run the command itself
    # Nothing was recorded here either.
    missing = estate.cli("change", "show", "CHG-0001")
    assert (missing.code, missing.stderr) == (
        1,
        "checkpoint-bot: error: no change CHG-0001: no change has been recorded yet\n",
    )


# --- who may ask, and whom the CLI asks ---------------------------------------------


def _listen(path: Path, answered: list[Request]) -> LocalSocket:
    from templates import Renderer

    def answer(request: Request, wire: Wire) -> None:
        answered.append(request)
        wire.done(0)

    return LocalSocket(bind(path), path, answer, Renderer())


@ROOT_ONLY
def test_the_bot_refuses_another_user_even_through_an_open_socket(short_dir: Path) -> None:
    """Defence in depth: with its directory and file opened to everyone by
    mistake, the bot still answers only its own user (SO_PEERCRED)."""
    os.chmod(short_dir, 0o755)  # noqa: S103 (opened on purpose)
    path = short_dir / "bot.sock"
    answered: list[Request] = []
    local = _listen(path, answered)
    try:
        os.chmod(path, 0o666)  # noqa: S103 (opened on purpose)
        client = (
            "import socket, sys\n"
            "s = socket.socket(socket.AF_UNIX)\n"
            "s.connect(sys.argv[1])\n"
            # The bot refuses before reading: the request may meet a closed socket.
            "try:\n"
            "    s.sendall(sys.argv[2].encode() + b'\\n')\n"
            "except OSError:\n"
            "    pass\n"
            "print(s.makefile().readline())\n"
        )
        request = Request("create", "WEB01", "mallory").line().decode().strip()
        done = subprocess.run(
            [OTHER_PYTHON, "-c", client, str(path), request],
            user=NOBODY,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        reply = json.loads(done.stdout)
        assert reply == {
            "error": "this bot takes requests from its own user (uid 0) only",
            "code": 2,
            "stdout": "",
        }
        assert answered == []
    finally:
        local.close()
    assert not path.exists()


@ROOT_ONLY
def test_the_cli_asks_no_process_of_another_user(short_dir: Path) -> None:
    os.chmod(short_dir, 0o777)  # noqa: S103 (opened on purpose)
    path = short_dir / "other.sock"
    server = (
        "import os, socket, sys\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o666); s.listen(1)\n"
        "print('listening', flush=True)\n"
        "c, _ = s.accept(); c.recv(10)\n"
    )
    proc = subprocess.Popen(
        [OTHER_PYTHON, "-c", server, str(path)], user=NOBODY, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "listening\n"
        with pytest.raises(HandedOffError) as raised:
            connect(path)
        assert raised.value.code == 3
        assert f"held by another user's process (uid {NOBODY})" in str(raised.value)
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_the_bot_listens_only_in_a_directory_of_its_own(short_dir: Path) -> None:
    made = short_dir / "made" / "bot.sock"
    checked_directory(made)
    assert stat.S_IMODE(os.lstat(made.parent).st_mode) & 0o077 == 0
    open_dir = short_dir / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o777)  # noqa: S103 (opened on purpose)
    with pytest.raises(Unusable, match="other users can write in"):
        checked_directory(open_dir / "bot.sock")
    link = short_dir / "link"
    link.symlink_to(made.parent)
    with pytest.raises(Unusable, match="is not a directory"):
        checked_directory(link / "bot.sock")
    if os.getuid() == 0:
        theirs = short_dir / "theirs"
        theirs.mkdir(mode=0o700)
        os.chown(theirs, NOBODY, NOBODY)
        with pytest.raises(Unusable, match=f"belongs to uid {NOBODY}"):
            checked_directory(theirs / "bot.sock")


def test_a_second_bot_of_the_same_config_leaves_the_first_its_socket(short_dir: Path) -> None:
    path = short_dir / "bot.sock"
    answered: list[Request] = []
    first = _listen(path, answered)
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        with pytest.raises(Taken):
            bind(path)
        sock = connect(path)
        assert sock is not None and peer_uid(sock) == os.getuid()
        sock.sendall(Request("merge", "CHG-0001", "bob").line())
        assert json.loads(sock.makefile().readline()) == {"done": 0, "stdout": ""}
        sock.close()
        assert answered == [Request("merge", "CHG-0001", "bob")]
        # More than a request holds is refused, said, and never answered.
        sock = connect(path)
        assert sock is not None
        sock.sendall(b"x" * (300 * 1024))
        refused = json.loads(sock.makefile().readline())
        assert refused["code"] == 2 and refused["error"] == "the request is longer than 256 KiB"
        sock.close()
        assert len(answered) == 1
        # Nothing but this socket's own: no temporary names left behind.
        assert sorted(p.name for p in short_dir.iterdir()) == ["bot.sock"]
    finally:
        first.close()
    assert not path.exists()


def test_the_socket_is_derived_from_what_decides_the_record(tmp_path: Path) -> None:
    env = {"XDG_RUNTIME_DIR": "/run/user/1000"}
    config = tmp_path / "bot.yaml"
    one = socket_path(config, env, tmp_path)
    assert one is not None and one.parent == Path(f"/run/user/1000/checkpoint-bot-{os.getuid()}")
    assert socket_path(Path("bot.yaml"), env, tmp_path) == one  # relative to the cwd
    assert socket_path(None, {**env, "CHECKPOINT_BOT_CONFIG": str(config)}, tmp_path) == one
    # Another database, another working directory (the default SQLite file
    # lives there), another config: another bot.
    assert socket_path(config, {**env, "DATABASE_URL": "postgresql://db/x"}, tmp_path) != one
    assert socket_path(config, env, tmp_path / "elsewhere") != one
    assert socket_path(tmp_path / "other.yaml", env, tmp_path) != one
    assert socket_path(None, env, tmp_path) is None  # demo mode: none
    assert socket_path(config, {**env, SOCKET_ENV: "off"}, tmp_path) is None
    assert socket_path(config, {SOCKET_ENV: "/run/cb/cli.sock"}, tmp_path) == Path(
        "/run/cb/cli.sock"
    )
    assert len(os.fsencode(one)) < 108  # sun_path (unix(7))
    no_xdg = socket_path(config, {}, tmp_path)
    assert no_xdg is not None and no_xdg.parent == Path(f"/tmp/checkpoint-bot-{os.getuid()}")


# --- the request line: a parser, so property tests ---------------------------------------

_TEXT = st.text(max_size=60)
# A name the CLI would send: one word of printable characters, at most 64.
_OPERATOR = st.text(
    st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp")),
    max_size=64,
).filter(lambda name: all(c.isprintable() and not c.isspace() for c in name))
REQUESTS = st.builds(
    Request,
    op=st.sampled_from(OPERATIONS),
    target=st.none() | _TEXT,
    user=_OPERATOR,
    as_json=st.booleans(),
    no_wait=st.booleans(),
    colour=st.booleans(),
    reason=st.none() | _TEXT,
    checkpoint_type=st.none() | _TEXT,
    ttl=st.none() | _TEXT,
    at=st.none() | _TEXT,
    vm=st.none() | _TEXT,
    host=st.none() | _TEXT,
).filter(lambda r: r.op == "list" or r.target is not None)


@given(REQUESTS)
def test_a_request_reads_back_as_sent(request: Request) -> None:
    line = request.line()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert Request.from_line(line.rstrip(b"\n")) == request


@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_line_is_a_request_or_one_clear_error(line: bytes) -> None:
    try:
        Request.from_line(line)
    except ValueError as exc:
        assert str(exc)


@given(
    st.dictionaries(
        st.sampled_from(["v", "op", "target", "user", "as_json", "reason", "extra"]),
        st.none() | st.booleans() | st.integers() | _TEXT | st.lists(st.integers(), max_size=2),
    )
)
def test_a_request_of_the_wrong_shape_is_refused_with_why(data: dict[str, Any]) -> None:
    line = json.dumps(data).encode()
    try:
        request = Request.from_line(line)
    except ValueError as exc:
        assert str(exc)
        return
    assert request.op in OPERATIONS and isinstance(request.target, str)


def test_a_request_of_another_version_says_what_to_do() -> None:
    for version in (PROTOCOL - 1, PROTOCOL + 1, None):
        line = json.dumps({"v": version, "op": "create", "target": "WEB01", "user": "a"})
        with pytest.raises(
            OtherVersion, match=re.escape("so this command runs here (restart the bot")
        ):
            Request.from_line(line.encode())
    with pytest.raises(ValueError, match="target must be a str"):
        Request.from_line(
            json.dumps({"v": PROTOCOL, "op": "merge", "target": 7, "user": "a"}).encode()
        )
    with pytest.raises(ValueError, match="the request has no target for merge"):
        Request.from_line(json.dumps({"v": PROTOCOL, "op": "merge", "user": "a"}).encode())


def test_a_bot_declines_a_cli_of_another_version_unread(estate: Estate) -> None:
    """A CLI upgraded before the bot restarted (or the other way round):
    the bot does nothing and says so, and such a CLI runs the command itself."""
    estate.worker()
    old = {"v": PROTOCOL - 1, "op": "list", "target": "WEB01", "user": "alice"}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(os.fspath(estate.socket))
        sock.sendall(json.dumps(old).encode() + b"\n")
        reply = json.loads(sock.makefile("rb").readline())
    assert set(reply) == {"declined"}
    assert f"reads requests of version {PROTOCOL}" in reply["declined"]
    # Nothing was recorded: the bot never read the request as a command.
    assert estate.cli("change", "show", "CHG-0001").code == 1


def test_sighup_starts_the_worker_again_on_the_edited_files(estate: Estate) -> None:
    """A reload (docs/operations.md): the files are checked, the worker
    stops as on SIGTERM and starts again in the same process, on them."""
    worker = estate.worker()
    estate.make_web01_a_domain_controller()
    os.kill(worker.pid, signal.SIGHUP)
    worker.wait_for_output(r"the files check out: stopping, then starting again on them", 30)
    wait_until(
        lambda: len(re.findall(r"worker \S+: running jobs", worker.output())) == 2,
        60,
        "the worker to start again",
    )
    assert worker.alive()  # the same process: systemd's main PID does not change
    # The bot takes the CLI's request again, and decides on the new inventory.
    refused = estate.cli("checkpoint", "create", "WEB01", "-r", "after the reload")
    assert refused.heavy == [], refused.stderr
    assert refused.code == 1 and "REFUSED — checkpoint WEB01 on HV01" in refused.stdout


def test_sighup_with_a_broken_file_keeps_the_worker_on_what_it_read(estate: Estate) -> None:
    worker = estate.worker()
    inventory = estate.cluster.workdir / "inventory.yaml"
    inventory.write_text(inventory.read_text(encoding="utf-8") + "hosts: [\n", encoding="utf-8")
    os.kill(worker.pid, signal.SIGHUP)
    worker.wait_for_output(
        r"not reloaded, still running on the files it last loaded: \S*inventory.yaml:\d+: ", 30
    )
    assert worker.alive()
    assert len(re.findall(r"worker \S+: running jobs", worker.output())) == 1
    # Still answering: the CLI is told the files changed and runs the
    # command itself, where the broken file is one line and exit 2.
    done = estate.cli("checkpoint", "create", "WEB01", "-r", "x")
    assert "the running bot read inventory.yaml before it last changed" in done.stderr
    assert done.code == 2 and "inventory.yaml" in done.stderr.splitlines()[-1]


def test_sighup_refuses_an_edit_that_makes_a_credential_unreadable(estate: Estate) -> None:
    """docs/operations.md: a reload checks every credential the inventory
    names (seen: `password_env: NO_SUCH_VAR` reloaded, and HV01's first call
    failed); one already unreadable at start (HV02, HV03 here) stops nothing."""
    worker = estate.worker()
    inventory = estate.cluster.workdir / "inventory.yaml"
    text = inventory.read_text(encoding="utf-8")
    inventory.write_text(
        text.replace(f"password_env: {EMULATOR_PASSWORD_ENV}", "password_env: NO_SUCH_VAR", 1),
        encoding="utf-8",
    )
    os.kill(worker.pid, signal.SIGHUP)
    worker.wait_for_output(
        r"not reloaded, still running on the files it last loaded: inventory inventory.yaml: "
        r"a host's credential cannot be read: HV01: no password: \$NO_SUCH_VAR is not set",
        30,
    )
    assert worker.alive()
    assert len(re.findall(r"worker \S+: running jobs", worker.output())) == 1


def test_sighup_starts_serve_again_as_sigterm_stops_it(estate: Estate) -> None:
    with FakeSlackApi() as api:
        bot = estate.serve(api)
        os.kill(bot.proc.pid, signal.SIGHUP)
        bot.proc.wait_for_output(r"the files check out", timeout=30)
        wait_until(
            lambda: len(re.findall(r"over HTTP on http://", bot.proc.output())) == 2,
            60,
            "serve to start again",
        )
        assert bot.proc.alive()
        created = estate.cli("checkpoint", "create", "WEB01", "-r", "after the reload", "--json")
        assert (created.code, created.heavy, created.json()["state"]) == (0, [], "active")


def test_a_burst_of_sighups_never_ends_the_worker(estate: Estate) -> None:
    """SIGHUP's default action ends a process: while the worker starts again
    it is ignored, and a handler that runs again inside itself holds no
    lock to wait for."""
    worker = estate.worker()
    for _ in range(12):
        os.kill(worker.pid, signal.SIGHUP)
        time.sleep(0.1)
    worker.wait_for_output(r"the files check out", 30)
    wait_until(
        lambda: len(re.findall(r"worker \S+: running jobs", worker.output())) >= 2,
        60,
        "the worker to start again",
    )
    for _ in range(5):  # and again, now that it runs
        os.kill(worker.pid, signal.SIGHUP)
    wait_until(
        lambda: len(re.findall(r"worker \S+: running jobs", worker.output())) >= 3,
        60,
        "the worker to start again once more",
    )
    time.sleep(1)
    assert worker.alive(), worker.tail()
    listed = estate.cli("checkpoint", "list", "--vm", "WEB01", "--json")
    assert listed.code == 0 and listed.heavy == [], listed.stderr  # the bot answers


def test_a_bot_on_simulated_hosts_says_so_to_the_cli_it_answers(estate: Estate) -> None:
    """A config that chose the simulator makes every command say so first;
    a command the running bot answers says it too, though this process
    never reads the settings (seen: no banner when a worker ran)."""
    config = yaml.safe_load(estate.config.read_text(encoding="utf-8"))
    config["hyperv"] = {"backend": "simulator"}
    estate.config.write_text(yaml.safe_dump(config), encoding="utf-8")
    estate.worker()
    listed = estate.cli("checkpoint", "list", "--json")
    assert (listed.code, listed.heavy) == (0, [])  # the bot answered it
    assert listed.stderr.splitlines()[0] == (
        f"checkpoint-bot: SIMULATED HOSTS — {estate.config} sets hyperv.backend: simulator; "
        "nothing here touches a real Hyper-V host."
    )


def test_a_bot_on_simulated_hosts_says_so_in_every_slack_message(estate: Estate) -> None:
    """Seen: a deployment whose config chose the simulator posted "taken"
    checkpoints to Slack with no word that no real host was touched (its CLI
    said SIMULATED HOSTS). Every message of its own (a thread's root, not
    its replies) carries the footer now."""
    with FakeSlackApi() as api:
        config = yaml.safe_load(estate.config.read_text(encoding="utf-8"))
        config["hyperv"] = {"backend": "simulator"}
        config["slack"] = {
            "api_url": api.api_url,
            "team_ids": ["T0TEST"],
            "changes_channel": "C0CHANGES",
        }
        estate.config.write_text(yaml.safe_dump(config), encoding="utf-8")
        secrets = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET}
        bot = estate.cluster.serve(estate.config, {**estate.env, **secrets})
        bot.proc.wait_for_output(r"every message says so", timeout=30)
        bot.proc.wait_for_output(rf"from the CLI at {estate.socket}", timeout=10)
        created = estate.cli("checkpoint", "create", "WEB01", "-r", "on the simulator", "--json")
        assert (created.code, created.json()["state"]) == (0, "active"), created.stderr

        def messages(calls: list[Any]) -> list[Any]:
            return [c for c in calls if c.method in ("chat.postMessage", "chat.update")]

        api.wait_for(
            lambda calls: any(
                str(c.body.get("text", "")).endswith("active") for c in messages(calls)
            )
        )
        posted = messages(api.calls)
        bot.proc.signal_group(signal.SIGTERM)
        wait_until(lambda: not bot.proc.alive(), 20, "serve to stop")
    footer = (
        "Simulated Hyper-V hosts (hyperv.backend: simulator): nothing here touches a real host."
    )
    # A thread's replies sit under its root, which carries the footer (as
    # in demo mode); every message of its own carries it.
    own = [c for c in posted if "thread_ts" not in c.body]
    assert own
    for call in own:
        assert footer in json.dumps(call.body.get("blocks", []), ensure_ascii=False), call


@pytest.mark.parametrize(
    ("user", "said"),
    [
        ("x y", "the operator name 'x y' has a space or a control character: use one word"),
        ("a\x1b]0;pwned\x07", "has a space or a control character: use one word"),
        ("A" * 65, "the operator name is 65 characters long: at most 64"),
    ],
)
def test_a_request_names_an_operator_the_cli_alone_would_accept(user: str, said: str) -> None:
    """Seen: a raw client of the socket recorded a requester with escape
    codes, which `change show` then printed to whoever read it; the CLI
    alone refuses such a name (CHECKPOINT_BOT_USER)."""
    line = json.dumps({"v": PROTOCOL, "op": "create", "target": "WEB01", "user": user})
    with pytest.raises(ValueError, match=re.escape(said)):
        Request.from_line(line.encode())


@ROOT_ONLY
def test_a_socket_directory_another_user_made_first_is_passed_over(tmp_path: Path) -> None:
    """Seen: another user made /tmp/checkpoint-bot-<uid>/ first and listened
    at the bot's socket name in it; every `checkpoint create` and `list` of
    this user then failed (exit 3). Nothing is sent there: the command runs
    here, and says why once."""
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # noqa: S103 (a /tmp-like directory, on purpose)
    squatted = shared / f"checkpoint-bot-{os.getuid()}"
    squatted.mkdir()
    os.chown(squatted, NOBODY, NOBODY)
    config = tmp_path / "bot.yaml"
    config.write_text(
        f"inventory: {demo_inventory_path()}\nhyperv: {{backend: simulator}}\n", encoding="utf-8"
    )
    env = {"XDG_RUNTIME_DIR": str(shared)}
    assert invoke(tmp_path, "-c", "bot.yaml", "db", "upgrade", env=env).returncode == 0
    listed = invoke(tmp_path, "-c", "bot.yaml", "checkpoint", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert (
        f"checkpoint-bot: not asking a running bot: {squatted} belongs to uid {NOBODY}, "
        "not to this user; running it here"
    ) in listed.stderr.splitlines()
    assert json.loads(listed.stdout)["checkpoints"] == []
