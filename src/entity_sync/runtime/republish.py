"""Every message the worker or the operator publishes again: dead letter, retry, replay, and
a due retry moved back on the embedded broker. One list of kept properties for all of them.

Headers on every dead letter and retry: `x-error-type` (the reason code), `x-error-message`
(cut to 2,048 characters), `x-exception-type`, `x-error-at` (this failure, = `x-last-failure-at`),
`x-first-failure-at`, `x-attempts` (failed deliveries so far), `x-original-queue`,
`x-original-routing-key`, `x-error-host` and `x-error-pid` (the worker that failed it).
Retries also carry `x-retry-delay` (seconds) and `x-retry-due` (epoch seconds).
The body and the AMQP properties are kept as they were (`user_id` travels as a header).
A replay removes the failure and death headers and adds `x-replayed-*` and `x-replay-count`.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
from collections.abc import Mapping
from typing import Any, Protocol

from entity_sync.runtime.broker import OutMessage
from entity_sync.runtime.delivery import Delivery
from entity_sync.runtime.failure import Failure
from entity_sync.runtime.topology import Names

MAX_ERROR_MESSAGE = 2048
# AMQP properties every republish keeps besides message_id, content type and encoding.
# `user_id` is not among them: RabbitMQ refuses a message whose user_id differs from the
# publishing connection's user, so it travels as the header `x-original-user-id`. `expiration`
# is not either: a dead letter must not expire in its dead-letter queue.
KEPT_PROPERTIES = ("correlation_id", "reply_to", "type", "app_id", "priority", "timestamp")
_HOST = socket.gethostname()
# Headers the worker and the broker add on failures; a replay removes them.
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


class Letter(Protocol):
    """A message taken from a dead-letter queue (operations/letters.py `DeadLetter`)."""

    @property
    def queue(self) -> str: ...
    @property
    def routing_key(self) -> str: ...
    @property
    def body(self) -> bytes: ...
    @property
    def headers(self) -> dict[str, Any]: ...
    @property
    def properties(self) -> dict[str, Any]: ...
    @property
    def original_queue(self) -> str: ...


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _message(
    routing_key: str, body: bytes, props: Mapping[str, Any], headers: dict[str, Any]
) -> OutMessage:
    """To `routing_key` through the default exchange, with the kept properties of `props`."""
    return OutMessage(
        exchange="",
        routing_key=routing_key,
        body=body,
        message_id=props.get("message_id"),
        headers=headers,
        content_type=props.get("content_type") or "application/octet-stream",
        content_encoding=props.get("content_encoding") or "binary",
        extra={k: props[k] for k in KEPT_PROPERTIES if props.get(k) is not None},
    )


def failure_headers(delivery: Delivery, failure: Failure) -> dict[str, Any]:
    """The delivery's headers with this failure's added (one more attempt counted)."""
    now = _now()
    headers = dict(delivery.headers)
    headers.update(
        {
            "x-error-type": failure.reason,
            "x-error-message": failure.message[:MAX_ERROR_MESSAGE],
            "x-exception-type": failure.exception_type,
            "x-error-at": now,
            "x-first-failure-at": delivery.headers.get("x-first-failure-at") or now,
            "x-last-failure-at": now,
            "x-attempts": delivery.attempts + 1,
            "x-original-queue": delivery.headers.get("x-original-queue") or delivery.queue,
            "x-original-routing-key": delivery.original_routing_key,
            "x-error-host": _HOST,
            "x-error-pid": os.getpid(),
        }
    )
    for stale in ("x-retry-delay", "x-retry-due"):
        headers.pop(stale, None)
    if delivery.properties.get("user_id"):
        headers.setdefault("x-original-user-id", delivery.properties["user_id"])
    return headers


def dead_letter(delivery: Delivery, failure: Failure) -> OutMessage:
    """The message for `<queue>.dlq`: it can never succeed as it is."""
    headers = failure_headers(delivery, failure)
    return _message(Names.dlq(delivery.queue), delivery.body, delivery.properties, headers)


def retry(delivery: Delivery, failure: Failure, delay_seconds: int) -> OutMessage:
    """The message for the queue's delay queue: back in its queue after `delay_seconds`."""
    headers = failure_headers(delivery, failure)
    headers["x-retry-delay"] = delay_seconds
    headers["x-retry-due"] = round(time.time() + delay_seconds, 3)
    target = Names.retry_queue(delivery.queue, delay_seconds)
    return _message(target, delivery.body, delivery.properties, headers)


def moved_back(source: str, message: Any) -> OutMessage:
    """A due retry of the embedded broker's delay queue, back to its `source` queue as it is
    (RabbitMQ's dead-lettering, which this stands in for, keeps the message whole too)."""
    body = message.body
    if isinstance(body, str):
        body = body.encode(message.content_encoding or "utf-8", "surrogateescape")
    props = {
        **message.properties,
        "content_type": message.content_type,
        "content_encoding": message.content_encoding,
    }
    return _message(source, body, props, dict(message.headers or {}))


def replayed(letter: Letter, who: str, conn_user: str | None) -> OutMessage:
    """A dead letter sent back to its queue by an operator, failure headers removed."""
    headers = {k: v for k, v in letter.headers.items() if k not in FAILURE_HEADERS}
    count = headers.get("x-replay-count")
    headers.update(
        {
            "x-replayed-by": who,
            "x-replayed-at": _now(),
            "x-replayed-from": letter.queue,
            "x-replay-count": (count if isinstance(count, int) else 0) + 1,
            "x-original-queue": letter.original_queue,
        }
    )
    headers.setdefault("x-original-routing-key", letter.routing_key)
    out = _message(letter.original_queue, letter.body, letter.properties, headers)
    original_user = headers.get("x-original-user-id")
    if original_user and original_user == conn_user:
        out.extra["user_id"] = original_user  # RabbitMQ accepts only the connection's own user
    return out
