"""Broker connections and a publisher that waits for confirms of a whole batch at once.

py-amqp's own confirm mode waits for each message's confirm before the next publish; here the
channel is put in confirm mode once and the confirms of a batch are awaited together. On
RabbitMQ a batch is encoded by `worker.amqp_frames` and written in a few socket writes; the
broker numbers the publishes of a confirm-mode channel 1, 2, 3..., which is all the
bookkeeping the confirms need. The embedded (virtual) transport stores a message before
`publish` returns, so it needs none and publishes through kombu.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from amqp.exceptions import RecoverableConnectionError
from kombu.connection import Connection
from kombu.messaging import Producer

from entity_sync.config import Settings
from entity_sync.handlers.errors import TransientError
from entity_sync.runtime import amqp_frames
from entity_sync.runtime.topology import is_rabbitmq


class PublishFailed(TransientError):
    reason = "publish_failed"


@dataclass(slots=True)
class OutMessage:
    exchange: str
    routing_key: str
    body: bytes
    message_id: str | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    content_type: str = "application/json"
    content_encoding: str = "utf-8"
    extra: dict[str, Any] = field(default_factory=dict)  # other AMQP properties to keep


def connect(settings: Settings) -> Connection:
    conn = Connection(
        settings.broker_url,
        heartbeat=settings.heartbeat_seconds or None,
        connect_timeout=10,
    )
    if settings.embedded_broker:
        # kombu's SQL transport polls; its default of 1 s makes the embedded worker sluggish.
        conn.transport.polling_interval = 0.05
    return conn


def ensure_connected(conn: Connection, retries: int = 0) -> Connection:
    """Connect to the first broker of the URL list that answers, trying each `retries + 1` times.

    kombu moves on to the next URL of a failover list (`amqp://a;amqp://b`) after each failed
    attempt, but its `max_retries` counts attempts, not rounds over the list: with
    `max_retries=1` a third URL is never tried. Here `retries` counts rounds, so one URL behaves
    as `ensure_connection(max_retries=retries)` and a list is always tried whole (kombu sleeps
    2, 4, ... s between rounds, never between the URLs of one round).
    """
    urls = max(len(conn.alt), 1)
    conn.ensure_connection(max_retries=(retries + 1) * urls - 1)
    return conn


class _Unconfirmed:
    """Delivery tags published but not confirmed yet, for tags that grow by one per publish.

    Tags up to `low` are settled; `settled` holds the ones above it confirmed one at a time
    (RabbitMQ mostly confirms in order, often with `multiple`), so settling never scans every
    outstanding tag.
    """

    def __init__(self) -> None:
        self.low = 0
        self.high = 0
        self.settled: set[int] = set()

    def __len__(self) -> int:
        return self.high - self.low - len(self.settled)

    def add(self, count: int) -> None:
        self.high += count

    def settle(self, tag: int, multiple: bool) -> int:
        """Mark `tag` (with `multiple`, every tag up to it) settled; returns how many were new."""
        if tag <= self.low or tag > self.high:
            return 0
        if multiple:
            done = {t for t in self.settled if t <= tag}
            count = tag - self.low - len(done)
            self.settled -= done
            self.low = tag
        elif tag in self.settled:
            return 0
        else:
            self.settled.add(tag)
            count = 1
        while self.low + 1 in self.settled:
            self.low += 1
            self.settled.discard(self.low)
        return count


class ConfirmingPublisher:
    def __init__(self, conn: Connection, confirm_timeout: float = 30.0) -> None:
        self.conn = conn
        self.channel = conn.channel()
        self.producer = Producer(self.channel, auto_declare=False)
        self.rabbit = is_rabbitmq(conn)
        self.confirm_timeout = confirm_timeout
        self._unconfirmed = _Unconfirmed()
        self._nacked = 0
        if self.rabbit:
            self.channel.confirm_select()
            self.channel.events["basic_ack"].add(self._on_ack)
            self.channel.events["basic_nack"].add(self._on_nack)

    def _on_ack(self, tag: int, multiple: bool) -> None:
        self._unconfirmed.settle(tag, multiple)

    def _on_nack(self, tag: int, multiple: bool) -> None:
        self._nacked += self._unconfirmed.settle(tag, multiple)

    def publish_many(self, messages: list[OutMessage], *, wait: bool = True) -> None:
        """Publish all and (unless wait=False) wait until the broker confirmed every one.

        With wait=False, call `wait_for_confirms` before acting on the confirms, e.g. before
        acking the deliveries these messages came from.
        """
        if not messages:
            return
        now = int(time.time())
        if self.rabbit:
            self._publish_amqp(messages, now)
            if wait:
                self.wait_for_confirms()
            return
        for msg in messages:
            props = dict(msg.extra)
            props.setdefault("timestamp", now)
            if msg.message_id:
                props["message_id"] = msg.message_id
            self.producer.publish(
                msg.body,
                exchange=msg.exchange,
                routing_key=msg.routing_key,
                content_type=msg.content_type,
                content_encoding=msg.content_encoding,
                headers=msg.headers,
                delivery_mode=2,
                retry=False,
                **props,
            )

    def _publish_amqp(self, messages: list[OutMessage], now: int) -> None:
        channel = self.channel
        connection = channel.connection
        if connection is None or not channel.is_open:
            raise RecoverableConnectionError("publish: the channel is closed")
        # Encoded in full before the first write: a message that cannot be encoded raises here
        # and leaves the channel's publish count, and so the confirm tags, untouched.
        buffers = amqp_frames.encode(channel.channel_id, connection.frame_max, messages, now)
        write = connection.transport.write
        for buffer in buffers:
            write(buffer)
        connection.bytes_sent += 1  # py-amqp's heartbeat check looks for outbound traffic
        self._unconfirmed.add(len(messages))

    @property
    def all_confirmed(self) -> bool:
        """Every publish so far is confirmed (or refused: `wait_for_confirms` raises then)."""
        return not self._unconfirmed

    def wait_for_confirms(self) -> None:
        """Block until everything published so far is confirmed; raise if any was refused."""
        deadline = time.monotonic() + self.confirm_timeout
        while self._unconfirmed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PublishFailed(f"{len(self._unconfirmed)} publishes not confirmed in time")
            try:
                self.conn.drain_events(timeout=min(remaining, 1.0))
            except TimeoutError:
                continue
        if self._nacked:
            count, self._nacked = self._nacked, 0
            raise PublishFailed(f"the broker refused {count} message(s)")

    def close(self) -> None:
        # Closing a channel of a connection that already died may fail; nothing is pending.
        with contextlib.suppress(Exception):
            self.channel.close()
