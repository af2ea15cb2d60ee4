"""Broker connections and a publisher that waits for confirms of a whole batch at once.

py-amqp's own confirm mode waits for each message's confirm before the next publish; here the
channel is put in confirm mode once and the confirms of a batch are awaited together.
The embedded (virtual) transport stores a message before `publish` returns, so it needs none.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import amqp
from kombu.connection import Connection
from kombu.messaging import Producer

from handlers.errors import TransientError
from worker.config import Settings
from worker.topology import is_rabbitmq


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


class ConfirmingPublisher:
    def __init__(self, conn: Connection, confirm_timeout: float = 30.0) -> None:
        self.conn = conn
        self.channel = conn.channel()
        self.producer = Producer(self.channel, auto_declare=False)
        self.rabbit = is_rabbitmq(conn)
        self.confirm_timeout = confirm_timeout
        self._seq = 0
        self._unconfirmed: set[int] = set()
        self._nacked = 0
        if self.rabbit:
            self.channel.confirm_select()
            self.channel.events["basic_ack"].add(self._on_ack)
            self.channel.events["basic_nack"].add(self._on_nack)

    def _settle(self, tag: int, multiple: bool) -> int:
        if multiple:
            done = {t for t in self._unconfirmed if t <= tag}
            self._unconfirmed -= done
            return len(done)
        if tag in self._unconfirmed:
            self._unconfirmed.discard(tag)
            return 1
        return 0

    def _on_ack(self, tag: int, multiple: bool) -> None:
        self._settle(tag, multiple)

    def _on_nack(self, tag: int, multiple: bool) -> None:
        self._nacked += self._settle(tag, multiple)

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
        # py-amqp directly: kombu's Producer adds a third to the cost of every publish.
        publish = self.channel.basic_publish
        for msg in messages:
            props = dict(msg.extra)
            props.setdefault("timestamp", now)
            if msg.message_id:
                props["message_id"] = msg.message_id
            publish(
                amqp.Message(
                    msg.body,
                    content_type=msg.content_type,
                    content_encoding=msg.content_encoding,
                    application_headers=msg.headers,
                    delivery_mode=2,
                    **props,
                ),
                exchange=msg.exchange,
                routing_key=msg.routing_key,
            )
            self._seq += 1
            self._unconfirmed.add(self._seq)

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
