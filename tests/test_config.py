from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.config import ConfigError, load_settings
from bot.inventory import demo_inventory_path
from bot.secrets import Secret, SecretError, secret_from

# A configured deployment names its backend; these tests mean the simulator.
SIM = "hyperv: {backend: simulator}\n"
REPO = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_no_config_is_demo_mode(tmp_path: Path) -> None:
    settings = load_settings(None, {}, tmp_path)
    assert settings.demo and settings.inventory_path == demo_inventory_path()
    assert settings.database_url == f"sqlite:///{tmp_path}/var/checkpoint-bot.db"
    # Built without a file: demo mode alone gets the simulator unasked.
    assert settings.hyperv.backend == "simulator" and settings.config_path is None


def test_config_from_env_var_with_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    conf = write(
        tmp_path / "etc" / "bot.yaml",
        "inventory: inv.yaml\ndefaults:\n  ttl: 24h\njobs:\n  workers: 2\n" + SIM,
    )
    settings = load_settings(None, {"CHECKPOINT_BOT_CONFIG": str(conf)}, tmp_path)
    assert not settings.demo
    assert settings.inventory_path == tmp_path / "etc" / "inv.yaml"
    assert settings.defaults.ttl.total_seconds() == 86400 and settings.jobs.workers == 2


def test_database_url_from_environment_wins(tmp_path: Path) -> None:
    conf = write(tmp_path / "bot.yaml", "inventory: i.yaml\ndatabase_url: sqlite:///x.db\n" + SIM)
    env = {"DATABASE_URL": "postgresql://bot:s3cret@db/checkpoints"}
    settings = load_settings(conf, env, tmp_path)
    assert settings.database_url == env["DATABASE_URL"]
    assert "s3cret" not in settings.database_label and "s3cret" not in repr(settings)


def test_password_in_config_file_is_refused_without_echoing_it(tmp_path: Path) -> None:
    conf = write(
        tmp_path / "bot.yaml",
        "inventory: i.yaml\ndatabase_url: postgresql://u:hunter2@db/x\n" + SIM,
    )
    with pytest.raises(ConfigError) as err:
        load_settings(conf, {}, tmp_path)
    assert f"{conf}:2: database_url" in str(err.value)
    assert "hunter2" not in str(err.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("inventory: i.yaml\njobs:\n  queue: rabbit\n" + SIM, ":3: jobs.queue"),
        (
            "inventory: i.yaml\ndefaults:\n  ttl: forever\n" + SIM,
            ":3: defaults.ttl: 'forever' is not a duration",
        ),
        (
            "inventory: i.yaml\njobs:\n  heartbeat_seconds: 30\n" + SIM,
            "at least 3 x heartbeat_seconds",
        ),
        ("inventory: i.yaml\nworkers: 3\n" + SIM, ":2: workers: unknown field 'workers'"),
        ("jobs: {}\n" + SIM, "inventory: field required"),
        ("- just\n- a list\n", "must be a mapping"),
        # A channel's name: its thread's root would be posted and then never
        # updated (chat.update takes an id only).
        (
            "inventory: i.yaml\nslack:\n  changes_channel: '#ops'\n" + SIM,
            ":3: slack.changes_channel: '#ops' is not a Slack channel id: give the id "
            "(C0123ABCD; a channel's details in Slack show it at the bottom), not its name",
        ),
        ("inventory: i.yaml\nsweep:\n  channel: ops\n" + SIM, ":3: sweep.channel: 'ops' is not a"),
        (
            "inventory: i.yaml\nslack:\n  api_url: slack.com/api\n" + SIM,
            ":3: slack.api_url: 'slack.com/api' is not a URL of Slack's Web API: "
            "https://slack.com/api/",
        ),
        # An empty path would be read as the config's own folder ("Is a
        # directory" later, from whatever opened it).
        (
            "inventory: ''\n" + SIM,
            ":1: inventory: is empty: give a path (relative to this file's folder)",
        ),
        ("inventory: i.yaml\npolicy: ' '\n" + SIM, ":2: policy: is empty"),
        ("inventory: i.yaml\nworkdir: ''\n" + SIM, ":2: workdir: is empty"),
        ("inventory: i.yaml\ndatabase_url_file: ''\n" + SIM, ":2: database_url_file: is empty"),
        (
            "inventory: i.yaml\nhyperv: {backend: simulator, simulator_hosts: ''}\n",
            ":2: hyperv.simulator_hosts: is empty",
        ),
        (
            "inventory: i.yaml\nslack: {bot_token: {file: ''}}\n" + SIM,
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
    conf = write(tmp_path / "bot.yaml", "inventory: i.yaml\n" + SIM)
    for env in ({"DATABASE_URL": url}, {}):
        if not env:
            write(conf, f"inventory: i.yaml\ndatabase_url: '{url}'\n" + SIM)
        with pytest.raises(ConfigError) as err:
            load_settings(conf, env, tmp_path)
        assert "names no file: SQLite would keep the record in this process's memory" in str(
            err.value
        )


def test_fleet_reads_ask_64_hosts_at_once_unless_the_config_says(tmp_path: Path) -> None:
    unset = load_settings(write(tmp_path / "a.yaml", "inventory: i.yaml\n" + SIM), {}, tmp_path)
    assert unset.hyperv.fanout == 64
    kept = write(
        tmp_path / "b.yaml", "inventory: i.yaml\nhyperv:\n  backend: winrm\n  fanout: 32\n"
    )
    assert load_settings(kept, {}, tmp_path).hyperv.fanout == 32
    # The example operators copy says what a config that omits it gets.
    example = Path(__file__).resolve().parents[1] / "deploy" / "examples" / "config.yaml"
    assert yaml.safe_load(example.read_text(encoding="utf-8"))["hyperv"]["fanout"] == 64


BACKEND_UNSET = (
    "hyperv.backend is not set: `winrm` for real Hyper-V hosts, or `simulator` to try "
    "the bot on simulated ones"
)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        # No block at all: no line to point at, the file is named.
        ("inventory: i.yaml\ndatabase_url: sqlite:///x.db\n", ""),
        # A block that says everything but the backend: its line.
        ("inventory: i.yaml\nhyperv:\n  call_timeout: 5m\n", ":2"),
        ("inventory: i.yaml\nhyperv: {}\n", ":2"),
    ],
)
def test_a_config_file_that_does_not_name_its_backend_is_refused(
    tmp_path: Path, text: str, where: str
) -> None:
    """A deployment that forgot its `hyperv:` block ran on simulated hosts,
    every checkpoint "taken" on a host nobody asked: it must say which."""
    conf = write(tmp_path / "bot.yaml", text)
    for config, env in ((conf, {}), (None, {"CHECKPOINT_BOT_CONFIG": str(conf)})):
        with pytest.raises(ConfigError) as err:
            load_settings(config, env, tmp_path)
        assert str(err.value) == f"{conf}{where}: {BACKEND_UNSET}"


def test_the_missing_backend_is_said_with_the_other_problems(tmp_path: Path) -> None:
    conf = write(tmp_path / "bot.yaml", "inventory: i.yaml\njobs:\n  queue: rabbit\n")
    with pytest.raises(ConfigError) as err:
        load_settings(conf, {}, tmp_path)
    first, second = str(err.value).splitlines()
    assert first == f"{conf}: {BACKEND_UNSET}" and second.startswith(f"{conf}:3: jobs.queue:")


@pytest.mark.parametrize("backend", ["simulator", "winrm"])
def test_a_config_file_that_names_its_backend_gets_it(tmp_path: Path, backend: str) -> None:
    conf = write(tmp_path / "bot.yaml", f"inventory: i.yaml\nhyperv:\n  backend: {backend}\n")
    settings = load_settings(conf, {}, tmp_path)
    assert not settings.demo and settings.hyperv.backend == backend


@pytest.mark.parametrize(
    "path",
    [
        "deploy/examples/config.yaml",
        "deploy/compose/config.yaml",
        "deploy/systemd/config.yaml",
        "deploy/kubernetes/base/config.yaml",
        "deploy/kubernetes/overlays/socket-mode/config.yaml",
    ],
)
def test_the_shipped_configs_load_and_name_winrm(tmp_path: Path, path: str) -> None:
    # DATABASE_URL wins over their database_url_file, which names a secret
    # that exists only where they are deployed.
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}"}
    assert load_settings(REPO / path, env, tmp_path).hyperv.backend == "winrm"


def test_a_database_url_given_twice_is_refused(tmp_path: Path) -> None:
    """database_url won without a word, whichever one the operator meant."""
    write(tmp_path / "url", "sqlite:///other.db\n")
    conf = write(
        tmp_path / "bot.yaml",
        "inventory: i.yaml\ndatabase_url: sqlite:///x.db\ndatabase_url_file: url\n" + SIM,
    )
    # Even where DATABASE_URL would decide: the file itself is ambiguous.
    for env in ({}, {"DATABASE_URL": "sqlite:///env.db"}):
        with pytest.raises(ConfigError) as err:
            load_settings(conf, env, tmp_path)
        assert str(err.value) == f"{conf}:3: set database_url or database_url_file, not both"
    # Either one alone is what it says.
    write(conf, "inventory: i.yaml\ndatabase_url_file: url\n" + SIM)
    assert load_settings(conf, {}, tmp_path).database_url == "sqlite:///other.db"


def test_a_secret_from_both_a_variable_and_a_file_is_refused(tmp_path: Path) -> None:
    """The file won without a word (bot.secrets.secret_from)."""
    conf = write(
        tmp_path / "bot.yaml",
        "inventory: i.yaml\n" + SIM + "slack:\n  app_token: {env: SLACK_APP_TOKEN, file: tok}\n",
    )
    with pytest.raises(ConfigError) as err:
        load_settings(conf, {}, tmp_path)
    assert str(err.value) == f"{conf}:4: slack.app_token: set env or file, not both"
