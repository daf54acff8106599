"""Issue #16, item 4: the systemd units of deploy/systemd pass
`systemd-analyze verify`, are sandboxed, and hand every secret the config
names over as a credential the bot reads from $CREDENTIALS_DIRECTORY."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest
import yaml

from bot.config import ConfigError, load_settings
from bot.secrets import SecretError, credential_path, secret_from
from tests.multiproc_support import CHECKPOINT_BOT, DEMO_INVENTORY, Cluster, process_env
from tests.slack_support import BOT_TOKEN, SIGNING_SECRET, TEAM_ID, FakeSlackApi

REPO = Path(__file__).resolve().parents[1]
UNITS = REPO / "deploy" / "systemd"
SERVICES = ("checkpoint-bot.service", "checkpoint-bot-worker@.service")
ALL_UNITS = (*SERVICES, "checkpoint-bot-migrate.service")
INSTALLED = "/opt/checkpoint-bot"  # where the units' ExecStart= looks (docs/deploy.md)


def _settings(path: Path) -> dict[str, list[str]]:
    """A unit file's [Service] settings, repeated keys kept in order."""
    found: dict[str, list[str]] = {}
    section = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            found.setdefault(key, []).append(value)
    return found


def _verify(*units: Path) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze verify` of the unchanged units. Their ExecStart= names
    the install path: a private mount namespace shows this checkout's venv
    there, so the check that the command exists is a real one."""
    if shutil.which("systemd-analyze") is None or os.geteuid() != 0:
        why = "systemd-analyze missing" if os.geteuid() == 0 else "not root (needs unshare)"
        if os.environ.get("CI"):
            pytest.fail(f"the systemd units cannot be verified in CI: {why}")
        pytest.skip(f"systemd unit check SKIPPED: {why} (`make deploy-tools` installs systemd)")
    venv = Path(CHECKPOINT_BOT).parent.parent
    script = (
        f"mount -t tmpfs tmpfs /opt && mkdir -p {INSTALLED} && "
        f'mount --bind "$1" {INSTALLED} && shift && systemd-analyze verify --man=no "$@"'
    )
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(venv)]
        + [str(unit) for unit in units],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_units_pass_systemd_analyze_verify_without_a_warning() -> None:
    checked = _verify(*(UNITS / name for name in ALL_UNITS))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout + checked.stderr == ""


def test_the_check_catches_a_mistyped_setting(tmp_path: Path) -> None:
    for name in ALL_UNITS:
        (tmp_path / name).write_text((UNITS / name).read_text(encoding="utf-8"))
    broken = tmp_path / "checkpoint-bot.service"
    broken.write_text(
        broken.read_text().replace("ProtectSystem=strict", "ProtectSystem=strictt"),
        encoding="utf-8",
    )
    checked = _verify(*(tmp_path / name for name in ALL_UNITS))
    assert "Failed to parse protect system value" in checked.stderr


@pytest.mark.parametrize("name", ALL_UNITS)
def test_every_unit_is_sandboxed(name: str) -> None:
    service = _settings(UNITS / name)
    assert service["DynamicUser"] == ["yes"]
    assert service["ProtectSystem"] == ["strict"]
    assert service["NoNewPrivileges"] == ["yes"]
    assert service["CapabilityBoundingSet"] == [""]
    assert service["StateDirectory"] == ["checkpoint-bot"]
    assert service["Environment"][0] == "CHECKPOINT_BOT_CONFIG=/etc/checkpoint-bot/config.yaml"
    assert not any("Environment" in key and "TOKEN" in "".join(v) for key, v in service.items())


def test_the_bots_slack_port_answers_slack_alone() -> None:
    """Readiness and metrics on a port of their own (127.0.0.1:3001): the
    reverse proxy in front of 3000 cannot hand them to whoever reaches it."""
    (start,) = _settings(UNITS / "checkpoint-bot.service")["ExecStart"]
    args = start.split()
    assert args[args.index("--port") + 1] == "3000"
    assert args[args.index("--health-port") + 1] == "3001"
    assert "--health-host" not in args  # loopback, the default


def test_every_credential_the_config_names_is_loaded_by_the_units_that_need_it() -> None:
    text = (UNITS / "config.yaml").read_text(encoding="utf-8")
    named = set(re.findall(r"\$CREDENTIALS_DIRECTORY/([\w-]+)", text))
    assert named == {"database-url", "slack-bot-token", "slack-signing-secret"}

    def loaded(unit: str) -> set[str]:
        return {v.split(":", 1)[0] for v in _settings(UNITS / unit).get("LoadCredential", [])}

    assert named <= loaded("checkpoint-bot.service")
    assert {"database-url", "slack-bot-token"} <= loaded("checkpoint-bot-worker@.service")
    assert loaded("checkpoint-bot-migrate.service") == {"database-url"}


# --- the bot reads its secrets from $CREDENTIALS_DIRECTORY ------------------------------------


def test_a_path_under_the_credentials_directory_is_resolved_from_the_environment(
    tmp_path: Path,
) -> None:
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    for spelled in ("$CREDENTIALS_DIRECTORY/tok", "${CREDENTIALS_DIRECTORY}/tok"):
        assert credential_path(Path(spelled), env, "t") == tmp_path / "tok"
    assert credential_path(Path("/etc/tok"), env, "t") == Path("/etc/tok")
    assert credential_path(Path("rel/$CREDENTIALS_DIRECTORY"), env, "t") == Path(
        "rel/$CREDENTIALS_DIRECTORY"
    )
    (tmp_path / "tok").write_text("xoxb-test\n", encoding="utf-8")
    found = secret_from(
        env_name=None, file=Path("$CREDENTIALS_DIRECTORY/tok"), env=env, what="slack.bot_token"
    )
    assert found is not None and found.reveal() == "xoxb-test"
    assert str(tmp_path) in found.origin


def test_a_credential_outside_systemd_is_one_clear_error() -> None:
    with pytest.raises(SecretError, match=r"not set \(systemd sets it for a unit with LoadC"):
        secret_from(env_name=None, file=Path("$CREDENTIALS_DIRECTORY/tok"), env={}, what="t")


def test_the_shipped_systemd_config_reads_the_database_url_credential(tmp_path: Path) -> None:
    (tmp_path / "database-url").write_text("postgresql://bot@db.example/cb\n", encoding="utf-8")
    config = UNITS / "config.yaml"
    settings = load_settings(config, {"CREDENTIALS_DIRECTORY": str(tmp_path)}, tmp_path)
    assert settings.database_url == "postgresql://bot@db.example/cb"
    with pytest.raises(ConfigError, match=r"config.yaml:\d+: database_url_file: .* not set"):
        load_settings(config, {}, tmp_path)


def test_serve_takes_its_slack_secrets_from_the_credentials_directory(tmp_path: Path) -> None:
    """The real CLI, as systemd starts it: the secrets only as credential files."""
    creds, run = tmp_path / "credentials", tmp_path / "run"
    creds.mkdir()
    run.mkdir()
    (creds / "slack-bot-token").write_text(BOT_TOKEN, encoding="utf-8")
    (creds / "slack-signing-secret").write_text(SIGNING_SECRET, encoding="utf-8")
    with FakeSlackApi() as api, Cluster(run) as cluster:
        config = run / "config.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "inventory": str(DEMO_INVENTORY),
                    "workdir": str(run),
                    "hyperv": {"backend": "simulator"},
                    "slack": {
                        "api_url": api.api_url,
                        "team_ids": [TEAM_ID],
                        "bot_token": {"file": "$CREDENTIALS_DIRECTORY/slack-bot-token"},
                        "signing_secret": {"file": "$CREDENTIALS_DIRECTORY/slack-signing-secret"},
                    },
                    "sweep": {"enabled": False},
                }
            ),
            encoding="utf-8",
        )
        env = process_env(CREDENTIALS_DIRECTORY=str(creds))
        upgraded = cluster.cli(config, env, "db", "upgrade")
        assert upgraded.returncode == 0, upgraded.stderr
        bot = cluster.serve(config, env)
        with urllib.request.urlopen(f"{bot.url}/healthz", timeout=5) as answer:  # noqa: S310
            assert answer.status == 200
        assert api.of("auth.test")

        no_creds = cluster.cli(config, process_env(), "serve", "--http", "--port", "0")
        assert no_creds.returncode == 2, no_creds.stderr
        assert "$CREDENTIALS_DIRECTORY, which is not set" in no_creds.stderr
        assert "Traceback" not in no_creds.stderr


def test_the_cli_runs_by_hand_on_the_units_config_with_the_credentials_they_are_copied_from(
    tmp_path: Path,
) -> None:
    """docs/deploy.md, "The CLI on a systemd host": the shipped config, its
    credentials read from where `LoadCredential=` copies them from, and the
    record naming the person, not root."""
    etc = tmp_path / "etc"
    credentials = etc / "credentials"
    credentials.mkdir(parents=True)
    shutil.copy(UNITS / "config.yaml", etc / "config.yaml")
    inventory = yaml.safe_load(DEMO_INVENTORY.read_text(encoding="utf-8"))
    for host in inventory["hosts"]:
        host["credential"] = {
            "username": "hvadmin",
            "password_file": "$CREDENTIALS_DIRECTORY/hyperv-password",
        }
    (etc / "inventory.yaml").write_text(yaml.safe_dump(inventory), encoding="utf-8")
    secrets = {
        "database-url": f"sqlite:///{tmp_path / 'bot.db'}",
        "hyperv-password": "Passw0rd!",
        "slack-bot-token": "xoxb-unused",
        "slack-signing-secret": "unused",
    }
    for name, value in secrets.items():
        (credentials / name).write_text(value, encoding="utf-8")
    env = process_env(CREDENTIALS_DIRECTORY=str(credentials), CHECKPOINT_BOT_USER="alice")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CHECKPOINT_BOT, "-c", str(etc / "config.yaml"), *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=120,
            check=False,
        )

    assert cli("db", "upgrade").returncode == 0
    shown = cli("inventory", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    assert "CORP-DC01" in shown.stdout and "Passw0rd!" not in shown.stdout
    explained = cli("policy", "explain", "CORP-DC02")
    assert "create CORP-DC02 as cli:alice: DENY" in explained.stdout, explained.stderr
