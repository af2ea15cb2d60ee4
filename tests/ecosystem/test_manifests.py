"""deploy/ manifests as their users' tools read them: kubernetes-validate --strict for the
Kubernetes objects, the npm package @kubernetes-models/keda (models generated from KEDA's CRDs,
run under Node by keda_validate.cjs) for the ScaledObject and TriggerAuthentication, and the
Compose specification's JSON Schema (check-jsonschema's vendored copy) for compose.yaml."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import DEPLOY, K8S, load_yaml
from tests.ecosystem import tools

pytestmark = pytest.mark.ecosystem

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
    # KEDA's kinds have no schema there: @kubernetes-models/keda checks them below.
    assert out.count("Couldn't find schema") == len(objects) - len(core), out


VALIDATE = Path(__file__).with_name("keda_validate.cjs")
KEDA_PACKAGE = "@kubernetes-models/keda"


def keda_validate(*files: Path, stdin: str | None = None) -> tuple[int, dict[str, Any]]:
    """(exit code, output) of keda_validate.cjs: @kubernetes-models/keda's models, generated
    from KEDA's CRDs, validate each document (ajv, the CRDs' JSON Schemas) under Node."""
    node = tools.executable("node")
    tools.npm_package(KEDA_PACKAGE)
    tools.npm_package("@asyncapi/parser")  # whose dependency tree provides js-yaml
    tools.version("node", [node, "--version"])
    done = subprocess.run(
        [node, str(VALIDATE), *map(str, files)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={"NPM_DIR": str(tools.NPM_DIR), "PATH": str(Path(node).parent)},
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout)
    assert result["versions"][KEDA_PACKAGE] == tools.USED[KEDA_PACKAGE]
    return done.returncode, result


def _keda_objects() -> list[dict[str, Any]]:
    objects = list(load_yaml(K8S / "keda.yaml"))
    assert {d["kind"] for d in objects} == KEDA_KINDS
    return objects


def test_keda_objects_are_valid_for_the_keda_models() -> None:
    """Every ScaledObject and TriggerAuthentication in deploy/k8s, read from its file."""
    files = [
        p
        for p in sorted(K8S.glob("*.yaml"))
        if any(d.get("kind") in KEDA_KINDS for d in load_yaml(p))
    ]
    expected = [(d["kind"], d["metadata"]["name"]) for p in files for d in load_yaml(p)]
    assert {kind for kind, _ in expected} == KEDA_KINDS  # and nothing else in those files
    code, result = keda_validate(*files)
    documents = result["documents"]
    assert [(d["kind"], d["name"]) for d in documents] == expected
    assert code == 0, [d for d in documents if not d["valid"]]
    assert all(d["valid"] and d["errors"] == [] for d in documents)


DELETE = object()  # _broken: remove the field instead of setting it


def _broken(kind: str, path: tuple[str | int, ...], value: object) -> dict[str, Any]:
    (obj,) = [copy.deepcopy(o) for o in _keda_objects() if o["kind"] == kind]
    node: Any = obj
    for key in path[:-1]:
        node = node[key]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return obj


@pytest.mark.parametrize(
    ("kind", "path", "value", "error"),
    [
        (
            "ScaledObject",
            ("spec", "minReplicaCount"),
            "two",
            ("/spec/minReplicaCount", "must be integer"),
        ),
        (
            "ScaledObject",
            ("spec", "triggers", 0, "type"),
            DELETE,
            ("/spec/triggers/0", "must have required property type"),
        ),
        (
            "ScaledObject",
            ("spec", "triggers", 2, "metadata", "value"),
            20,  # unquoted: trigger metadata is a map of strings
            ("/spec/triggers/2/metadata/value", "must be string"),
        ),
        (
            "TriggerAuthentication",
            ("spec", "secretTargetRef"),
            {"parameter": "host", "name": "entity-sync-secrets", "key": "broker-url"},
            ("/spec/secretTargetRef", "must be array"),
        ),
    ],
)
def test_the_keda_models_refuse_a_wrong_field(
    kind: str, path: tuple[str | int, ...], value: object, error: tuple[str, str]
) -> None:
    """The check has teeth: a broken copy is refused, for the reason we broke it. (The models
    allow unknown fields, so a misspelled key is not among the cases.)"""
    code, result = keda_validate(stdin=yaml.safe_dump(_broken(kind, path, value)))
    (document,) = result["documents"]
    assert code == 1
    assert document["kind"] == kind
    assert not document["valid"]
    assert [(e["path"], e["message"]) for e in document["errors"]] == [error]


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
