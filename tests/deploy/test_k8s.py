"""deploy/k8s: manifests parse and agree with each other, the settings and the topology."""

from __future__ import annotations

from typing import Any

import pytest

from entity_sync.runtime.topology import Names
from tests.deploy.conftest import K8S, load_yaml

SECRET = "entity-sync-secrets"


@pytest.fixture(scope="module")
def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    (kustomization,) = load_yaml(K8S / "kustomization.yaml")
    docs: dict[tuple[str, str], dict[str, Any]] = {}
    for resource in kustomization["resources"]:
        for doc in load_yaml(K8S / resource):
            assert {"apiVersion", "kind", "metadata"} <= set(doc), resource
            docs[(doc["kind"], doc["metadata"]["name"])] = doc
    return docs


@pytest.fixture(scope="module")
def deployment(manifests: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    return manifests[("Deployment", "entity-sync")]


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert isinstance(container, dict)
    return container


def test_every_manifest_file_is_in_the_kustomization() -> None:
    (kustomization,) = load_yaml(K8S / "kustomization.yaml")
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert set(kustomization["resources"]) == files


def test_selectors_match_the_pod_labels(
    manifests: dict[tuple[str, str], dict[str, Any]], deployment: dict[str, Any]
) -> None:
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    pdb = manifests[("PodDisruptionBudget", "entity-sync")]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["minAvailable"] < deployment["spec"]["replicas"]
    service = manifests[("Service", "entity-sync-metrics")]
    assert service["spec"]["selector"].items() <= labels.items()


def test_probes_use_the_health_endpoints_on_the_metrics_port(
    manifests: dict[tuple[str, str], dict[str, Any]], deployment: dict[str, Any]
) -> None:
    container = _container(deployment)
    config = manifests[("ConfigMap", "entity-sync-config")]["data"]
    (port,) = container["ports"]
    assert port["containerPort"] == int(config["ENTITY_SYNC_METRICS_PORT"])
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port["containerPort"])
    assert annotations["prometheus.io/path"] == "/metrics"
    service = manifests[("Service", "entity-sync-metrics")]
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]


def test_resources_graceful_termination_and_non_root(deployment: dict[str, Any]) -> None:
    pod = deployment["spec"]["template"]["spec"]
    container = _container(deployment)
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]
    assert pod["terminationGracePeriodSeconds"] >= 30
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's user
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["args"] == ["run"]
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_environment_names_only_real_settings_and_secrets_by_reference(
    manifests: dict[tuple[str, str], dict[str, Any]],
    deployment: dict[str, Any],
    settings_env: set[str],
) -> None:
    container = _container(deployment)
    config = manifests[("ConfigMap", "entity-sync-config")]
    assert container["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
    names = set(config["data"]) | {e["name"] for e in container["env"]}
    assert names <= settings_env, names - settings_env
    (example,) = load_yaml(K8S / "secret.example.yaml")
    for env in container["env"]:
        ref = env["valueFrom"]["secretKeyRef"]  # no secret value inline
        assert ref["name"] == SECRET == example["metadata"]["name"]
        assert ref["key"] in example["stringData"]
    secret_names = {e["name"] for e in container["env"]}
    for sensitive in ("URL", "PASSWORD", "USERNAME"):
        assert not {k for k in config["data"] if k.endswith(sensitive) and "ENDPOINT" not in k}
    assert {"ENTITY_SYNC_BROKER_URL", "ENTITY_SYNC_DATABASE_URL"} <= secret_names


def test_keda_scales_the_deployment_on_the_input_queues(
    manifests: dict[tuple[str, str], dict[str, Any]], deployment: dict[str, Any]
) -> None:
    scaled = manifests[("ScaledObject", "entity-sync")]
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert scaled["spec"]["minReplicaCount"] >= 1
    auth = manifests[("TriggerAuthentication", "entity-sync-rabbitmq")]
    assert auth["spec"]["secretTargetRef"][0]["name"] == SECRET
    names = Names()
    consumed = set(names.bindings())  # App.run consumes every input queue
    queues = set()
    for trigger in scaled["spec"]["triggers"]:
        assert trigger["type"] == "rabbitmq"
        assert trigger["metadata"]["mode"] == "QueueLength"
        assert int(trigger["metadata"]["value"]) > 0
        assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
        queues.add(trigger["metadata"]["queueName"])
    assert queues == consumed
