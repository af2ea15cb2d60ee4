"""Decode and validate a delivery into a contract model, or say why it is poison.

The only place that turns bytes into messages: size, UTF-8, JSON, routing key, queue, schema.
The routing key (or, for a message that came back through the default exchange, its
`x-original-routing-key` header) names the kind; the kind must belong to the queue the message
was taken from, whatever its headers say, so no handler ever sees a kind it has no rule for.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from pydantic import BaseModel, ValidationError

from entity_sync.handlers.errors import InvalidMessage
from entity_sync.runtime.delivery import Delivery
from entity_sync.runtime.topology import Names
from entity_sync.schemas.inputs import ADMIN_MODELS, ObjectShared, SyncRequest


@dataclass(slots=True)
class Envelope:
    delivery: Delivery
    model: BaseModel
    event_id: str


@dataclass(slots=True)
class Poison:
    delivery: Delivery
    reason: str
    message: str

    def error(self) -> InvalidMessage:
        """As the error tree's type: a poison message is an `InvalidMessage`, never retried."""
        return InvalidMessage(self.message, reason=self.reason)


def kinds_by_queue(names: Names) -> dict[str, frozenset[type[BaseModel]]]:
    """Input queue -> the message kinds that belong in it (its binding on the in exchange)."""
    return {
        names.sync_request: frozenset({SyncRequest}),
        names.object_shared: frozenset({ObjectShared}),
        names.entity_admin: frozenset(ADMIN_MODELS.values()),
    }


def _model_for(routing_key: str) -> type[BaseModel] | None:
    if routing_key.startswith("object.shared."):
        return ObjectShared
    if routing_key == "sync.request":
        return SyncRequest
    return ADMIN_MODELS.get(routing_key)


def _summary(exc: ValidationError, limit: int = 5) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False)[:limit]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    more = exc.error_count() - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def decode(delivery: Delivery, max_body_bytes: int) -> Envelope | Poison:
    body = delivery.body
    if len(body) > max_body_bytes:
        return Poison(
            delivery, "oversize_body", f"body of {len(body)} bytes is over {max_body_bytes}"
        )
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Poison(delivery, "not_utf8", f"body is not UTF-8: {exc.reason} at byte {exc.start}")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return Poison(delivery, "invalid_json", f"body is not JSON: {exc}")
    routing_key = delivery.original_routing_key
    model = _model_for(routing_key)
    if model is None:
        return Poison(delivery, "unknown_routing_key", f"no message kind for {routing_key[:255]!r}")
    if delivery.accepts is not None and model not in delivery.accepts:
        return Poison(
            delivery,
            "wrong_queue",
            f"a {routing_key[:255]!r} message does not belong in queue {delivery.queue!r}",
        )
    if not isinstance(data, dict):
        return Poison(delivery, "schema_invalid", "body must be a JSON object")
    try:
        message = model.model_validate(data)
    except ValidationError as exc:
        return Poison(delivery, "schema_invalid", _summary(exc))
    if isinstance(message, ObjectShared) and routing_key != f"object.shared.{message.object_type}":
        return Poison(
            delivery,
            "schema_invalid",
            f"routing key {routing_key[:255]!r} does not match object_type {message.object_type!r}",
        )
    event_id = getattr(message, "event_id", None) or getattr(message, "request_id", "")
    return Envelope(delivery, message, str(event_id))
