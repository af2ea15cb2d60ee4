"""Dead letters and retries: the original body and properties, plus failure headers (§6).

Headers on every dead letter and retry: `x-error-type` (the reason code), `x-error-message`
(cut to 2,048 characters), `x-exception-type`, `x-error-at` (this failure, = `x-last-failure-at`),
`x-first-failure-at`, `x-attempts` (failed deliveries so far), `x-original-queue`,
`x-original-routing-key`, `x-error-host` and `x-error-pid` (the worker that failed it).
Retries also carry `x-retry-delay` (seconds) and `x-retry-due` (epoch seconds).
The body and the AMQP properties are kept as they were (`user_id` travels as a header).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
from typing import Any

from entity_sync.runtime.broker import OutMessage
from entity_sync.runtime.delivery import Delivery
from entity_sync.runtime.topology import Names

MAX_ERROR_MESSAGE = 2048
# Properties a republish keeps. `user_id` is not among them: RabbitMQ refuses a message whose
# user_id differs from the publishing connection's user, so it travels as a header instead.
_KEPT_PROPERTIES = ("correlation_id", "reply_to", "expiration", "type", "app_id", "priority")
_HOST = socket.gethostname()
# Headers the worker and the broker add on failures; `dlq replay` removes them.
FAILURE_HEADERS = (
    "x-error-type",
    "x-error-message",
    "x-exception-type",
    "x-error-at",
    "x-first-failure-at",
    "x-last-failure-at",
    "x-attempts",
    "x-error-host",
    "x-error-pid",
    "x-retry-delay",
    "x-retry-due",
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
    "x-delivery-count",
)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _republished(delivery: Delivery, headers: dict[str, Any], routing_key: str) -> OutMessage:
    props = delivery.properties
    extra = {k: props[k] for k in _KEPT_PROPERTIES if props.get(k) is not None}
    if props.get("timestamp") is not None:
        extra["timestamp"] = props["timestamp"]
    if props.get("user_id"):
        headers.setdefault("x-original-user-id", props["user_id"])
    return OutMessage(
        exchange="",
        routing_key=routing_key,
        body=delivery.body,
        message_id=props.get("message_id"),
        headers=headers,
        content_type=props.get("content_type") or "application/octet-stream",
        content_encoding=props.get("content_encoding") or "binary",
        extra=extra,
    )


def failure_headers(
    delivery: Delivery,
    reason: str,
    message: str,
    attempts: int,
    exception_type: str | None = None,
) -> dict[str, Any]:
    now = _now()
    headers = dict(delivery.headers)
    headers.update(
        {
            "x-error-type": reason,
            "x-error-message": message[:MAX_ERROR_MESSAGE],
            "x-exception-type": exception_type or "",
            "x-error-at": now,
            "x-first-failure-at": delivery.headers.get("x-first-failure-at") or now,
            "x-last-failure-at": now,
            "x-attempts": attempts,
            "x-original-queue": delivery.headers.get("x-original-queue") or delivery.queue,
            "x-original-routing-key": delivery.original_routing_key,
            "x-error-host": _HOST,
            "x-error-pid": os.getpid(),
        }
    )
    for stale in ("x-retry-delay", "x-retry-due"):
        headers.pop(stale, None)
    return headers


def dead_letter(
    delivery: Delivery, reason: str, message: str, exception_type: str | None = None
) -> OutMessage:
    """The message for `<queue>.dlq`: can never succeed as it is."""
    headers = failure_headers(delivery, reason, message, delivery.attempts + 1, exception_type)
    return _republished(delivery, headers, Names.dlq(delivery.queue))


def retry(
    delivery: Delivery,
    reason: str,
    message: str,
    delay_seconds: int,
    exception_type: str | None = None,
) -> OutMessage:
    """The message for the queue's delay queue: back in its queue after `delay_seconds`."""
    headers = failure_headers(delivery, reason, message, delivery.attempts + 1, exception_type)
    headers["x-retry-delay"] = delay_seconds
    headers["x-retry-due"] = round(time.time() + delay_seconds, 3)
    return _republished(delivery, headers, Names.retry_queue(delivery.queue, delay_seconds))
