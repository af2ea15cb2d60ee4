"""Publishing as an upstream system would (pika), and reading what the worker published."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
import pika
from kombu.connection import Connection
from kombu.entity import Exchange, Queue


@dataclass
class Received:
    routing_key: str
    body: bytes
    headers: dict[str, Any]
    message_id: str | None

    def json(self) -> Any:
        return orjson.loads(self.body)


def pika_params(url: str) -> Any:
    """pika reads `amqp://host//` as an empty vhost; take the parts as kombu understands them.

    A `;`-separated list (kombu's failover syntax, a cluster) gives a list of parameters, one per
    URL, which `pika.BlockingConnection` tries in turn; one URL gives one `ConnectionParameters`.
    """
    if ";" in url:
        return [_one_pika_params(part) for part in url.split(";")]
    return _one_pika_params(url)


def _one_pika_params(url: str) -> pika.ConnectionParameters:
    info = Connection(url)
    return pika.ConnectionParameters(
        host=info.hostname or "127.0.0.1",
        port=int(info.port or 5672),
        virtual_host=info.virtual_host or "/",
        credentials=pika.PlainCredentials(info.userid or "guest", info.password or "guest"),
    )


class PikaPublisher:
    """Publishes with pika and publisher confirms, without any project code."""

    def __init__(self, url: str, exchange: str) -> None:
        self.conn = pika.BlockingConnection(pika_params(url))
        self.channel = self.conn.channel()
        self.channel.confirm_delivery()
        self.exchange = exchange

    def publish(self, routing_key: str, body: dict[str, Any] | bytes, **props: Any) -> None:
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        message_id = None if isinstance(body, bytes) else (body.get("event_id") or None)
        self.channel.basic_publish(
            self.exchange,
            routing_key,
            raw,
            pika.BasicProperties(
                content_type="application/json",
                delivery_mode=2,
                message_id=message_id,
                **props,
            ),
            mandatory=True,
        )

    def close(self) -> None:
        self.conn.close()


def bind_output_queue(url: str, prefix: str, name: str | None = None) -> str:
    """A queue bound to everything on the out exchange (declared before the worker publishes)."""
    queue = name or f"{prefix}.test-out"
    with pika.BlockingConnection(pika_params(url)) as conn:
        ch = conn.channel()
        ch.exchange_declare(f"{prefix}.out", "topic", durable=True, passive=True)
        ch.queue_declare(queue, durable=True)
        ch.queue_bind(queue, f"{prefix}.out", "#")
    return queue


def drain(url: str, queue: str) -> list[Received]:
    """Every message now in `queue` (acked), via pika or kombu depending on the URL."""
    out: list[Received] = []
    if url.startswith("amqp"):
        with pika.BlockingConnection(pika_params(url)) as conn:
            ch = conn.channel()
            while True:
                method, props, body = ch.basic_get(queue, auto_ack=True)
                if method is None:
                    break
                out.append(
                    Received(method.routing_key, body, dict(props.headers or {}), props.message_id)
                )
        return out
    with Connection(url) as conn:
        conn.transport.polling_interval = 0.01
        q = Queue(queue, durable=True)(conn.default_channel)
        while (msg := q.get(no_ack=True)) is not None:
            out.append(
                Received(
                    msg.delivery_info.get("routing_key", ""),
                    msg.body,
                    dict(msg.headers or {}),
                    msg.properties.get("message_id"),
                )
            )
    return out


def queue_depth(url: str, queue: str) -> int:
    with pika.BlockingConnection(pika_params(url)) as conn:
        return int(conn.channel().queue_declare(queue, passive=True).method.message_count)


def kombu_publish(url: str, prefix: str, events: list[tuple[str, bytes]]) -> None:
    """Publish into the embedded broker (declaring the topology in this process first)."""
    from entity_sync.config import Settings
    from entity_sync.runtime import retry
    from entity_sync.runtime.topology import Names, declare

    with Connection(url) as conn:
        declare(conn, Names(prefix), retry.delay_queues(Settings(prefix=prefix)))
        producer = conn.Producer()
        ex = Exchange(f"{prefix}.in", type="topic", durable=True)
        for routing_key, body in events:
            producer.publish(
                body,
                exchange=ex,
                routing_key=routing_key,
                content_type="application/json",
                content_encoding="utf-8",
            )


def collect(url: str, queue: str, count: int, timeout: float = 60.0) -> list[Received]:
    """Drain `queue` until `count` messages arrived (or fail at the deadline)."""
    got: list[Received] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        got.extend(drain(url, queue))
        if len(got) < count:
            time.sleep(0.05)
    assert len(got) >= count, f"{queue}: expected {count} messages, got {len(got)}"
    return got
