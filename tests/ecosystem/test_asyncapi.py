"""schemas/asyncapi.yaml as upstream teams load it: the official AsyncAPI parser (Node), with
zero errors and zero warnings, and every message's examples valid for its JSON Schema and model.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from entity_sync.schemas import generate
from tests.ecosystem import tools

pytestmark = pytest.mark.ecosystem

PARSE = Path(__file__).with_name("asyncapi_parse.cjs")


def parse(document: Path) -> dict[str, Any]:
    node = tools.executable("node")
    tools.npm_package("@asyncapi/parser")
    tools.version("node", [node, "--version"])
    done = subprocess.run(
        [node, str(PARSE), str(document)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"NPM_DIR": str(tools.NPM_DIR), "PATH": str(Path(node).parent)},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _validator(stem: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((generate.JSON_DIR / f"{stem}.schema.json").read_text())
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def test_the_official_parser_accepts_the_document_and_its_examples() -> None:
    result = parse(generate.ASYNCAPI)
    assert result["parsed"], result["diagnostics"]
    assert result["diagnostics"] == [], "errors, warnings or hints from the parser"
    doc = yaml.safe_load(generate.ASYNCAPI.read_text())
    assert doc["asyncapi"] == "3.1.0"
    stem_of = {
        name: message["payload"]["$ref"].removeprefix("./json/").removesuffix(".schema.json")
        for name, message in doc["components"]["messages"].items()
    }
    assert set(result["messages"]) == set(stem_of)
    assert set(stem_of.values()) == set(generate.MESSAGES)
    for name, examples in result["messages"].items():
        assert examples, f"{name} has no example"
        stem = stem_of[name]
        for example in examples:
            # As the parser read it, for the JSON Schema and for the model the worker uses.
            _validator(stem).validate(example["payload"])
            generate.MESSAGES[stem][0].model_validate_json(json.dumps(example["payload"]))


def test_the_parser_refuses_a_message_binding_with_delivery_mode(tmp_path: Path) -> None:
    """The check has teeth: the defect the issue saw is an error again when put back."""
    shutil.copytree(generate.JSON_DIR, tmp_path / "json")
    doc = yaml.safe_load(generate.ASYNCAPI.read_text())
    doc["components"]["messages"]["SyncRequest"]["bindings"] = {
        "amqp": {"deliveryMode": 2, "bindingVersion": "0.3.0"}
    }
    broken = tmp_path / "asyncapi.yaml"
    broken.write_text(yaml.safe_dump(doc, sort_keys=False))
    result = parse(broken)
    assert not result["parsed"]
    paths = {d["path"] for d in result["diagnostics"] if d["severity"] == "error"}
    assert "components/messages/SyncRequest/bindings/amqp/deliveryMode" in paths


def test_every_example_file_names_a_message_and_agrees_with_its_routing_key() -> None:
    assert generate._unclaimed_examples() == []
    for stem in generate.MESSAGES:
        assert generate.examples(stem)


def test_an_example_the_model_refuses_stops_the_generator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = json.loads((generate.EXAMPLES_DIR / "entity.upserted.json").read_text())
    (tmp_path / "entity.upserted.json").write_text(json.dumps({**body, "is_global": "true"}))
    monkeypatch.setattr(generate, "EXAMPLES_DIR", tmp_path)
    with pytest.raises(ValueError, match="is_global"):
        generate.examples("entity-upserted")
    (tmp_path / "entity.upserted.json").write_text(json.dumps(body))
    (tmp_path / "entity.renamed.json").write_text(json.dumps(body))
    with pytest.raises(generate.ExampleError, match=r"entity\.renamed"):
        generate.rendered()
