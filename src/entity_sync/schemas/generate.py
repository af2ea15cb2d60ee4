"""Generate the JSON Schema files and the AsyncAPI 3 document from the message models.

    python -m entity_sync.schemas.generate  # rewrite json/*.schema.json, asyncapi.yaml
    python -m entity_sync.schemas.generate --check  # exit 1 if the files differ (CI)

The committed files are the contract for upstream systems in any language. Every message in
the AsyncAPI document carries examples: the model's own (`json_schema_extra={"examples": ...}`)
and every `examples/<routing key>[.<variant>].json` whose routing key is the message's. An
example the model refuses, or a message without one, stops the generator.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from entity_sync.schemas import inputs, outputs

HERE = Path(__file__).parent
JSON_DIR = HERE / "json"
ASYNCAPI = HERE / "asyncapi.yaml"
EXAMPLES_DIR = HERE / "examples"
BASE_ID = "https://entity-sync.dev/schemas/"

# file stem -> (model, routing key on the default prefix's exchange, direction)
MESSAGES: dict[str, tuple[type[BaseModel], str, str]] = {
    "object-shared": (inputs.ObjectShared, "object.shared.{object_type}", "in"),
    "entity-upserted": (inputs.EntityUpserted, "entity.upserted", "in"),
    "entity-connection": (inputs.EntityConnection, "entity.connection", "in"),
    "entity-settings": (inputs.EntitySettings, "entity.settings", "in"),
    "entity-control": (inputs.EntityControl, "entity.control", "in"),
    "sync-request": (inputs.SyncRequest, "sync.request", "in"),
    "target-update": (outputs.TargetUpdate, "target.{entity_id}.{object_type}", "out"),
    "share-exception": (outputs.ShareException, "share.exception.{entity_id}", "out"),
    "sync-completed": (outputs.SyncCompleted, "sync.completed", "out"),
}


def _object_shared_rules(schema: dict[str, Any]) -> None:
    """What the model checks in code, written as JSON Schema conditions for other languages."""
    defs = schema.setdefault("$defs", {})
    rules: list[dict[str, Any]] = []
    for object_type, model in inputs.DATA_MODELS.items():
        data_schema = model.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(data_schema.pop("$defs", {}))
        defs[model.__name__] = data_schema
        parent = inputs.PARENT_TYPE[object_type]
        rules.append(
            {
                "if": {"properties": {"object_type": {"const": object_type}}},
                "then": {
                    "properties": {"parent_id": {"type": "string"} if parent else {"type": "null"}}
                },
            }
        )
        rules.append(
            {
                "if": {
                    "properties": {
                        "object_type": {"const": object_type},
                        "action": {"const": "upsert"},
                    }
                },
                "then": {"properties": {"data": {"$ref": f"#/$defs/{model.__name__}"}}},
            }
        )
    schema["allOf"] = rules


def json_schema(stem: str) -> dict[str, Any]:
    model, routing_key, direction = MESSAGES[stem]
    schema = model.model_json_schema(ref_template="#/$defs/{model}")
    if model is inputs.ObjectShared:
        _object_shared_rules(schema)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{BASE_ID}{stem}.schema.json",
        "x-routing-key": routing_key,
        "x-exchange": f"entity-sync.{direction}",
        **schema,
    }


class ExampleError(ValueError):
    """An example file that names no message, or that its message's model refuses."""


def routing_pattern(routing_key: str) -> re.Pattern[str]:
    """`target.{entity_id}.{object_type}` -> a regex of the routing keys it stands for, with
    an optional `.<variant>` tail (`sync.request.crm_account` is a sync.request example)."""
    parts = [
        f"(?P<{p[1:-1]}>[^.]+)" if p.startswith("{") else re.escape(p)
        for p in routing_key.split(".")
    ]
    return re.compile(r"\.".join(parts) + r"(?:\.[\w-]+)?")


def examples(stem: str) -> list[dict[str, Any]]:
    """AsyncAPI Message Example objects of one message, each accepted by its model."""
    model, routing_key, _ = MESSAGES[stem]
    found: list[dict[str, Any]] = [
        {"name": f"{stem}-{i}", "payload": body}
        for i, body in enumerate(model.model_json_schema().get("examples", []), 1)
    ]
    pattern = routing_pattern(routing_key)
    for path in sorted(EXAMPLES_DIR.glob("*.json")):
        match = pattern.fullmatch(path.stem)
        if match is None:
            continue
        text = path.read_text()
        model.model_validate_json(text)  # raises: an example must be a valid message
        body = json.loads(text)
        words = {v for v in body.values() if isinstance(v, str)}
        if not set(match.groupdict().values()) <= words:
            raise ExampleError(f"{path.name}: routing key words {match.groupdict()} not in body")
        found.append({"name": path.stem, "summary": f"routing key {path.stem}", "payload": body})
    if not found:
        raise ExampleError(f"{stem}: no example (add {EXAMPLES_DIR.name}/<routing key>.json)")
    return found


def _unclaimed_examples() -> list[str]:
    patterns = [routing_pattern(key) for _, key, _ in MESSAGES.values()]
    return [
        p.name
        for p in sorted(EXAMPLES_DIR.glob("*.json"))
        if not any(pattern.fullmatch(p.stem) for pattern in patterns)
    ]


def _message(stem: str, name: str, model: type[BaseModel]) -> dict[str, Any]:
    return {
        "name": name,
        "title": model.__name__,
        "summary": (model.__doc__ or "").strip().splitlines()[0],
        "contentType": "application/json",
        "payload": {"$ref": f"./json/{stem}.schema.json"},
        "examples": examples(stem),
    }


def _channel(stem: str, name: str) -> dict[str, Any]:
    model, routing_key, direction = MESSAGES[stem]
    properties = model.model_json_schema().get("properties", {})
    params: dict[str, Any] = {}
    for p in routing_pattern(routing_key).groupindex:
        params[p] = {"description": p.replace("_", " ")}
        if "enum" in properties.get(p, {}):
            params[p]["enum"] = properties[p]["enum"]
    channel: dict[str, Any] = {
        "address": routing_key,
        "description": f"Routing key on the topic exchange entity-sync.{direction}.",
        "messages": {name: {"$ref": f"#/components/messages/{name}"}},
        "bindings": {
            "amqp": {
                "is": "routingKey",
                "exchange": {
                    "name": f"entity-sync.{direction}",
                    "type": "topic",
                    "durable": True,
                    "autoDelete": False,
                    "vhost": "/",
                },
                "bindingVersion": "0.3.0",
            }
        },
    }
    if params:
        channel["parameters"] = params
    return channel


def _operation(stem: str, name: str, receive: bool) -> dict[str, Any]:
    # Persistence, timestamps and acks are AMQP operation bindings (the message binding has
    # only contentEncoding and messageType). The worker acks after its commit and reads the
    # publisher's timestamp for the critical-time metric.
    binding: dict[str, Any] = {"deliveryMode": 2, "timestamp": True}
    if receive:
        binding["ack"] = True
    return {
        "action": "receive" if receive else "send",
        "channel": {"$ref": f"#/channels/{stem}"},
        "messages": [{"$ref": f"#/channels/{stem}/messages/{name}"}],
        "bindings": {"amqp": {**binding, "bindingVersion": "0.3.0"}},
    }


def asyncapi() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for stem, (model, _, direction) in MESSAGES.items():
        name = "".join(part.title() for part in stem.split("-"))
        messages[name] = _message(stem, name, model)
        channels[stem] = _channel(stem, name)
        receive = direction == "in"
        operations[f"{'receive' if receive else 'send'}{name}"] = _operation(stem, name, receive)
    return {
        "asyncapi": "3.1.0",
        "info": {
            "title": "entity-sync",
            "version": "1.0.0",
            "description": (
                "Events entity-sync consumes from entity-sync.in and publishes on "
                "entity-sync.out (default prefix). Bodies are UTF-8 JSON; the AMQP message_id "
                "equals the body's event_id or request_id. Dead letters keep the original body "
                "and add x-error-* headers (README, Operations)."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "rabbitmq": {"host": "localhost:5672", "protocol": "amqp", "protocolVersion": "0-9-1"}
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def rendered() -> dict[Path, str]:
    unclaimed = _unclaimed_examples()
    if unclaimed:
        raise ExampleError(f"examples whose routing key no message has: {unclaimed}")
    files = {
        JSON_DIR / f"{stem}.schema.json": json.dumps(json_schema(stem), indent=2, sort_keys=False)
        + "\n"
        for stem in MESSAGES
    }
    files[ASYNCAPI] = yaml.safe_dump(asyncapi(), sort_keys=False, width=100)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate JSON Schemas and AsyncAPI.")
    parser.add_argument("--check", action="store_true", help="fail if committed files differ")
    args = parser.parse_args(argv)
    stale = [p for p, text in rendered().items() if not p.exists() or p.read_text() != text]
    if args.check:
        for path in stale:
            print(f"out of date: {path.relative_to(HERE.parent)}", file=sys.stderr)
        return 1 if stale else 0
    JSON_DIR.mkdir(exist_ok=True)
    for path, text in rendered().items():
        path.write_text(text)
    print(f"wrote {len(MESSAGES)} JSON Schemas and asyncapi.yaml")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
