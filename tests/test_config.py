from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.config import ConfigError, load_settings
from bot.inventory import demo_inventory_path
from bot.secrets import Secret, SecretError, secret_from


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_no_config_is_demo_mode(tmp_path: Path) -> None:
    settings = load_settings(None, {}, tmp_path)
    assert settings.demo and settings.inventory_path == demo_inventory_path()
    assert settings.database_url == f"sqlite:///{tmp_path}/var/checkpoint-bot.db"


def test_config_from_env_var_with_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    conf = write(
        tmp_path / "etc" / "bot.yaml",
        "inventory: inv.yaml\ndefaults:\n  ttl: 24h\njobs:\n  workers: 2\n",
    )
    settings = load_settings(None, {"CHECKPOINT_BOT_CONFIG": str(conf)}, tmp_path)
    assert not settings.demo
    assert settings.inventory_path == tmp_path / "etc" / "inv.yaml"
    assert settings.defaults.ttl.total_seconds() == 86400 and settings.jobs.workers == 2


def test_database_url_from_environment_wins(tmp_path: Path) -> None:
    conf = write(tmp_path / "bot.yaml", "inventory: i.yaml\ndatabase_url: sqlite:///x.db\n")
    env = {"DATABASE_URL": "postgresql://bot:s3cret@db/checkpoints"}
    settings = load_settings(conf, env, tmp_path)
    assert settings.database_url == env["DATABASE_URL"]
    assert "s3cret" not in settings.database_label and "s3cret" not in repr(settings)


def test_password_in_config_file_is_refused_without_echoing_it(tmp_path: Path) -> None:
    conf = write(
        tmp_path / "bot.yaml", "inventory: i.yaml\ndatabase_url: postgresql://u:hunter2@db/x\n"
    )
    with pytest.raises(ConfigError) as err:
        load_settings(conf, {}, tmp_path)
    assert f"{conf}:2: database_url" in str(err.value)
    assert "hunter2" not in str(err.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("inventory: i.yaml\njobs:\n  queue: rabbit\n", ":3: jobs.queue"),
        (
            "inventory: i.yaml\ndefaults:\n  ttl: forever\n",
            ":3: defaults.ttl: 'forever' is not a duration",
        ),
        ("inventory: i.yaml\njobs:\n  heartbeat_seconds: 30\n", "at least 3 x heartbeat_seconds"),
        ("inventory: i.yaml\nworkers: 3\n", ":2: workers: unknown field 'workers'"),
        ("jobs: {}\n", "inventory: field required"),
        ("- just\n- a list\n", "must be a mapping"),
        # A channel's name: its thread's root would be posted and then never
        # updated (chat.update takes an id only).
        (
            "inventory: i.yaml\nslack:\n  changes_channel: '#ops'\n",
            ":3: slack.changes_channel: '#ops' is not a Slack channel id: give the id "
            "(C0123ABCD; a channel's details in Slack show it at the bottom), not its name",
        ),
        ("inventory: i.yaml\nsweep:\n  channel: ops\n", ":3: sweep.channel: 'ops' is not a"),
        (
            "inventory: i.yaml\nslack:\n  api_url: slack.com/api\n",
            ":3: slack.api_url: 'slack.com/api' is not a URL of Slack's Web API: "
            "https://slack.com/api/",
        ),
        # An empty path would be read as the config's own folder ("Is a
        # directory" later, from whatever opened it).
        (
            "inventory: ''\n",
            ":1: inventory: is empty: give a path (relative to this file's folder)",
        ),
        ("inventory: i.yaml\npolicy: ' '\n", ":2: policy: is empty"),
        ("inventory: i.yaml\nworkdir: ''\n", ":2: workdir: is empty"),
        ("inventory: i.yaml\ndatabase_url_file: ''\n", ":2: database_url_file: is empty"),
        (
            "inventory: i.yaml\nhyperv: {simulator_hosts: ''}\n",
            ":2: hyperv.simulator_hosts: is empty",
        ),
        (
            "inventory: i.yaml\nslack: {bot_token: {file: ''}}\n",
            ":2: slack.bot_token.file: is empty",
        ),
    ],
)
def test_errors_name_file_line_and_key(tmp_path: Path, text: str, expected: str) -> None:
    conf = write(tmp_path / "bot.yaml", text)
    with pytest.raises(ConfigError) as err:
        load_settings(conf, {}, tmp_path)
    assert str(conf) in str(err.value) and expected in str(err.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_settings(tmp_path / "nope.yaml", {}, tmp_path)


def test_secrets_never_show_their_value(tmp_path: Path) -> None:
    token_file = write(tmp_path / "token", "xoxb-test\n")
    secret = secret_from(env_name=None, file=token_file, env={}, what="slack.bot_token")
    assert isinstance(secret, Secret) and secret.reveal() == "xoxb-test"
    assert "xoxb" not in f"{secret} {secret!r} {[secret]}"
    from_env = secret_from(env_name="TOK", file=None, env={"TOK": "abc"}, what="t")
    assert from_env is not None and from_env.origin == "$TOK" and "abc" not in repr(from_env)
    assert secret_from(env_name="TOK", file=None, env={}, what="t") is None
    with pytest.raises(SecretError, match="cannot read") as err:
        secret_from(env_name=None, file=tmp_path / "missing", env={}, what="t")
    assert "missing" in str(err.value)


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///", "sqlite:///:memory:", "sqlite+pysqlite://"]
)
def test_an_sqlite_database_in_memory_is_refused(tmp_path: Path, url: str) -> None:
    """Each command would start on an empty database and keep nothing
    (https://www.sqlite.org/inmemorydb.html)."""
    conf = write(tmp_path / "bot.yaml", "inventory: i.yaml\n")
    for env in ({"DATABASE_URL": url}, {}):
        if not env:
            write(conf, f"inventory: i.yaml\ndatabase_url: '{url}'\n")
        with pytest.raises(ConfigError) as err:
            load_settings(conf, env, tmp_path)
        assert "names no file: SQLite would keep the record in this process's memory" in str(
            err.value
        )


def test_fleet_reads_ask_64_hosts_at_once_unless_the_config_says(tmp_path: Path) -> None:
    unset = load_settings(write(tmp_path / "a.yaml", "inventory: i.yaml\n"), {}, tmp_path)
    assert unset.hyperv.fanout == 64
    kept = write(tmp_path / "b.yaml", "inventory: i.yaml\nhyperv:\n  fanout: 32\n")
    assert load_settings(kept, {}, tmp_path).hyperv.fanout == 32
    # The example operators copy says what a config that omits it gets.
    example = Path(__file__).resolve().parents[1] / "deploy" / "examples" / "config.yaml"
    assert yaml.safe_load(example.read_text(encoding="utf-8"))["hyperv"]["fanout"] == 64
