"""deploy/ manifests as their users' tools read them: kubernetes-validate --strict for the
Kubernetes objects, KEDA's own CRD schemas for the ScaledObject and TriggerAuthentication, and
the Compose specification's JSON Schema (check-jsonschema's vendored copy) for compose.yaml."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.conftest import DEPLOY, K8S, load_yaml
from tests.ecosystem import tools

pytestmark = pytest.mark.ecosystem

KEDA = Path(__file__).with_name("keda")
KEDA_KINDS = {"ScaledObject", "TriggerAuthentication"}


def _bin(name: str) -> str:
    """A console script of the dev extras, beside this interpreter."""
    path = Path(sys.executable).with_name(name)
    if not path.exists():
        tools.missing(f"{name} (pip install -e '.[dev]')")
    return str(path)


def _manifest_files() -> list[Path]:
    (kustomization,) = load_yaml(K8S / "kustomization.yaml")
    return [K8S / r for r in kustomization["resources"]] + [K8S / "secret.example.yaml"]


def test_kubernetes_validate_strict_passes_every_kubernetes_object() -> None:
    exe = _bin("kubernetes-validate")
    tools.version("kubernetes-validate", [exe, "--version"])
    files = [str(p) for p in _manifest_files()]
    done = subprocess.run(
        [exe, "--strict", *files], capture_output=True, text=True, timeout=300, check=False
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    objects = [d for p in _manifest_files() for d in load_yaml(p)]
    core = [d for d in objects if d["kind"] not in KEDA_KINDS]
    assert out.count(" passed for resource ") == len(core), out
    # KEDA's kinds have no schema there: they are checked against KEDA's CRDs below.
    assert out.count("Couldn't find schema") == len(objects) - len(core), out


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """A structural CRD schema that refuses unknown fields, as `kubectl --validate=strict`."""
    schema = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def keda_validator(kind: str, api_version: str) -> jsonschema.Draft4Validator:
    crds = [d for p in KEDA.glob("keda.sh_*.yaml") for d in load_yaml(p)]
    (crd,) = [c for c in crds if c["spec"]["names"]["kind"] == kind]
    group, version = api_version.split("/")
    assert crd["spec"]["group"] == group
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version and v["served"]]
    return jsonschema.Draft4Validator(strict(served["schema"]["openAPIV3Schema"]))


def _keda_objects() -> list[dict[str, Any]]:
    objects = list(load_yaml(K8S / "keda.yaml"))
    assert {d["kind"] for d in objects} == KEDA_KINDS
    return objects


def test_keda_objects_are_valid_for_kedas_crd_schemas() -> None:
    tools.USED["KEDA CRD schemas"] = "v2.20.2 (tests/ecosystem/keda)"
    for obj in _keda_objects():
        errors = list(keda_validator(obj["kind"], obj["apiVersion"]).iter_errors(obj))
        assert not errors, [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]


@pytest.mark.parametrize(
    ("kind", "path", "value"),
    [
        ("ScaledObject", ("spec", "minReplicas"), 2),  # misspelled minReplicaCount
        ("ScaledObject", ("spec", "minReplicaCount"), "2"),
        ("TriggerAuthentication", ("spec", "secretTargetRef"), [{"parameter": "host"}]),
    ],
)
def test_the_keda_schemas_refuse_a_wrong_field(
    kind: str, path: tuple[str, ...], value: object
) -> None:
    (obj,) = [copy.deepcopy(o) for o in _keda_objects() if o["kind"] == kind]
    node = obj
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert list(keda_validator(kind, obj["apiVersion"]).iter_errors(obj))


def _check_compose(path: Path) -> subprocess.CompletedProcess[str]:
    exe = _bin("check-jsonschema")
    tools.version("check-jsonschema (compose-spec)", [exe, "--version"])
    return subprocess.run(
        [exe, "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_compose_file_is_valid_for_the_compose_specification_schema(tmp_path: Path) -> None:
    done = _check_compose(DEPLOY / "compose.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    # The check has teeth: a misspelled service key is refused.
    (doc,) = load_yaml(DEPLOY / "compose.yaml")
    doc["services"]["worker"]["enviroment"] = {"X": "1"}
    broken = tmp_path / "compose.yaml"
    broken.write_text(yaml.safe_dump(doc))
    assert _check_compose(broken).returncode != 0
