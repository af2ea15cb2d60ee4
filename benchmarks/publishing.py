"""The benchmarks' upstream publisher: publisher confirms awaited, nacked publishes sent again.

A quorum queue nacks a publish it could not take (e.g. its enqueuer registration timed out on a
loaded broker): a `basic_qos` round trip after the publishes only shows the broker read them,
not that a queue kept them, so ignoring confirms could lose events under load.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections import OrderedDict
from typing import Any

from kombu.connection import Connection
from kombu.entity import Exchange
from kombu.messaging import Producer

Message = tuple[str, bytes]  # routing key, body
WINDOW = 10_000  # publishes in flight before waiting for half of them to be confirmed


class _Confirms:
    """Publishes awaiting their confirm, by delivery tag; nacked ones are kept to resend."""

    def __init__(self, conn: Any, channel: Any) -> None:
        self.conn = conn
        self.outstanding: OrderedDict[int, Message] = OrderedDict()
        self.nacked: list[Message] = []
        self.seq = 0
        channel.events["basic_ack"].add(lambda tag, multiple: self._settle(tag, multiple, False))
        channel.events["basic_nack"].add(lambda tag, multiple: self._settle(tag, multiple, True))

    def sent(self, message: Message) -> None:
        self.seq += 1
        self.outstanding[self.seq] = message

    def _settle(self, tag: int, multiple: bool, nack: bool) -> None:
        if multiple:
            tags = [t for t in self.outstanding if t <= tag]
        else:
            tags = [tag] if tag in self.outstanding else []
        for t in tags:
            message = self.outstanding.pop(t)
            if nack:
                self.nacked.append(message)

    def wait_until(self, limit: int) -> None:
        deadline = time.monotonic() + 300
        while len(self.outstanding) > limit:
            if time.monotonic() > deadline:
                raise SystemExit(f"publish: {len(self.outstanding)} publishes never confirmed")
            with contextlib.suppress(socket.timeout):
                self.conn.drain_events(timeout=1)


def publish(url: str, exchange: str, messages: list[Message]) -> None:
    """Publish persistent JSON messages and return once the broker confirmed every one."""
    pending, nacked_total = list(messages), 0
    with Connection(url, transport_options={"confirm_publish": False}) as conn:
        channel = conn.channel()
        channel.confirm_select()
        producer = Producer(channel)
        ex = Exchange(exchange, type="topic", durable=True)
        confirms = _Confirms(conn, channel)
        while pending:
            for rk, body in pending:
                confirms.sent((rk, body))
                producer.publish(
                    body,
                    exchange=ex if exchange else "",
                    routing_key=rk,
                    content_type="application/json",
                    content_encoding="utf-8",
                    delivery_mode=2,
                    retry=False,
                )
                if len(confirms.outstanding) >= WINDOW:
                    confirms.wait_until(WINDOW // 2)
            confirms.wait_until(0)
            pending, confirms.nacked = confirms.nacked, []
            nacked_total += len(pending)
            if pending:
                time.sleep(0.1)  # a back-off: a queue refusing now may take them in a moment
    if nacked_total:
        print(f"    publish: broker nacked {nacked_total} publishes, republished", flush=True)
