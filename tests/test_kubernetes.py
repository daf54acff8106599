"""Issue #16, item 3: the kustomize base and overlays of deploy/kubernetes
render with kubectl's kustomize and pass `kubernetes-validate` (strict)
against a pinned Kubernetes version; the pods run non-root on a read-only
root with every capability dropped, are probed, bounded, disruption-budgeted
and fenced by a NetworkPolicy, and reference their Secret without holding it."""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from bot.config import load_settings
from bot.inventory.inventory import load_inventory

REPO = Path(__file__).resolve().parents[1]
KUBERNETES = REPO / "deploy" / "kubernetes"
OVERLAYS = ("production", "socket-mode")
# The oldest Kubernetes release still in upstream support when this was
# written; the manifests use nothing newer (docs/deploy.md).
KUBERNETES_VERSION = "1.32.0"
SECRET = "checkpoint-bot"
SECRET_KEYS = {"database-url", "slack-bot-token", "slack-signing-secret", "hyperv-password"}

Doc = dict[str, Any]


def render(overlay: str) -> list[Doc]:
    """`kubectl kustomize` of an overlay: what `kubectl apply -k` would send."""
    if shutil.which("kubectl") is None:
        if os.environ.get("CI"):
            pytest.fail("kubectl is missing in CI (`make deploy-tools` installs it)")
        pytest.skip("kubectl missing: Kubernetes manifest tests SKIPPED (`make deploy-tools`)")
    proc = subprocess.run(
        ["kubectl", "kustomize", str(KUBERNETES / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def by_kind(docs: list[Doc], kind: str) -> dict[str, Doc]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def pod_specs(docs: list[Doc]) -> dict[str, Doc]:
    return {
        f"{doc['kind']}/{doc['metadata']['name']}": doc["spec"]["template"]["spec"]
        for doc in docs
        if doc["kind"] in ("Deployment", "Job")
    }


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> list[Doc]:
    return render(str(request.param))


def test_every_rendered_object_is_valid_for_the_pinned_kubernetes(rendered: list[Doc]) -> None:
    for doc in rendered:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda c: c["securityContext"].update(readOnlyRootFilesystem="yes"), "boolean"),
        (lambda c: c["livenessProbe"].update(httpGett={}), "httpGett"),
    ],
)
def test_the_validator_catches_what_the_api_server_would_refuse(change: Any, expected: str) -> None:
    deployment = copy.deepcopy(by_kind(render("production"), "Deployment")["checkpoint-bot"])
    change(deployment["spec"]["template"]["spec"]["containers"][0])
    with pytest.raises(kubernetes_validate.ValidationError, match=expected):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_the_objects_a_release_needs(rendered: list[Doc]) -> None:
    kinds = {(doc["kind"], doc["metadata"]["name"]) for doc in rendered}
    assert {
        ("Deployment", "checkpoint-bot"),
        ("Deployment", "checkpoint-bot-worker"),
        ("Job", "checkpoint-bot-migrate-0-1-0"),
        ("PodDisruptionBudget", "checkpoint-bot"),
        ("PodDisruptionBudget", "checkpoint-bot-worker"),
        ("NetworkPolicy", "checkpoint-bot"),
        ("ServiceAccount", "checkpoint-bot"),
    } <= kinds
    assert all(doc["metadata"]["namespace"] == "checkpoint-bot" for doc in rendered)
    # Referenced, never embedded: the operator creates the Secret (docs/deploy.md).
    assert "Secret" not in {kind for kind, _ in kinds}


def test_every_pod_is_non_root_read_only_and_without_capabilities(rendered: list[Doc]) -> None:
    for name, spec in pod_specs(rendered).items():
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] == 10001, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert container["resources"]["requests"]["memory"], name
            assert container["resources"]["limits"]["memory"], name
            mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
            # The image's one writable path, a tmpfs, the config and the secrets.
            assert mounts == {
                "/var/lib/checkpoint-bot",
                "/tmp",
                "/etc/checkpoint-bot",
                "/run/secrets/checkpoint-bot",
            }, name
            assert container["image"].startswith("registry.example/checkpoint-bot:"), name
        secrets = [v["secret"] for v in spec["volumes"] if "secret" in v]
        assert [secret["secretName"] for secret in secrets] == [SECRET], name


def test_the_long_running_pods_are_probed_on_ports_they_declare(rendered: list[Doc]) -> None:
    for name, spec in pod_specs(rendered).items():
        if name.startswith("Job/"):
            continue
        (container,) = spec["containers"]
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        for probe, path in (
            ("startupProbe", "/healthz"),
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
        ):
            assert container[probe]["httpGet"]["path"] == path, (name, probe)
            assert container[probe]["httpGet"]["port"] in ports, (name, probe)
        args = container["args"]
        if "--health-port" in args:
            assert int(args[args.index("--health-port") + 1]) in ports.values(), name
        elif "--port" in args:
            assert int(args[args.index("--port") + 1]) in ports.values(), name
        else:
            pytest.fail(f"{name}: serves its probes on no port it names: {args}")


def test_budgets_and_service_select_the_pods_they_mean(rendered: list[Doc]) -> None:
    deployments = by_kind(rendered, "Deployment")
    labels = {name: d["spec"]["template"]["metadata"]["labels"] for name, d in deployments.items()}
    for name, budget in by_kind(rendered, "PodDisruptionBudget").items():
        selector = budget["spec"]["selector"]["matchLabels"]
        matched = [d for d, pod in labels.items() if selector.items() <= pod.items()]
        assert matched == [name], (name, matched)
    for service in by_kind(rendered, "Service").values():
        selector = service["spec"]["selector"]
        matched = [d for d, pod in labels.items() if selector.items() <= pod.items()]
        assert matched == ["checkpoint-bot"]


def test_the_network_policy_lets_out_only_what_the_bot_talks_to(rendered: list[Doc]) -> None:
    (policy,) = by_kind(rendered, "NetworkPolicy").values()
    assert policy["spec"]["podSelector"] == {}
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    out = {port["port"] for rule in policy["spec"]["egress"] for port in rule["ports"]}
    assert out == {53, 5432, 6379, 5985, 5986, 443}
    ingress = {port["port"] for rule in policy["spec"].get("ingress", []) for port in rule["ports"]}
    # Slack's port where there is one (HTTP mode), the health ports always (Prometheus).
    assert ingress == ({3000, 3001} if by_kind(rendered, "Service") else {3001})


def test_readiness_and_metrics_are_never_on_the_port_the_service_exposes(
    rendered: list[Doc],
) -> None:
    """The Service is your Ingress's backend, so Slack's and whoever else
    reaches it: it reaches the bot's Slack port only, which then answers
    /slack/events and /healthz. /readyz and /metrics are on each pod's
    health port, probed there and scraped there."""
    deployments = by_kind(rendered, "Deployment")
    for name, deployment in deployments.items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        args = container["args"]
        assert "--health-port" in args, name
        assert ports.get("health") == int(args[args.index("--health-port") + 1]) == 3001, name
        # Reached by the kubelet and by Prometheus at the pod's address.
        assert args[args.index("--health-host") + 1] == "0.0.0.0", name  # noqa: S104
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}, name
    (bot,) = deployments["checkpoint-bot"]["spec"]["template"]["spec"]["containers"]
    bot_ports = {port["name"]: port["containerPort"] for port in bot["ports"]}
    services = by_kind(rendered, "Service")
    if services:  # HTTP mode
        assert bot_ports == {"http": 3000, "health": 3001}
        assert bot["args"][bot["args"].index("--port") + 1] == "3000"
        for service in services.values():
            assert [port["targetPort"] for port in service["spec"]["ports"]] == ["http"]
    else:  # Socket Mode: no Slack port at all
        assert bot_ports == {"health": 3001}
        assert "--http" not in bot["args"]


def test_the_config_map_holds_a_config_and_inventory_the_bot_accepts(
    rendered: list[Doc], tmp_path: Path
) -> None:
    (config_map,) = by_kind(rendered, "ConfigMap").values()
    for name, text in config_map["data"].items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    settings = load_settings(
        tmp_path / "config.yaml", {"DATABASE_URL": "postgresql://x@db/cb"}, tmp_path
    )
    assert settings.jobs.queue == "redis"
    assert load_inventory(settings.inventory_path).hosts
    named = set(
        re.findall(r"/run/secrets/checkpoint-bot/([\w-]+)", "".join(config_map["data"].values()))
    )
    if settings.slack.app_token.file is not None:  # Socket Mode
        assert named == SECRET_KEYS - {"slack-signing-secret"} | {"slack-app-token"}
    else:
        assert named == SECRET_KEYS
