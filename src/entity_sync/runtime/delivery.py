"""A received message, independent of the transport it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel

    from entity_sync.runtime.envelope import Envelope, Poison
    from entity_sync.runtime.retry import QueuePolicy


@dataclass(slots=True)
class Delivery:
    queue: str
    routing_key: str
    exchange: str
    body: bytes
    headers: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    delivery_tag: int = 0
    generation: int = 0  # connection generation: never ack a tag from an older channel
    raw: Any = None  # the transport's message object, for transports that ack per message
    # The queue's settings, attached by the consumer: retry policy (None: the processor's
    # default), the AMQP user_ids allowed to publish to it (None: anyone) and the message kinds
    # that belong in it (None: any kind; anything else is dead-lettered as `wrong_queue`).
    policy: QueuePolicy | None = None
    allowed_publishers: frozenset[str] | None = None
    accepts: frozenset[type[BaseModel]] | None = None
    # The body decoded (runtime/envelope.py `Envelope` or `Poison`) when it came in, on the loop
    # thread, so the database stage's thread does not spend its time on it; None: not yet.
    decoded: Envelope | Poison | None = None

    @property
    def original_routing_key(self) -> str:
        """The routing key it was first published with (retries go via the default exchange)."""
        if self.exchange == "" and isinstance(self.headers.get("x-original-routing-key"), str):
            return str(self.headers["x-original-routing-key"])
        return self.routing_key

    @property
    def attempts(self) -> int:
        value = self.headers.get("x-attempts", 0)
        return value if isinstance(value, int) and value >= 0 else 0


# The AMQP properties a delivery keeps (dead letters and retries republish some of them).
_PROPERTIES = (
    "message_id",
    "content_type",
    "content_encoding",
    "timestamp",
    "user_id",
    "correlation_id",
    "type",
    "app_id",
)


@dataclass(frozen=True, slots=True)
class Inbound:
    """An input queue and the settings its deliveries carry (see `Delivery`)."""

    queue: str
    policy: QueuePolicy | None
    allowed_publishers: frozenset[str] | None
    accepts: frozenset[type[BaseModel]] | None

    def delivery(self, message: Any, generation: int) -> Delivery:
        """A transport's message (kombu's, or runtime/amqp_inbound.py `Received`) as a
        `Delivery` of this queue, taken on connection `generation`."""
        info = message.delivery_info
        props = message.properties
        return Delivery(
            queue=self.queue,
            routing_key=str(info.get("routing_key") or ""),
            exchange=str(info.get("exchange") or ""),
            body=_raw_body(message),
            headers=dict(message.headers or {}),
            properties={name: props.get(name) for name in _PROPERTIES},
            delivery_tag=int(info.get("delivery_tag") or 0),
            generation=generation,
            raw=message,
            policy=self.policy,
            allowed_publishers=self.allowed_publishers,
            accepts=self.accepts,
        )


def _raw_body(message: Any) -> bytes:
    body = message.body
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):  # a transport that decoded it anyway: undo with its encoding
        return body.encode(message.content_encoding or "utf-8", errors="surrogateescape")
    return bytes(body)
