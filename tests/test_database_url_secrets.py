"""A password in the database URL is a password wherever it is written.

libpq and psycopg take it in `user:pass@` and in the query (`?password=`),
and a client key's passphrase in `?sslpassword=`
(https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-PARAMKEYWORDS).
Each is hidden wherever the bot shows the URL (errors, `db status`, `--json`,
the demo banner), refused in the config file, and kept off pg_dump's command
line, which any local user reads in /proc/PID/cmdline. Until 2026-12-05 only
the `user:pass@` one was: a security review found the query's printed,
accepted in the file and handed to pg_dump in `--dbname=`.

The CLI as an operator runs it, against a PostgreSQL URL whose port refuses
(no server is needed to show a URL); for `db backup`, a fake `pg_dump` first
in PATH records the argv and environment it was started with.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from bot.config import ConfigError, load_settings
from bot.store.db import redacted_url, url_has_password, url_without_secrets
from tests.cli_support import invoke, one_line_error, run
from tests.helpers import refused_port

SECRET = "s3cretQ"
INVENTORY = Path(__file__).resolve().parents[1] / "deploy" / "examples" / "demo-inventory.yaml"


def _url(form: str) -> str:
    """A URL to a port that refuses, with SECRET where `form` puts it."""
    user = f"app:{SECRET}" if form == "userinfo" else "app"
    return (
        f"postgresql://{user}@127.0.0.1:{refused_port()}/checkpoint"
        + {
            "userinfo": "",
            "query": f"?password={SECRET}",
            "query among others": f"?sslmode=disable&password={SECRET}&connect_timeout=5",
            "sslpassword": f"?sslpassword={SECRET}",
            "upper case": f"?PASSWORD={SECRET}",
            "given twice": f"?password=other&password={SECRET}",
        }[form]
    )


FORMS = ["userinfo", "query", "query among others", "sslpassword", "upper case", "given twice"]


def _config(tmp_path: Path, url: str | None = None) -> Path:
    config = tmp_path / "bot.yaml"
    line = f"database_url: {json.dumps(url)}\n" if url is not None else ""
    config.write_text(
        f"inventory: {INVENTORY}\nhyperv: {{backend: simulator}}\n{line}", encoding="utf-8"
    )
    return config


# --- shown: every message that names the database ---------------------------


@pytest.mark.parametrize("form", FORMS)
def test_the_label_hides_every_password_and_keeps_the_rest(form: str) -> None:
    url = make_url(_url(form))
    label = redacted_url(url)
    assert SECRET not in label and "***" in label
    assert label.startswith("postgresql://app") and "/checkpoint" in label
    assert url_has_password(url)
    if form == "query among others":
        # The other options as written, in their order: they are what the
        # operator reads to find a wrong one.
        assert label.endswith("/checkpoint?sslmode=disable&password=***&connect_timeout=5")


def test_a_url_without_a_secret_is_shown_as_it_is() -> None:
    url = make_url("postgresql://app@db.example:5432/checkpoint?sslmode=require&passfile=/x")
    assert (
        redacted_url(url)
        == "postgresql://app@db.example:5432/checkpoint?sslmode=require&passfile=%2Fx"
    )
    assert not url_has_password(url)


# `PASSWORD=` aside: libpq refuses the option before it connects, which is
# not what these are about (its label is above).
@pytest.mark.parametrize("form", [form for form in FORMS if form != "upper case"])
@pytest.mark.parametrize(
    "command",
    [("db", "upgrade"), ("db", "status"), ("db", "status", "--json"), ("checkpoint", "list")],
)
def test_a_database_that_does_not_answer_is_named_without_its_password(
    tmp_path: Path, form: str, command: tuple[str, ...]
) -> None:
    """The reviewer's `DATABASE_URL='postgresql://app@127.0.0.1:1/checkpoint?password=…'
    checkpoint-bot -c bot.yaml db upgrade`: exit 3, the URL in the error line."""
    config = _config(tmp_path)
    result = invoke(tmp_path, "-c", str(config), *command, env={"DATABASE_URL": _url(form)})
    assert result.returncode == 3, result.stderr
    line = one_line_error(result)
    assert "127.0.0.1" in line and "***" in line
    assert SECRET not in result.stdout + result.stderr


@pytest.mark.parametrize("source", ["environment", "file"])
def test_a_password_with_an_unencoded_at_is_refused_without_a_piece_of_it(
    tmp_path: Path, source: str
) -> None:
    """Seen (security review): `postgresql://checkpoint:Winter2026@Corp!@db…`
    said "cannot open the database postgresql://checkpoint:***@Corp!@db…:
    failed to resolve host 'Corp!@db…'": the URL's parser ends the password
    at its first "@", so the rest of it was shown, and asked of DNS, as the
    host's name. Refused before any connection, the URL not shown."""
    url = f"postgresql://checkpoint:Winter2026@{SECRET}!@127.0.0.1:5999/checkpoints"
    if source == "environment":
        config, env = _config(tmp_path), {"DATABASE_URL": url}
    else:
        held = tmp_path / "database-url"
        held.write_text(url + "\n", encoding="utf-8")
        held.chmod(0o600)
        config, env = tmp_path / "bot.yaml", {}
        config.write_text(
            f"inventory: {INVENTORY}\nhyperv: {{backend: simulator}}\ndatabase_url_file: {held}\n",
            encoding="utf-8",
        )
    for command in (("change", "list"), ("db", "status")):
        result = invoke(tmp_path, "-c", str(config), *command, env=env)
        assert result.returncode == 2, result.stderr
        assert one_line_error(result) == (
            "checkpoint-bot: error: the database URL (DATABASE_URL or database_url_file) has "
            "more than one '@' before its host: an '@' in the user or the password must be "
            "written %40 (postgresql://USER:PA%40SS@HOST:5432/DB); the URL is not shown (it "
            "may hold a password)"
        )
        assert SECRET not in result.stdout + result.stderr


def test_the_label_of_such_a_url_shows_no_piece_of_the_password() -> None:
    label = redacted_url(make_url(f"postgresql://app:pa@{SECRET}@db.example:5432/checkpoint"))
    assert label == "postgresql://app:***@db.example:5432/checkpoint"


@pytest.mark.parametrize("form", ["query", "sslpassword"])
def test_demo_mode_names_its_database_without_the_password(tmp_path: Path, form: str) -> None:
    # The banner says where the state is kept: the label, before any error.
    result = invoke(tmp_path, "db", "status", env={"DATABASE_URL": _url(form)})
    assert result.returncode == 3
    assert "DEMO MODE" in result.stderr and "state in postgresql://app@127.0.0.1:" in result.stderr
    assert SECRET not in result.stdout + result.stderr


def test_the_job_ledger_never_shows_the_password() -> None:
    from bot.clock import system_clock
    from bot.jobs.ledger import JobLedger
    from bot.store.db import make_engine

    engine = make_engine(_url("query"))
    try:
        shown = repr(JobLedger(engine, system_clock))
    finally:
        engine.dispose()
    assert SECRET not in shown and "password=***" in shown


# --- refused in the config file ------------------------------------------------


@pytest.mark.parametrize("form", FORMS)
def test_a_password_in_the_config_file_is_refused_in_either_place(
    tmp_path: Path, form: str
) -> None:
    """The reviewer's `database_url: "postgresql://app@…?password=s3cretC"`
    was accepted; `app:s3cretD@` was refused. Both are now, alike."""
    config = _config(tmp_path, _url(form))
    with pytest.raises(ConfigError) as err:
        load_settings(config, {}, tmp_path)
    said = str(err.value)
    assert said == (
        f"{config}:3: database_url: must not contain a password: set DATABASE_URL in the "
        "environment or name a file with database_url_file"
    )
    result = invoke(tmp_path, "-c", str(config), "db", "upgrade")
    assert result.returncode == 2
    assert "must not contain a password" in one_line_error(result)
    assert SECRET not in result.stdout + result.stderr


def test_the_config_file_takes_a_url_with_options_but_no_password(tmp_path: Path) -> None:
    url = f"postgresql://app@127.0.0.1:{refused_port()}/checkpoint?sslmode=disable&passfile=/p"
    settings = load_settings(_config(tmp_path, url), {}, tmp_path)
    assert settings.database_url == url


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        f"postgresql://app:{SECRET}@db.example:port/x",
        f"postgresql://app:{SECRET}@[::1",
    ],
)
def test_a_config_file_url_that_does_not_parse_is_one_line_without_it(
    tmp_path: Path, url: str
) -> None:
    """Was "internal error (ArgumentError: …)" for one SQLAlchemy cannot
    read, and the parser's own words for a bad port."""
    config = _config(tmp_path, url)
    result = invoke(tmp_path, "-c", str(config), "db", "upgrade")
    assert result.returncode == 2, result.stderr
    assert one_line_error(result) == (
        f"checkpoint-bot: error: {config}:3: database_url: cannot be parsed; expected e.g. "
        "postgresql://USER@HOST:5432/DB or sqlite:///PATH"
    )
    assert SECRET not in result.stdout + result.stderr


# --- never on pg_dump's command line ----------------------------------------

FAKE_PG_DUMP = """\
#!{python}
# What pg_dump was started with, as another local user would see it
# (/proc/PID/cmdline) and as only this user can (its environment).
import json, os, sys
from pathlib import Path

service = os.environ.get("PGSERVICEFILE")
Path(os.environ["FAKE_PG_DUMP_RECORD"]).write_text(json.dumps({{
    "argv": sys.argv[1:],
    "cmdline": Path("/proc/self/cmdline").read_bytes().decode(),
    "PGPASSWORD": os.environ.get("PGPASSWORD"),
    "PGSERVICE": os.environ.get("PGSERVICE"),
    "PGSERVICEFILE": service,
    "service_file": Path(service).read_text() if service else None,
    "service_mode": os.stat(service).st_mode & 0o777 if service else None,
}}))
out = next(a.split("=", 1)[1] for a in sys.argv if a.startswith("--file="))
Path(out).write_bytes(b"PGDMP")
"""


def _fake_pg_dump(tmp_path: Path, url: str) -> tuple[dict[str, str], Path]:
    """The environment of a `db backup` of `url` that finds a fake pg_dump
    first in PATH, and the file where it records how it was started."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "pg_dump"
    fake.write_text(FAKE_PG_DUMP.format(python=sys.executable), encoding="utf-8")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    record = tmp_path / "pg_dump.json"
    path = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    return {"DATABASE_URL": url, "PATH": path, "FAKE_PG_DUMP_RECORD": str(record)}, record


def _backup(tmp_path: Path, url: str) -> dict[str, Any]:
    """`db backup --json` as its own process (pg_dump is found on the
    process's PATH, not the Runtime's env) with a fake pg_dump: what the
    fake recorded."""
    env, record = _fake_pg_dump(tmp_path, url)
    done = run(tmp_path, "db", "backup", str(tmp_path / "bot.dump"), "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout + done.stderr
    assert json.loads(done.stdout)["method"] == "pg_dump"
    recorded: dict[str, Any] = json.loads(record.read_text(encoding="utf-8"))
    return recorded


@pytest.mark.parametrize("form", ["userinfo", "query", "query among others", "upper case"])
def test_backup_hands_pg_dump_the_password_in_its_environment_only(
    tmp_path: Path, form: str
) -> None:
    """The reviewer's `db backup FILE` ran pg_dump with
    `--dbname=postgresql://app@…?password=s3cretQ`."""
    recorded = _backup(tmp_path, _url(form))
    assert SECRET not in json.dumps(recorded["argv"]) and SECRET not in recorded["cmdline"]
    assert recorded["PGPASSWORD"] == SECRET
    [dbname] = [a for a in recorded["argv"] if a.startswith("--dbname=")]
    assert dbname.startswith("--dbname=postgresql://app@127.0.0.1:")
    assert "--no-password" in recorded["argv"]
    if form == "query among others":
        # Every other option still reaches pg_dump.
        assert "sslmode=disable" in dbname and "connect_timeout=5" in dbname
    assert recorded["PGSERVICEFILE"] is None  # no passphrase: no service file


def test_a_password_given_twice_hands_over_the_one_libpq_uses(tmp_path: Path) -> None:
    recorded = _backup(tmp_path, _url("given twice"))
    assert recorded["PGPASSWORD"] == SECRET
    assert "other" not in json.dumps(recorded["argv"])


def test_backup_hands_pg_dump_the_key_passphrase_in_a_private_service_file(
    tmp_path: Path,
) -> None:
    """libpq has no environment variable for sslpassword: a connection
    service file only this user can read, gone once pg_dump has run."""
    recorded = _backup(tmp_path, _url("sslpassword"))
    assert SECRET not in recorded["cmdline"] and SECRET not in json.dumps(recorded["argv"])
    assert recorded["PGPASSWORD"] is None
    assert recorded["service_file"] == f"[checkpoint-bot-backup]\nsslpassword={SECRET}\n"
    assert recorded["PGSERVICE"] == "checkpoint-bot-backup"
    assert recorded["service_mode"] == 0o600
    service = Path(recorded["PGSERVICEFILE"])
    assert not service.exists() and not service.parent.exists()


@pytest.mark.parametrize(
    ("url_tail", "env", "said"),
    [
        (f"?service=prod&sslpassword={SECRET}", {}, "has an sslpassword= and a service"),
        (f"?sslpassword={SECRET}", {"PGSERVICE": "prod"}, "has an sslpassword= and a service"),
        (f"?sslpassword={SECRET}%20", {}, "ends in a blank or holds a line break"),
    ],
)
def test_a_passphrase_that_cannot_go_in_a_service_file_is_refused_not_leaked(
    tmp_path: Path, url_tail: str, env: dict[str, str], said: str
) -> None:
    url = f"postgresql://app@127.0.0.1:{refused_port()}/checkpoint{url_tail}"
    full, record = _fake_pg_dump(tmp_path, url)
    done = run(tmp_path, "db", "backup", str(tmp_path / "bot.dump"), env=full | env)
    assert done.returncode == 1
    assert said in one_line_error(done)
    assert SECRET not in done.stdout + done.stderr
    assert not record.exists()  # pg_dump never ran


def test_what_pg_dump_is_given_keeps_nothing_secret() -> None:
    bare, secrets = url_without_secrets(
        make_url(f"postgresql://app:one@h/db?sslmode=require&password={SECRET}&sslpassword=k")
    )
    assert secrets == {"password": SECRET, "sslpassword": "k"}
    assert bare.render_as_string(hide_password=False) == "postgresql://app@h/db?sslmode=require"


def test_pg_dump_writes_a_file_of_its_own_never_a_link_left_beside_the_backup(
    tmp_path: Path,
) -> None:
    """pg_dump opens `--file` as it finds it: the fixed `bot.dump.partial`
    it was given let a symlink another user left there take the dump."""
    victim = tmp_path / "victim.conf"
    victim.write_text("not a dump", encoding="utf-8")
    (tmp_path / "bot.dump.partial").symlink_to(victim)
    recorded = _backup(tmp_path, _url("userinfo"))
    [given] = [a.split("=", 1)[1] for a in recorded["argv"] if a.startswith("--file=")]
    assert Path(given).name.startswith("bot.dump.") and given.endswith(".partial")
    assert Path(given) != tmp_path / "bot.dump.partial"
    assert victim.read_text(encoding="utf-8") == "not a dump"
    dump = tmp_path / "bot.dump"
    assert dump.read_bytes() == b"PGDMP" and stat.S_IMODE(dump.stat().st_mode) == 0o600
