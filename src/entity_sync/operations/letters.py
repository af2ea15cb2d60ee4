"""A failed message as operators see it: its id, error, group, body; and the replayed copy.

Pure: no broker, no database. Built from a broker message (ingestion, `peek`) or from a row of
`failed_messages` (every read of the CLI and the console).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from kombu.connection import Connection
from kombu.entity import Queue

from entity_sync.operations.context import close_channel

_VOLATILE = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|'[^']*'|\"[^\"]*\"|\d+"
)


@dataclass(slots=True)
class DeadLetter:
    queue: str
    routing_key: str
    body: bytes
    headers: dict[str, Any]
    properties: dict[str, Any]
    copies: int = 1  # broker copies of this failure (a crash between publish and ack adds one)
    failures: int = 1  # times it failed: a replay that fails again adds one
    status: str = "failed"  # failed | replayed | purged

    @property
    def id(self) -> str:
        """The AMQP message_id, or a stable id from the body for messages without one."""
        message_id = self.properties.get("message_id")
        if message_id:
            return str(message_id)
        return "sha-" + hashlib.sha256(self.body).hexdigest()[:12]

    @property
    def error_type(self) -> str:
        value = self.headers.get("x-error-type")
        if value:
            return str(value)
        # Dead-lettered by the broker itself (e.g. the quorum delivery limit).
        return f"broker:{self.headers.get('x-first-death-reason') or 'unknown'}"

    @property
    def error_message(self) -> str:
        return str(self.headers.get("x-error-message") or "")

    @property
    def fingerprint(self) -> str:
        """Error type + message with ids, numbers and quoted values blanked: one per cause."""
        shape = _VOLATILE.sub("#", self.error_message)
        return hashlib.sha1(  # noqa: S324 - a grouping key, not security
            f"{self.error_type}\n{shape}".encode()
        ).hexdigest()[:10]

    @property
    def group(self) -> str:
        return f"{self.error_type}/{self.fingerprint}"

    @property
    def failed_at(self) -> str:
        """When it last failed, as the worker wrote it; tells copies of one failure apart."""
        value = self.headers.get("x-last-failure-at") or self.headers.get("x-error-at")
        if not value:
            deaths = self.headers.get("x-death") or [{}]
            value = deaths[0].get("time") if isinstance(deaths[0], dict) else None
        return str(value or "")

    @property
    def replays(self) -> int:
        """How often it was replayed before this failure (x-replay-count)."""
        count = self.headers.get("x-replay-count")
        return count if isinstance(count, int) else 0

    @property
    def original_queue(self) -> str:
        # From the DLQ's own name, never from a header: a publisher can write any header, and
        # a replay must not be steered into a queue of its choosing.
        return self.queue.removesuffix(".dlq")

    def text(self) -> str | None:
        try:
            return self.body.decode("utf-8")
        except UnicodeDecodeError:
            return None

    def as_json(self) -> dict[str, Any]:
        """One JSON-lines record (export): headers, properties and the body, lossless."""
        record: dict[str, Any] = {
            "queue": self.queue,
            "id": self.id,
            "group": self.group,
            "routing_key": self.routing_key,
            "copies": self.copies,
            "failures": self.failures,
            "status": self.status,
            "headers": self.headers,
            "properties": {k: v for k, v in self.properties.items() if v is not None},
        }
        text = self.text()
        if text is not None:
            record["body"] = text
        else:
            record["body_base64"] = base64.b64encode(self.body).decode()
        return record

    def pretty_body(self) -> str:
        try:
            return orjson.dumps(orjson.loads(self.body), option=orjson.OPT_INDENT_2).decode()
        except orjson.JSONDecodeError:
            return self.body.decode("utf-8", errors="backslashreplace")


def from_message(queue: str, message: Any) -> DeadLetter:
    body = message.body
    if isinstance(body, str):
        body = body.encode(message.content_encoding or "utf-8", "surrogateescape")
    props = dict(message.properties or {})
    props.setdefault("content_type", message.content_type)
    props.setdefault("content_encoding", message.content_encoding)
    props.pop("application_headers", None)
    return DeadLetter(
        queue=queue,
        routing_key=str(message.delivery_info.get("routing_key") or ""),
        body=bytes(body),
        headers=dict(message.headers or {}),
        properties=props,
    )


def from_row(row: Mapping[str, Any]) -> DeadLetter:
    """A row of `failed_messages` (store/failed.py)."""
    return DeadLetter(
        queue=row["queue"],
        routing_key=row["routing_key"],
        body=bytes(row["body"]),
        headers=dict(row["headers"]),
        properties={"message_id": row["message_id"], **dict(row["properties"])},
        copies=row["copies"],
        failures=row["failures"],
        status=row["status"],
    )


def peek(conn: Connection, queue: str, limit: int | None = None) -> list[DeadLetter]:
    """The messages of any queue in order, returned to it unacked (for tests and diagnosis).

    Not how operators read DLQs: a returned message is marked redelivered and, on a quorum
    queue, counts against its delivery limit. The CLI and the console read ingested rows.
    """
    channel = conn.channel()
    channel.auto_decode = False
    try:
        total = int(channel.queue_declare(queue=queue, passive=True)[1])
        bound = Queue(queue, no_declare=True)(channel)
        out: list[DeadLetter] = []
        while len(out) < total and (limit is None or len(out) < limit):
            message = bound.get(no_ack=False)
            if message is None:
                break
            out.append(from_message(queue, message))
        return out
    finally:
        close_channel(channel)
