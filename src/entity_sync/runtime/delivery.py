"""A received message, independent of the transport it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel

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
