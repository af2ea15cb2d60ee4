"""The acknowledgement policy: every delivery ends in exactly one `Fate`.

applied (state committed, outputs in the outbox), duplicate (its event id was seen before),
dead-lettered (poison, rejected by a rule, refused by the database, or out of attempts) or
retried (transient, counted on the message in `x-attempts`). Handlers only raise; the error
tree (handlers/errors.py, typed in runtime/failure.py) and the queue's retry policy
(runtime/retry.py) decide here. Every fate is acked: a dead letter or a retry is a new message,
published and confirmed before the delivery it replaces is acked (runtime/settle.py).
"""

from __future__ import annotations

import enum

import structlog

from entity_sync.runtime import republish, retry
from entity_sync.runtime.delivery import Delivery
from entity_sync.runtime.failure import Failure
from entity_sync.runtime.result import BatchResult

log = structlog.get_logger("entity_sync.batch")


class Fate(enum.StrEnum):
    """The values are the metric labels and log keys (`entity_sync_messages_total{fate=...}`)."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    DEAD_LETTERED = "dead_lettered"
    RETRIED = "retried"


def fail(result: BatchResult, delivery: Delivery, failure: Failure, max_attempts: int) -> None:
    """Retry `delivery` after its queue's delay, or dead-letter it (permanent or exhausted).

    `max_attempts` applies to a delivery without a queue policy (a processor run on its own).
    """
    policy = delivery.policy or retry.QueuePolicy(max_attempts=max_attempts)
    delay = policy.decide(delivery.attempts, permanent=failure.permanent)
    if delay is None:
        dead_letter(result, delivery, failure)
        return
    log.info("retrying", reason=failure.reason, attempts=delivery.attempts + 1, delay=delay)
    result.publish.append(republish.retry(delivery, failure, delay))
    result.fates[Fate.RETRIED] += 1
    result.retries[(delivery.queue, failure.reason)] += 1


def dead_letter(result: BatchResult, delivery: Delivery, failure: Failure) -> None:
    """Record `delivery` as dead-lettered in `result`, with its dead letter to publish."""
    log.warning(
        "dead-lettered",
        queue=delivery.queue,
        reason=failure.reason,
        error=failure.message[:300],
        message_id=delivery.properties.get("message_id"),
    )
    result.publish.append(republish.dead_letter(delivery, failure))
    result.fates[Fate.DEAD_LETTERED] += 1
    result.dead_letters[(delivery.queue, failure.reason)] += 1
