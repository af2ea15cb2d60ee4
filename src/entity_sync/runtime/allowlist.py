"""Who may publish to an input queue: an allowlist of AMQP `user_id`s (off by default).

RabbitMQ checks that a message's `user_id` property equals the user of the connection that
published it, so the property names the publisher reliably. With ENTITY_SYNC_ALLOWED_PUBLISHERS
naming a queue, a message on that queue whose `user_id` is missing or not listed is
dead-lettered with reason `publisher_not_allowed`. Queues not named accept anyone.
"""

from __future__ import annotations

from entity_sync.config import Settings
from entity_sync.handlers.errors import PermanentError
from entity_sync.runtime.delivery import Delivery
from entity_sync.runtime.retry import short_name
from entity_sync.runtime.topology import Names

REASON = "publisher_not_allowed"


class PublisherNotAllowed(PermanentError):
    reason = REASON


def allowed_for(settings: Settings, queue: str) -> frozenset[str] | None:
    """The user_ids allowed to publish to `queue`, or None when anyone may."""
    users = settings.allowed_publishers.get(short_name(Names(settings.prefix), queue))
    return None if users is None else frozenset(users)


def check(delivery: Delivery) -> PublisherNotAllowed | None:
    """The refusal for a delivery whose publisher is not on its queue's list, else None."""
    allowed = delivery.allowed_publishers
    if allowed is None:
        return None
    user = delivery.properties.get("user_id")
    if user in allowed:
        return None
    who = f"user_id {str(user)[:64]!r}" if user else "no user_id"
    return PublisherNotAllowed(f"{who} may not publish to {delivery.queue}")
