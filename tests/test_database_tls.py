"""TLS to PostgreSQL is verified by default (bot/store/pg_tls.py).

libpq's own default, `sslmode=prefer`, takes TLS without checking the
certificate, and plain text from a server that offers no TLS
(https://www.postgresql.org/docs/current/libpq-ssl.html#LIBPQ-SSL-PROTECTION).
A URL naming a database off this machine and saying nothing of TLS now
gets `sslmode=verify-full`. The tests that connect go through a proxy in
front of this machine's PostgreSQL that negotiates TLS with a certificate
from a test CA (tests/pg_tls_proxy.py), dialled by a name (`db.example`)
whose address libpq takes from `hostaddr=127.0.0.1`: the name is what the
certificate is checked against, and what makes the database remote.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.engine import make_url

from bot.store.pg_tls import system_roots, with_tls_default
from tests.cli_support import invoke, one_line_error
from tests.pg_tls_proxy import TLSProxy, tls_proxy
from tests.test_multiprocess import fresh_pg_url  # noqa: F401 (the fixture)
from tests.tls_support import TestCA

NO_ENV: dict[str, str] = {}


def _query(
    url: str, env: dict[str, str] = NO_ENV, home: Path = Path("/nonexistent")
) -> dict[str, object]:
    return dict(with_tls_default(make_url(url), env, home).query)


# --- which URLs get verify-full ---------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://bot@127.0.0.1/cb",
        "postgresql://bot@127.0.0.2:5433/cb",
        "postgresql://bot@[::1]/cb",
        "postgresql://bot@localhost/cb",
        "postgresql+psycopg://bot@/cb",  # libpq's default Unix socket
        "postgresql://bot@/cb?host=/run/postgresql",
        "postgresql://bot@db.corp.example/cb?host=/run/postgresql",  # the parameter wins
        "sqlite:///var/checkpoint-bot.db",
    ],
)
def test_a_database_on_this_machine_keeps_libpqs_default(url: str) -> None:
    assert "sslmode" not in _query(url)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://bot@db.corp.example/cb",
        "postgresql+psycopg://bot@10.1.2.3:5432/cb",
        "postgresql://bot@localhost/cb?host=localhost,db2.corp.example",
        "postgresql://bot@db.corp.example/cb?hostaddr=127.0.0.1",  # the certificate's name
    ],
)
def test_a_remote_database_is_asked_for_verified_tls(url: str) -> None:
    assert _query(url) == {
        **dict(make_url(url).query),
        "sslmode": "verify-full",
        "sslrootcert": system_roots(),
    }


def test_a_root_certificate_libpq_finds_itself_is_left_to_it(tmp_path: Path) -> None:
    url = "postgresql://bot@db.corp.example/cb"
    named = _query(url + "?sslrootcert=/etc/ssl/corp-ca.pem")
    assert named == {"sslrootcert": "/etc/ssl/corp-ca.pem", "sslmode": "verify-full"}
    assert _query(url, {"PGSSLROOTCERT": "/etc/ssl/corp-ca.pem"}) == {"sslmode": "verify-full"}
    (tmp_path / ".postgresql").mkdir()
    (tmp_path / ".postgresql" / "root.crt").write_text("")
    assert _query(url, home=tmp_path) == {"sslmode": "verify-full"}


@pytest.mark.parametrize(
    ("url", "env"),
    [
        ("postgresql://bot@db.corp.example/cb?sslmode=disable", NO_ENV),
        ("postgresql://bot@db.corp.example/cb?sslmode=require", NO_ENV),
        ("postgresql://bot@db.corp.example/cb?SSLMODE=require", NO_ENV),
        ("postgresql://bot@db.corp.example/cb?service=records", NO_ENV),
        ("postgresql://bot@db.corp.example/cb", {"PGSSLMODE": "require"}),
        ("postgresql://bot@db.corp.example/cb", {"PGSERVICE": "records"}),
    ],
)
def test_what_the_operator_says_of_tls_wins(url: str, env: dict[str, str]) -> None:
    assert _query(url, env) == dict(make_url(url).query)


@given(
    host=st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,10}){0,3}", fullmatch=True),
    mode=st.sampled_from(["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]),
)
def test_an_sslmode_in_the_url_is_never_changed(host: str, mode: str) -> None:
    url = f"postgresql://bot@{host}/cb?sslmode={mode}"
    assert _query(url) == {"sslmode": mode}


# --- connecting, through a TLS-negotiating proxy to the real PostgreSQL ------------------


@pytest.fixture
def certs(tmp_path: Path) -> dict[str, Path]:
    ca = TestCA.create("Corp Test Root CA")
    right = ca.issue(["db.example"]).write(tmp_path / "db.pem", tmp_path / "db.key")
    wrong = ca.issue(["other.example"]).write(tmp_path / "other.pem", tmp_path / "other.key")
    return {
        "ca": ca.write(tmp_path / "ca.pem"),
        "cert": right[0],
        "key": right[1],
        "other_cert": wrong[0],
        "other_key": wrong[1],
    }


def _via(proxy: TLSProxy, real: str, query: str = "") -> dict[str, str]:
    """DATABASE_URL for the database of `real`, dialled as db.example
    through `proxy`."""
    name = make_url(real).database
    url = f"postgresql://postgres@db.example:{proxy.port}/{name}?hostaddr=127.0.0.1{query}"
    return {"DATABASE_URL": url}


@pytest.fixture
def pg_tls(
    fresh_pg_url: str,  # noqa: F811 (the fixture)
    certs: dict[str, Path],
) -> Iterator[TLSProxy]:
    with tls_proxy(("127.0.0.1", 5432), certs["cert"], certs["key"]) as proxy:
        yield proxy


@pytest.mark.postgres
def test_a_certificate_from_the_named_authority_connects_over_tls(
    tmp_path: Path,
    pg_tls: TLSProxy,
    fresh_pg_url: str,  # noqa: F811 (the fixture)
    certs: dict[str, Path],
) -> None:
    env = _via(pg_tls, fresh_pg_url, f"&sslrootcert={certs['ca']}")
    made = invoke(tmp_path, "checkpoint", "create", "APP01", "-r", "over TLS", env=env)
    assert made.returncode == 0, made.stderr
    listed = invoke(tmp_path, "change", "list", env=env)
    assert listed.returncode == 0 and "APP01" in listed.stdout
    assert pg_tls.asked and set(pg_tls.asked) == {"ssl"}


@pytest.mark.postgres
def test_a_certificate_no_trusted_authority_signed_is_refused_as_configuration(
    tmp_path: Path,
    pg_tls: TLSProxy,
    fresh_pg_url: str,  # noqa: F811
) -> None:
    # No root named: the system's trust store, which has no test CA in it.
    assert "Corp Test Root CA" not in Path(system_roots()).read_text()
    for args in (
        ("db", "status"),
        ("change", "list"),
        ("checkpoint", "create", "APP01", "-r", "x"),
    ):
        refused = invoke(tmp_path, *args, env=_via(pg_tls, fresh_pg_url))
        assert refused.returncode == 2, (args, refused.stderr)
        line = one_line_error(refused)
        assert "certificate verify failed" in line and "sslmode=verify-full" in line
        assert "?sslrootcert=FILE" in line and "docs/security.md" in line


@pytest.mark.postgres
def test_a_certificate_for_another_name_is_refused(
    tmp_path: Path,
    fresh_pg_url: str,  # noqa: F811 (the fixture)
    certs: dict[str, Path],
) -> None:
    with tls_proxy(("127.0.0.1", 5432), certs["other_cert"], certs["other_key"]) as proxy:
        env = _via(proxy, fresh_pg_url, f"&sslrootcert={certs['ca']}")
        refused = invoke(tmp_path, "db", "status", env=env)
    assert refused.returncode == 2
    assert 'does not match host name "db.example"' in one_line_error(refused)


@pytest.mark.postgres
def test_a_remote_server_without_tls_is_refused_unless_the_url_says_so(
    tmp_path: Path,
    fresh_pg_url: str,  # noqa: F811
) -> None:
    with tls_proxy(("127.0.0.1", 5432)) as plain:
        refused = invoke(tmp_path, "change", "list", env=_via(plain, fresh_pg_url))
        assert refused.returncode == 2
        assert "server does not support SSL" in one_line_error(refused)
        # The operator's word: plain text on a network they trust.
        said = invoke(tmp_path, "change", "list", env=_via(plain, fresh_pg_url, "&sslmode=disable"))
        assert said.returncode == 0, said.stderr


@pytest.mark.postgres
def test_db_backup_goes_over_the_same_tls(
    tmp_path: Path,
    pg_tls: TLSProxy,
    fresh_pg_url: str,  # noqa: F811 (the fixture)
    certs: dict[str, Path],
) -> None:
    trusted = _via(pg_tls, fresh_pg_url, f"&sslrootcert={certs['ca']}")
    done = invoke(tmp_path, "db", "backup", str(tmp_path / "b.dump"), env=trusted)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "b.dump").read_bytes()[:5] == b"PGDMP"
    # pg_dump is handed verify-full too: without the test CA it refuses.
    pg_tls.asked.clear()
    untrusted = invoke(
        tmp_path, "db", "backup", str(tmp_path / "c.dump"), env=_via(pg_tls, fresh_pg_url)
    )
    assert untrusted.returncode == 1  # a backup that failed, not a database down
    line = one_line_error(untrusted)
    assert "certificate verify failed" in line and "?sslrootcert=FILE" in line
    assert not (tmp_path / "c.dump").exists()
