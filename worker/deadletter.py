"""Dead letters and retries: the original body and properties, plus failure headers (§6)."""

from __future__ import annotations

import datetime as dt
import os
import socket
from typing import Any

from worker.broker import OutMessage
from worker.delivery import Delivery
from worker.topology import Names

MAX_ERROR_MESSAGE = 2048
# Properties a republish keeps. `user_id` is not among them: RabbitMQ refuses a message whose
# user_id differs from the publishing connection's user, so it travels as a header instead.
_KEPT_PROPERTIES = ("correlation_id", "reply_to", "expiration", "type", "app_id", "priority")
_HOST = socket.gethostname()


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


def failure_headers(delivery: Delivery, reason: str, message: str, attempts: int) -> dict[str, Any]:
    now = _now()
    headers = dict(delivery.headers)
    headers.update(
        {
            "x-error-type": reason,
            "x-error-message": message[:MAX_ERROR_MESSAGE],
            "x-error-at": now,
            "x-first-failure-at": delivery.headers.get("x-first-failure-at") or now,
            "x-attempts": attempts,
            "x-original-queue": delivery.headers.get("x-original-queue") or delivery.queue,
            "x-original-routing-key": delivery.original_routing_key,
            "x-error-host": _HOST,
            "x-error-pid": os.getpid(),
        }
    )
    return headers


def dead_letter(delivery: Delivery, reason: str, message: str) -> OutMessage:
    """The message for `<queue>.dlq`: can never succeed as it is."""
    headers = failure_headers(delivery, reason, message, delivery.attempts + 1)
    return _republished(delivery, headers, Names.dlq(delivery.queue))


def retry(delivery: Delivery, reason: str, message: str) -> OutMessage:
    """The same message back to its queue with one more attempt counted on it."""
    headers = failure_headers(delivery, reason, message, delivery.attempts + 1)
    return _republished(delivery, headers, delivery.queue)
