"""The retry policy: which failures are retried, how often, and after how long.

Taxonomy (handlers/errors.py): a `PermanentError` (poison, schema-invalid, rule-rejected,
publisher not allowed) is dead-lettered at once; a `TransientError`, and any unexpected
exception, is retried with the queue's delay schedule until `max_attempts` failures, then
dead-lettered.

Attempts are counted on the message itself (header `x-attempts`: failed deliveries so far), so
the count survives restarts and is shared by every worker: no attempts x workers.

Delays. On RabbitMQ a retry is published to a fixed-TTL delay queue `<queue>.retry.<N>s` (a
quorum queue with `x-message-ttl`, dead-lettering at least once back to `<queue>` through the
default exchange); the broker holds it for N seconds and puts it back in the source queue, so
nothing is held in a worker's memory. On the embedded broker (kombu virtual transport, which has
no TTL or dead-lettering) a retry goes to a queue of the same name with the header
`x-retry-due` (epoch seconds); the worker's `EmbeddedRetryMover` moves due messages back to the
source queue, publishing before it acks. Both give the same observable behaviour: the message
returns to its queue after N seconds with `x-attempts` raised by one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from kombu.connection import Connection
from kombu.entity import Queue

from entity_sync.config import Settings
from entity_sync.handlers.errors import PermanentError
from entity_sync.runtime import republish
from entity_sync.runtime.broker import ConfirmingPublisher, OutMessage
from entity_sync.runtime.topology import Names, is_rabbitmq, retry_queues

log = structlog.get_logger("entity_sync.retry")

RETRY_DUE_HEADER = "x-retry-due"


@dataclass(frozen=True, slots=True)
class QueuePolicy:
    """Retry policy of one input queue."""

    max_attempts: int = 5
    delays: tuple[int, ...] = (1, 5, 30, 120)

    def delay_for(self, failures: int) -> int:
        """Seconds to wait before the delivery after the `failures`-th failure (1-based)."""
        return self.delays[min(max(failures, 1), len(self.delays)) - 1]

    def decide(self, attempts_before: int, *, permanent: bool) -> int | None:
        """The retry delay in seconds, or None to dead-letter now.

        `attempts_before` is the message's `x-attempts` (failed deliveries before this one).
        """
        failures = attempts_before + 1
        if permanent or failures >= self.max_attempts:
            return None
        return self.delay_for(failures)


def is_permanent(exc: BaseException) -> bool:
    """Permanent errors are dead-lettered at once; everything else is worth retrying."""
    return isinstance(exc, PermanentError)


def short_name(names: Names, queue: str) -> str:
    """`entity-sync.object-shared` -> `object-shared` (the key of per-queue settings)."""
    head = f"{names.prefix}."
    return queue[len(head) :] if queue.startswith(head) else queue


def policy_for(settings: Settings, queue: str) -> QueuePolicy:
    """The policy of one input queue: the global settings with its override applied."""
    override = settings.retry_per_queue.get(short_name(Names(settings.prefix), queue))
    max_attempts = settings.max_attempts
    delays = settings.delays()
    if override is not None:
        max_attempts = override.max_attempts or max_attempts
        delays = tuple(override.delays) if override.delays else delays
    return QueuePolicy(max_attempts=max_attempts, delays=delays)


def delay_queues(settings: Settings) -> dict[str, tuple[int, ...]]:
    """Input queue -> the distinct delays its retries may use (what topology declares)."""
    names = Names(settings.prefix)
    out: dict[str, tuple[int, ...]] = {}
    for queue in names.bindings():
        policy = policy_for(settings, queue)
        used = {policy.delay_for(n) for n in range(1, max(policy.max_attempts, 1))}
        out[queue] = tuple(sorted(used))
    return out


class EmbeddedRetryMover:
    """Moves due retries from the embedded broker's delay queues back to their source queue.

    Each delay queue has one fixed delay, so its messages are due in the order they arrive: the
    head is held (unacked) until it is due, then published to the source queue and acked. Not
    used on RabbitMQ, where the delay queues dead-letter by themselves.
    """

    def __init__(
        self, conn: Connection, publisher: ConfirmingPublisher, delays: Mapping[str, Iterable[int]]
    ) -> None:
        self.channel = conn.channel()
        self.publisher = publisher
        self.queues = [
            (source, Queue(Names.retry_queue(source, d), durable=True)(self.channel))
            for source, ds in delays.items()
            for d in ds
        ]
        self._held: dict[str, Any] = {}

    def move_due(self, now: float | None = None) -> int:
        """Move every retry that is due; returns how many were moved."""
        now = time.time() if now is None else now
        moved = 0
        for source, queue in self.queues:
            while True:
                message = self._held.pop(queue.name, None) or queue.get(no_ack=False)
                if message is None:
                    break
                headers = dict(message.headers or {})
                due = headers.get(RETRY_DUE_HEADER)
                if isinstance(due, int | float) and due > now:
                    self._held[queue.name] = message
                    break
                self.publisher.publish_many([republish.moved_back(source, message)])
                message.ack()
                moved += 1
        if moved:
            log.info("retries due, moved back", count=moved)
        return moved

    def close(self) -> None:
        self._held.clear()
        with contextlib.suppress(Exception):
            self.channel.close()  # unacked held messages return to their delay queue


class DelayQueues:
    """Declares the delay queues retries go to, once per connection, when first used.

    Declared on first use rather than at start-up, so a deployment (or a test) that never
    retries has no delay queues. Publishing to an undeclared queue through the default
    exchange would drop the message, so this runs before every publish of a batch.
    """

    def __init__(self, conn: Connection, channel: Any, delays: dict[str, tuple[int, ...]]) -> None:
        self.conn = conn
        self.channel = channel
        self.delays = delays
        self.declared: set[str] = set()

    def ensure(self, messages: list[OutMessage]) -> None:
        wanted = {
            m.routing_key for m in messages if m.exchange == "" and ".retry." in m.routing_key
        } - self.declared
        if not wanted:
            return
        rabbit = is_rabbitmq(self.conn)
        for source, delays in self.delays.items():
            for queue in retry_queues(source, delays, rabbit):
                if queue.name in wanted:
                    queue(self.channel).declare()
                    self.declared.add(queue.name)
