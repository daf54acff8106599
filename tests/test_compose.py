"""Issue #16, item 2: deploy/compose/compose.yaml is valid against the
Compose specification's JSON schema (pinned: tests/schemas/README.md), and
wires the bot as docs/deploy.md says: a one-shot migration first, health
checks, secrets as files, state on one volume, the config the bot accepts."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import validators

from bot.config import load_settings
from bot.inventory.inventory import load_inventory

REPO = Path(__file__).resolve().parents[1]
COMPOSE_DIR = REPO / "deploy" / "compose"
COMPOSE = COMPOSE_DIR / "compose.yaml"
SCHEMA = Path(__file__).parent / "schemas" / "compose-spec.json"
STATE = "/var/lib/checkpoint-bot"  # the image's VOLUME (deploy/container/Containerfile)


def _schema_problems(document: dict[str, Any]) -> list[str]:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    # The schema says draft 2019-09 (spelled with http and '#', which the
    # jsonschema package does not look up by name).
    assert "draft/2019-09" in schema["$schema"]
    validators.Draft201909Validator.check_schema(schema)
    validator = validators.Draft201909Validator(schema)
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(document)
    ]


@pytest.fixture
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_compose_yaml_is_valid_against_the_compose_specification(
    compose: dict[str, Any],
) -> None:
    assert _schema_problems(compose) == []


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (
            ("services", "bot", "depends_on", "migrate", "condition"),
            "completed",
            "not valid under any",
        ),
        (("services", "bot", "read_only"), "yes", "is not of type 'boolean'"),
        (("services", "worker", "healthcheck"), {"test": ["CMD"], "intervall": "5s"}, "intervall"),
    ],
)
def test_the_schema_check_catches_what_compose_would_refuse(
    compose: dict[str, Any], path: tuple[str, ...], value: object, expected: str
) -> None:
    broken = copy.deepcopy(compose)
    node = broken
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    problems = _schema_problems(broken)
    assert any(expected in problem for problem in problems), problems


def test_the_services_start_in_order_with_health_checks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "migrate", "bot", "worker"}
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("bot", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}
        assert depends["redis"] == {"condition": "service_healthy"}
    for name in ("postgres", "redis", "bot"):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
    assert "/readyz" in " ".join(services["bot"]["healthcheck"]["test"])
    # The worker keeps the image's HEALTHCHECK, pointed at its own port.
    port = services["worker"]["command"][services["worker"]["command"].index("--health-port") + 1]
    assert services["worker"]["environment"]["CHECKPOINT_BOT_HEALTH_URL"] == (
        f"http://127.0.0.1:{port}/healthz"
    )


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_the_bots_readiness_and_metrics_are_on_a_port_that_is_not_published(
    compose: dict[str, Any],
) -> None:
    """The published port is Slack's (the reverse proxy's backend, so
    anyone's): it answers /slack/events and /healthz only. /readyz and
    /metrics are on the health port, for the healthcheck and Prometheus on
    the Compose network."""
    bot = compose["services"]["bot"]
    command = bot["command"]
    slack, health = option(command, "--port"), option(command, "--health-port")
    assert slack != health
    assert option(command, "--health-host") == "0.0.0.0"  # noqa: S104 (the Compose network's)
    assert bot["ports"] == [f"{slack}:{slack}"]
    assert f"'http://127.0.0.1:{health}/readyz'" in bot["healthcheck"]["test"][-1]


def test_the_bot_runs_read_only_from_the_containerfile_with_state_on_a_volume(
    compose: dict[str, Any],
) -> None:
    for name in ("migrate", "bot", "worker"):
        service = compose["services"][name]
        assert service["read_only"] is True
        assert service["cap_drop"] == ["ALL"]
        assert service["volumes"] == [f"state:{STATE}"]
        build = service["build"]
        context = (COMPOSE_DIR / build["context"]).resolve()
        assert context == REPO
        assert (context / build["dockerfile"]).is_file()


def test_secrets_are_files_never_environment_values(compose: dict[str, Any]) -> None:
    declared = compose["secrets"]
    assert all(set(found) == {"file"} for found in declared.values())
    for name, service in compose["services"].items():
        for key in service.get("environment", {}):
            assert not re.search(r"TOKEN|SECRET|PASSWORD(?!_FILE)", key), (name, key)
    config_text = (COMPOSE_DIR / "config.yaml").read_text(encoding="utf-8")
    inventory_text = (COMPOSE_DIR / "inventory.yaml").read_text(encoding="utf-8")
    named = set(re.findall(r"/run/secrets/([\w-]+)", config_text + inventory_text))
    assert named == {"database-url", "slack-bot-token", "slack-signing-secret", "hyperv-password"}
    for name in ("bot", "worker"):
        assert named <= set(compose["services"][name]["secrets"]), name
    assert compose["services"]["migrate"]["secrets"] == ["database-url"]


def test_the_config_and_inventory_it_mounts_are_ones_the_bot_accepts(tmp_path: Path) -> None:
    # DATABASE_URL wins over database_url_file, so the secret file need not exist here.
    settings = load_settings(
        COMPOSE_DIR / "config.yaml", {"DATABASE_URL": "postgresql://x@postgres/cb"}, tmp_path
    )
    assert settings.jobs.queue == "redis"
    assert settings.jobs.redis_url == "redis://redis:6379/0"
    assert settings.inventory_path == (COMPOSE_DIR / "inventory.yaml").resolve()
    inventory = load_inventory(settings.inventory_path)
    assert [host.name for host in inventory.hosts] == ["HV01"]
