"""What the CLI writes, and what it says it did: `inventory discover --out`
never replaces a file unasked, `audit export --output` writes only a regular
file, `emulator --port` on a taken port, the operator's name, and the words
of a rollback or a withdrawal the change's state does not allow."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from bot.changes import State
from bot.inventory import demo_inventory_path, load_inventory
from bot.service import Conflict
from bot.service.errors import not_now
from tests.cli_support import invoke, one_line_error

# -- inventory discover --out ---------------------------------------------------


def test_discover_refuses_to_replace_an_existing_file_unless_forced(tmp_path: Path) -> None:
    target = tmp_path / "inventory.yaml"
    shutil.copy(demo_inventory_path(), target)
    before = target.read_bytes()
    refused = invoke(tmp_path, "inventory", "discover", "--out", str(target))
    assert refused.returncode == 2
    assert one_line_error(refused) == (
        f"checkpoint-bot: error: {target} exists: pass --force to replace it, or --merge "
        f"{target} to update it (keeping its groups, tags, owners and roles)"
    )
    assert target.read_bytes() == before and refused.stdout == ""
    # Another file merged into an existing --out replaces it just the same.
    source = tmp_path / "source.yaml"
    shutil.copy(demo_inventory_path(), source)
    other = invoke(tmp_path, "inventory", "discover", "--merge", str(source), "--out", str(target))
    assert other.returncode == 2
    assert f"{target} exists: pass --force" in one_line_error(other)
    assert target.read_bytes() == before
    # Merged into itself, it is an update (exit 0), not a replacement.
    in_place = invoke(
        tmp_path, "inventory", "discover", "--merge", str(target), "--out", str(target)
    )
    assert in_place.returncode == 0, in_place.stderr
    forced = invoke(tmp_path, "inventory", "discover", "--out", str(target), "--force")
    assert forced.returncode == 0, forced.stderr
    assert f"Wrote {target}." in forced.stdout
    assert all(vm.roles_unknown for vm in load_inventory(target).vms)


def _with_a_silent_host(tmp_path: Path) -> dict[str, str]:
    """A deployment of the demo estate plus HV09, which no host model holds:
    the simulator answers for HV01-HV03 and cannot reach HV09."""
    inventory = yaml.safe_load(demo_inventory_path().read_text(encoding="utf-8"))
    inventory["hosts"].append({"name": "HV09", "address": "hv09.corp.example"})
    (tmp_path / "inventory.yaml").write_text(yaml.safe_dump(inventory), encoding="utf-8")
    (tmp_path / "config.yaml").write_text(
        f"inventory: inventory.yaml\ndatabase_url: 'sqlite:///{tmp_path / 'bot.db'}'\n"
        "hyperv: {backend: simulator}\n",
        encoding="utf-8",
    )
    assert invoke(tmp_path, "-c", "config.yaml", "db", "upgrade").returncode == 0
    return {"CHECKPOINT_BOT_CONFIG": str(tmp_path / "config.yaml")}


def test_discover_writes_nothing_when_no_host_answers(tmp_path: Path) -> None:
    _with_a_silent_host(tmp_path)
    kept = tmp_path / "kept.yaml"
    kept.write_text("# what was here\n", encoding="utf-8")
    for args in (
        ("--out", str(kept), "--force"),
        ("--out", str(tmp_path / "new.yaml")),
        (),  # to stdout
        ("--json",),
    ):
        result = invoke(
            tmp_path, "-c", "config.yaml", "inventory", "discover", "--host", "HV09", *args
        )
        assert result.returncode == 3, result.stderr
        said = one_line_error(result)
        assert said.startswith("checkpoint-bot: error: no host answered (HV09: ")
        assert said.endswith("nothing was written")
        assert result.stdout == ""
    assert kept.read_text(encoding="utf-8") == "# what was here\n"
    assert not (tmp_path / "new.yaml").exists()


def test_a_new_inventory_without_a_hosts_vms_never_says_they_were_left(tmp_path: Path) -> None:
    _with_a_silent_host(tmp_path)
    out = tmp_path / "new.yaml"
    out.write_text("vms: []\n", encoding="utf-8")
    result = invoke(
        tmp_path, "-c", "config.yaml", "inventory", "discover", "--out", str(out), "--force"
    )
    assert result.returncode == 3
    assert one_line_error(result) == (
        f"checkpoint-bot: error: HV09 could not be asked; {out} has none of their VMs"
    )
    assert f"Wrote {out}." in result.stdout
    assert len(load_inventory(out).vms) == 19
    printed = invoke(tmp_path, "-c", "config.yaml", "inventory", "discover")
    assert printed.returncode == 3
    assert "HV09 could not be asked; the inventory printed has none" in one_line_error(printed)
    # A merge keeps the silent host's VMs as they were, and says so.
    merged = invoke(
        tmp_path, "-c", "config.yaml", "inventory", "discover", "--merge", "inventory.yaml"
    )
    assert merged.returncode == 3
    assert "their VMs were left as they were" in one_line_error(merged)


# -- audit export --output ------------------------------------------------------


def test_audit_export_to_a_missing_directory_is_bad_input(tmp_path: Path) -> None:
    result = invoke(tmp_path, "audit", "export", "--output", str(tmp_path / "no" / "x.jsonl"))
    assert result.returncode == 2
    assert one_line_error(result) == (
        f"checkpoint-bot: error: {tmp_path / 'no'} does not exist: create it first, or name "
        "a file elsewhere"
    )


def test_audit_export_writes_only_a_regular_file(tmp_path: Path) -> None:
    assert invoke(tmp_path, "checkpoint", "create", "APP01", "-r", "one").returncode == 0
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    refused = invoke(tmp_path, "audit", "export", "-o", str(fifo))
    assert refused.returncode == 2
    assert f"{fifo} is a named pipe (FIFO)" in one_line_error(refused)
    assert fifo.is_fifo() and not list(tmp_path.glob("*.partial"))
    via = tmp_path / "to-pipe"
    via.symlink_to(fifo)
    through = invoke(tmp_path, "audit", "export", "-o", str(via))
    assert through.returncode == 2
    assert f"{fifo} ({via} points to it) is a named pipe" in one_line_error(through)
    assert via.is_symlink() and fifo.is_fifo()
    # A symlink to a regular file: the file is written, the link stays a link.
    real = tmp_path / "exports" / "audit.jsonl"
    real.parent.mkdir()
    real.write_text("old\n", encoding="utf-8")
    link = tmp_path / "audit.jsonl"
    link.symlink_to(real)
    wrote = invoke(tmp_path, "audit", "export", "-o", str(link))
    assert wrote.returncode == 0, wrote.stderr
    assert link.is_symlink() and link.resolve() == real.resolve()
    assert '"vm": "APP01"' in real.read_text(encoding="utf-8")
    assert f"wrote {real} (through {link})" in wrote.stderr
    assert not list(tmp_path.rglob("*.partial"))


# A user the tests' root gives files to: another local user, as on a shared host.
NOBODY = 65534
_as_root = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="needs root to give a file to another user (os.lchown)",
)


def _secret(tmp_path: Path) -> Path:
    """A file only its owner (root, as the tests run) may read or write."""
    secret = tmp_path / "secret"
    secret.write_text("root only\n", encoding="utf-8")
    secret.chmod(0o600)
    return secret


def _sticky(tmp_path: Path) -> Path:
    """A world-writable sticky directory, as /tmp is (mode 1777)."""
    shared = tmp_path / "xdg"
    shared.mkdir()
    shared.chmod(0o1777)
    return shared


@_as_root
@pytest.mark.parametrize("where", ["sticky", "theirs"])
def test_audit_export_does_not_follow_another_users_symlink(tmp_path: Path, where: str) -> None:
    """The reviewer's case: another user's symlink, in /tmp or in a directory
    of theirs, names the file the export replaces (here a root-only one)."""
    assert invoke(tmp_path, "checkpoint", "create", "APP01", "-r", "one").returncode == 0
    secret = _secret(tmp_path)
    if where == "sticky":
        place = _sticky(tmp_path)
    else:
        place = tmp_path / "home-of-nobody"
        place.mkdir()
        os.chown(place, NOBODY, NOBODY)
    link = place / "audit.csv"
    link.symlink_to(secret)
    os.lchown(link, NOBODY, NOBODY)
    before = secret.stat()
    refused = invoke(tmp_path, "audit", "export", "--format", "csv", "--output", str(link))
    assert refused.returncode == 2
    assert one_line_error(refused) == (
        f"checkpoint-bot: error: {link} is a symlink of uid {NOBODY} (nobody), not yours or "
        "root's: --output does not follow it, as its owner chooses the file it names; name "
        "the file itself, or leave --output out to write to stdout"
    )
    after = secret.stat()
    assert secret.read_text(encoding="utf-8") == "root only\n"
    assert (after.st_ino, stat.S_IMODE(after.st_mode)) == (before.st_ino, 0o600)
    assert link.is_symlink() and not list(tmp_path.rglob("*.partial"))


@_as_root
def test_audit_export_follows_no_link_of_another_user_on_the_way(tmp_path: Path) -> None:
    """Every link of a chain is checked, not only the one named: here
    root's own link leads to another user's link in a sticky directory."""
    assert invoke(tmp_path, "checkpoint", "create", "APP01", "-r", "one").returncode == 0
    secret = _secret(tmp_path)
    theirs = _sticky(tmp_path) / "audit.jsonl"
    theirs.symlink_to(secret)
    os.lchown(theirs, NOBODY, NOBODY)
    mine = tmp_path / "audit.jsonl"
    mine.symlink_to(theirs)
    refused = invoke(tmp_path, "audit", "export", "-o", str(mine))
    assert refused.returncode == 2
    assert f"{theirs} ({mine} points to it) is a symlink of uid {NOBODY}" in one_line_error(refused)
    assert secret.read_text(encoding="utf-8") == "root only\n"


def test_audit_export_through_your_own_symlink_keeps_the_files_mode(tmp_path: Path) -> None:
    """A symlink of yours is followed, in /tmp too; the file it names is
    replaced with its permission bits (0600 stayed 0600, not the 0644 a
    new file gets under umask 022)."""
    assert invoke(tmp_path, "checkpoint", "create", "APP01", "-r", "one").returncode == 0
    secret = _secret(tmp_path)
    link = _sticky(tmp_path) / "audit.csv"
    link.symlink_to(secret)
    old = os.umask(0o022)
    try:
        wrote = invoke(tmp_path, "audit", "export", "--format", "csv", "-o", str(link))
    finally:
        os.umask(old)
    assert wrote.returncode == 0, wrote.stderr
    assert secret.read_text(encoding="utf-8").startswith('"change","seq","at",')
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert f"wrote {secret} (through {link})" in wrote.stderr
    assert link.is_symlink() and not list(tmp_path.rglob("*.partial"))
    # A group-readable file stays group-readable, no more.
    secret.chmod(0o640)
    assert invoke(tmp_path, "audit", "export", "-o", str(link)).returncode == 0
    assert stat.S_IMODE(secret.stat().st_mode) == 0o640


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o600), (0o077, 0o600), (0o277, 0o400)])
def test_a_new_audit_export_is_its_owners_alone(tmp_path: Path, umask: int, mode: int) -> None:
    """The record (who did what, and their reasons) is not left readable by
    every local user: a new file is 0600, less what the umask removes."""
    assert invoke(tmp_path, "checkpoint", "create", "APP01", "-r", "one").returncode == 0
    out = tmp_path / "audit.jsonl"
    old = os.umask(umask)
    try:
        wrote = invoke(tmp_path, "audit", "export", "-o", str(out))
    finally:
        os.umask(old)
    assert wrote.returncode == 0, wrote.stderr
    assert stat.S_IMODE(out.stat().st_mode) == mode
    assert '"vm": "APP01"' in out.read_text(encoding="utf-8")


@_as_root
def test_audit_export_does_not_replace_another_users_file_in_a_sticky_directory(
    tmp_path: Path,
) -> None:
    """A file another user left in /tmp is not theirs to hand over: replaced
    by root it would keep their mode (here 0666) on root's export."""
    assert invoke(tmp_path, "checkpoint", "create", "APP01", "-r", "one").returncode == 0
    shared = _sticky(tmp_path)
    planted = shared / "audit.jsonl"
    planted.write_text("theirs\n", encoding="utf-8")
    planted.chmod(0o666)
    os.chown(planted, NOBODY, NOBODY)
    refused = invoke(tmp_path, "audit", "export", "-o", str(planted))
    assert refused.returncode == 2
    assert one_line_error(refused) == (
        f"checkpoint-bot: error: {planted} is a file of uid {NOBODY} (nobody) in {shared}, a "
        "world-writable sticky directory: --output replaces only a file of yours there (as "
        "the kernel's fs.protected_regular does); name another file, or leave --output out "
        "to write to stdout"
    )
    assert planted.read_text(encoding="utf-8") == "theirs\n"
    assert not list(tmp_path.rglob("*.partial"))


def _stat(mode: int, uid: int) -> os.stat_result:
    return os.stat_result((mode, 0, 0, 1, uid, uid, 0, 0, 0, 0))


LINK, STICKY, PLAIN = stat.S_IFLNK | 0o777, stat.S_IFDIR | 0o1777, stat.S_IFDIR | 0o755


@pytest.mark.parametrize(
    ("me", "link_uid", "dir_mode", "dir_uid", "refused"),
    [
        (1000, 1000, STICKY, 0, None),  # yours, in /tmp
        (1000, 0, STICKY, 0, None),  # root's in root's /tmp: the kernel follows it too
        (1000, 0, STICKY, 2000, "sticky"),  # root's, in a sticky directory of another
        (1000, 0, PLAIN, 2000, None),  # root's, elsewhere
        (1000, 2000, PLAIN, 2000, "owner"),  # another user's, in their directory
        (1000, 2000, STICKY, 2000, "owner"),  # theirs, in their sticky one (the kernel follows it)
        (1000, 0, stat.S_IFDIR | 0o1775, 2000, None),  # sticky, not world-writable
        (0, 0, STICKY, 2000, None),  # root's own link
        (0, NOBODY, STICKY, 0, "owner"),  # the reviewer's case
    ],
)
def test_which_symlinks_the_export_follows(
    me: int, link_uid: int, dir_mode: int, dir_uid: int, refused: str | None
) -> None:
    """The rule of fs.protected_symlinks, and no link of a third user at all
    (https://docs.kernel.org/admin-guide/sysctl/fs.html#protected-symlinks),
    for users the tests cannot be."""
    from bot.cli.output_file import untrusted

    said = untrusted(_stat(LINK, link_uid), _stat(dir_mode, dir_uid), me)
    assert said == refused


# -- emulator --port ------------------------------------------------------------


def _two_ports() -> tuple[int, socket.socket]:
    """A free port N, and a socket listening on N+1 (held by the caller)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        taken = socket.socket()
        try:
            taken.bind(("127.0.0.1", port + 1))
        except OSError:
            taken.close()
            continue
        taken.listen()
        return port, taken
    pytest.skip("no two consecutive free ports on loopback")


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_the_emulator_on_a_taken_port_says_so_and_leaves_nothing_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # This process's temporary files in a directory of their own: the other
    # test workers' emulators write theirs into the shared one meanwhile.
    own = tmp_path / "tmp"
    own.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(own))
    port, taken = _two_ports()
    with taken:
        threads, fds = set(threading.enumerate()), _open_fds()
        scratch = set(Path(tempfile.gettempdir()).glob("emulator-ntlm-*"))
        # HV01 gets the free port and starts; HV02's is taken.
        result = invoke(tmp_path, "emulator", "--port", str(port))
        assert result.returncode == 2
        assert one_line_error(result) == (
            f"checkpoint-bot: error: cannot serve HV02 on 127.0.0.1:{port + 1}: Address "
            "already in use: pass --port N (0 picks free ones)"
        )
        assert set(threading.enumerate()) <= threads
        assert _open_fds() <= fds
        # Nor the NTLM acceptor's credentials file of the server that failed.
        assert set(Path(tempfile.gettempdir()).glob("emulator-ntlm-*")) <= scratch
        # HV01's port was let go: it can be bound again at once.
        with socket.socket() as again:
            again.bind(("127.0.0.1", port))


# -- the operator's name --------------------------------------------------------


def test_an_operator_name_longer_than_a_vm_name_is_refused(tmp_path: Path) -> None:
    long = {"CHECKPOINT_BOT_USER": "a" * 300}
    result = invoke(tmp_path, "checkpoint", "create", "APP01", "-r", "x", env=long)
    assert result.returncode == 2
    assert one_line_error(result) == (
        "checkpoint-bot: error: CHECKPOINT_BOT_USER is 300 characters long: at most 64"
    )
    odd = invoke(
        tmp_path,
        "checkpoint",
        "create",
        "APP01",
        "-r",
        "x",
        env={"CHECKPOINT_BOT_USER": "a\x1b[2Jb"},
    )
    assert odd.returncode == 2
    assert "CHECKPOINT_BOT_USER 'a\\x1b[2Jb' has a space or a control character" in (
        one_line_error(odd)
    )
    from_user = invoke(
        tmp_path, "change", "list", "--mine", env={"CHECKPOINT_BOT_USER": "", "USER": "b" * 65}
    )
    assert from_user.returncode == 2
    assert "USER is 65 characters long: at most 64" in one_line_error(from_user)
    listed = invoke(tmp_path, "change", "list", "--all")
    assert listed.returncode == 0 and "a" * 65 not in listed.stdout
    ok = invoke(
        tmp_path, "checkpoint", "create", "APP01", "-r", "x", env={"CHECKPOINT_BOT_USER": "c" * 64}
    )
    assert ok.returncode == 0, ok.stderr


# -- words for the terminal -----------------------------------------------------


def test_a_rollback_already_under_way_points_at_change_show(tmp_path: Path) -> None:
    assert invoke(tmp_path, "checkpoint", "create", "STG-WEB01", "-r", "x").returncode == 0
    started = invoke(tmp_path, "checkpoint", "rollback", "CHG-1", "--no-wait")
    assert started.returncode == 0, started.stderr
    for again in ("rollback", "merge"):
        result = invoke(tmp_path, "checkpoint", again, "CHG-1")
        assert result.returncode == 1
        assert one_line_error(result) == (
            "checkpoint-bot: error: CHG-0001 is already rolling back; "
            "'checkpoint-bot change show CHG-0001' shows how it goes"
        )


def test_slack_keeps_the_thread_and_the_cli_rewrites_only_that() -> None:
    from bot.cli.finishing import IN_THE_THREAD, in_terminal_words

    slack = not_now("CHG-0042", State.ROLLING_BACK, "rollback")
    assert slack == "CHG-0042 is already rolling back; the thread shows how it goes"
    assert slack.endswith(IN_THE_THREAD)
    cli = in_terminal_words(Conflict(slack))
    assert cli.message == (
        "CHG-0042 is already rolling back; 'checkpoint-bot change show CHG-0042' shows how it goes"
    )
    other = Conflict("CHG-0042 was kept & merged; there is no checkpoint left to roll back")
    assert in_terminal_words(other) is other


def test_withdrawing_a_withdrawn_scheduled_change_says_it_is_withdrawn(tmp_path: Path) -> None:
    later = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%d 22:00")
    asked = invoke(tmp_path, "checkpoint", "create", "STG-APP01", "-r", "x", "--at", later)
    assert asked.returncode == 0, asked.stderr
    assert invoke(tmp_path, "checkpoint", "withdraw", "CHG-1").returncode == 0
    again = invoke(tmp_path, "checkpoint", "withdraw", "CHG-1")
    assert again.returncode == 1
    assert one_line_error(again) == (
        "checkpoint-bot: error: CHG-0001 is already withdrawn: there is nothing left to withdraw"
    )
    # A change that never waited for anyone says what it is instead.
    assert invoke(tmp_path, "checkpoint", "create", "STG-WEB01", "-r", "x").returncode == 0
    active = invoke(tmp_path, "checkpoint", "withdraw", "CHG-2")
    assert active.returncode == 1
    assert one_line_error(active) == (
        "checkpoint-bot: error: CHG-0002 is active and has nothing waiting for approval: "
        "nothing to withdraw"
    )


def test_a_ttl_past_a_year_names_the_policys_limit_for_the_vm(tmp_path: Path) -> None:
    done = invoke(tmp_path, "checkpoint", "create", "WEB02", "-r", "KB1", "--ttl", "999d")
    assert done.returncode == 2
    assert one_line_error(done).endswith(
        "--ttl: '999d' is too long: WEB02's checkpoints live at most 7d (the policy)"
    )
