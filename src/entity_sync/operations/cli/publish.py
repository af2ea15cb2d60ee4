"""`publish KIND FILE|-`: send JSON events to the right routing key, as an upstream would."""

from __future__ import annotations

from typing import Any

import click
import orjson
from pydantic import ValidationError

from entity_sync.handlers.errors import InvalidMessage
from entity_sync.operations.cli.common import app_context, broker_connection
from entity_sync.runtime import retry
from entity_sync.runtime.broker import ConfirmingPublisher, OutMessage
from entity_sync.runtime.envelope import _summary
from entity_sync.runtime.topology import declare
from entity_sync.schemas.inputs import ADMIN_MODELS, ObjectShared, SyncRequest

KINDS = [*ADMIN_MODELS, "object.shared", "sync.request"]


def routing_key_for(kind: str, body: dict[str, Any]) -> str:
    if kind.startswith("object.shared"):
        return f"object.shared.{body.get('object_type', '')}" if kind == "object.shared" else kind
    return kind


def _validate(kind: str, body: dict[str, Any]) -> None:
    model = (
        ObjectShared
        if kind.startswith("object.shared")
        else SyncRequest
        if kind == "sync.request"
        else ADMIN_MODELS[kind]
    )
    try:
        model.model_validate(body)
    except ValidationError as exc:
        raise InvalidMessage(_summary(exc)) from None


@click.command()
@click.argument("kind", metavar="KIND")
@click.argument("source", type=click.File("rb"), metavar="FILE|-")
@click.option("--no-validate", is_flag=True, help="Send even if the body breaks the contract.")
def publish(kind: str, source: Any, no_validate: bool) -> None:
    """Publish a JSON event (or a JSON array of events) of KIND to the in exchange.

    KIND is one of entity.upserted, entity.connection, entity.settings, entity.control,
    object.shared (routing key completed from object_type) or sync.request.
    """
    if kind not in KINDS and not kind.startswith("object.shared."):
        raise click.BadParameter(f"{kind!r} is not one of {', '.join(KINDS)}", param_hint="KIND")
    try:
        parsed = orjson.loads(source.read())
    except orjson.JSONDecodeError as exc:
        raise InvalidMessage(f"{source.name}: not JSON: {exc}", reason="invalid_json") from None
    bodies = parsed if isinstance(parsed, list) else [parsed]
    if not all(isinstance(b, dict) for b in bodies):
        raise InvalidMessage(f"{source.name}: expected a JSON object or an array of objects")
    if not no_validate:
        for body in bodies:
            _validate(kind, body)
    with app_context() as app, broker_connection(app.settings, retries=3) as conn:
        declare(
            conn, app.names, retry.delay_queues(app.settings)
        )  # the embedded broker keeps bindings per process
        publisher = ConfirmingPublisher(conn)
        messages = []
        for body in bodies:
            event_id = body.get("event_id") or body.get("request_id")
            messages.append(
                OutMessage(
                    app.names.in_exchange,
                    routing_key_for(kind, body),
                    orjson.dumps(body),
                    message_id=str(event_id) if event_id else None,
                )
            )
        publisher.publish_many(messages)
        publisher.close()
    for msg in messages:
        click.echo(f"published {msg.message_id or '(no id)'} -> {msg.routing_key}")
