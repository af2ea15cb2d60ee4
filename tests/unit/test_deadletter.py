"""Dead-letter and retry messages: failure headers added, body and properties untouched."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import Any

from entity_sync.handlers.errors import InvalidMessage, RetryLater
from entity_sync.runtime import republish
from entity_sync.runtime.ack_policy import Fate
from entity_sync.runtime.delivery import Delivery
from entity_sync.runtime.failure import Failure


def _delivery(**headers: object) -> Delivery:
    return Delivery(
        queue="p.object-shared",
        routing_key="object.shared.product",
        exchange="p.in",
        body=b'{"event_id": "e-1"}',
        headers={"trace": "t-1", **headers},
        properties={
            "message_id": "e-1",
            "content_type": "application/json",
            "content_encoding": "utf-8",
            "timestamp": 1_700_000_000,
            "user_id": "upstream",
            "correlation_id": "c-1",
            "app_id": "billing",
        },
    )


def test_dead_letter_carries_every_failure_header_and_the_original_message() -> None:
    out = republish.dead_letter(
        _delivery(), Failure.of(InvalidMessage("x" * 5000, reason="schema_invalid"))
    )
    h = out.headers
    assert (out.exchange, out.routing_key) == ("", "p.object-shared.dlq")
    assert out.body == b'{"event_id": "e-1"}'
    assert out.message_id == "e-1"
    assert out.extra == {"correlation_id": "c-1", "app_id": "billing", "timestamp": 1_700_000_000}
    assert h["trace"] == "t-1"  # the publisher's own headers stay
    assert h["x-error-type"] == "schema_invalid"
    assert h["x-error-message"] == "x" * 2048
    assert h["x-exception-type"] == "InvalidMessage"
    assert h["x-attempts"] == 1
    assert h["x-original-queue"] == "p.object-shared"
    assert h["x-original-routing-key"] == "object.shared.product"
    assert h["x-first-failure-at"] == h["x-last-failure-at"] == h["x-error-at"]
    assert h["x-error-host"] == socket.gethostname()
    assert h["x-error-pid"] == os.getpid()
    assert h["x-original-user-id"] == "upstream"


def test_retry_goes_to_the_delay_queue_and_keeps_the_first_failure_time() -> None:
    first = "2026-01-01T00:00:00.000Z"
    delivery = _delivery(**{"x-attempts": 2, "x-first-failure-at": first})
    before = time.time()
    out = republish.retry(delivery, Failure.of(RetryLater("later", reason="unknown_entity")), 30)
    assert out.routing_key == "p.object-shared.retry.30s"
    assert out.headers["x-attempts"] == 3
    assert out.headers["x-first-failure-at"] == first
    assert out.headers["x-last-failure-at"] != first
    assert out.headers["x-retry-delay"] == 30
    assert before + 29.99 <= out.headers["x-retry-due"] <= time.time() + 30.01
    # A retry that comes back through the default exchange keeps its original routing key.
    back = _delivery(**out.headers)
    back.exchange, back.routing_key = "", "p.object-shared"
    assert back.original_routing_key == "object.shared.product"
    final = republish.dead_letter(back, Failure.of(RetryLater("gave up", reason="unknown_entity")))
    assert "x-retry-due" not in final.headers
    assert final.headers["x-attempts"] == 4


@dataclass
class _Letter:
    """A dead letter as `dlq replay` reads it back from the queue."""

    queue: str
    routing_key: str
    body: bytes
    headers: dict[str, Any]
    properties: dict[str, Any]

    @property
    def original_queue(self) -> str:
        return self.queue.removesuffix(".dlq")


def test_dead_letter_retry_and_replay_keep_the_same_properties() -> None:
    delivery = _delivery()
    delivery.properties.update(reply_to="r-1", priority=3, type="t", expiration="60000")
    dead = republish.dead_letter(delivery, Failure.of(KeyError("k")))
    retried = republish.retry(delivery, Failure.of(RetryLater("later")), 5)
    letter = _Letter(
        dead.routing_key, "", dead.body, dead.headers, {"message_id": "e-1", **dead.extra}
    )
    replayed = republish.replayed(letter, "ops", conn_user=None)
    assert dead.extra == retried.extra == replayed.extra
    assert set(dead.extra) == set(republish.KEPT_PROPERTIES)  # no expiration, no user_id
    assert dead.headers["x-exception-type"] == "KeyError"
    assert dead.headers["x-error-message"] == "KeyError: 'k'"
    assert (replayed.routing_key, replayed.headers["x-replay-count"]) == ("p.object-shared", 1)
    assert not set(replayed.headers) & set(republish.FAILURE_HEADERS)
    assert replayed.headers["x-original-user-id"] == "upstream"


def test_fates_keep_the_names_metrics_and_logs_use() -> None:
    assert [str(f) for f in Fate] == ["applied", "duplicate", "dead_lettered", "retried"]
