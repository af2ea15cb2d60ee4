"""The bulk reader hands out the deliveries py-amqp would, in order, whatever the reads' sizes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import amqp
import pytest
from amqp import spec
from amqp.method_framing import frame_handler, frame_writer
from amqp.serialization import dumps, loads
from hypothesis import given, settings
from hypothesis import strategies as st

from entity_sync.runtime.amqp_inbound import BulkReader, Received

FRAME_MAX = 4096  # small, so a large body spans several frames


class FakeSocket:
    """Returns the stream in the given chunk sizes (0: a read that times out), then times out."""

    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self.data, self.sizes, self.pos = data, sizes, 0

    @property
    def done(self) -> bool:
        return self.pos >= len(self.data)

    def recv(self, limit: int) -> bytes:
        size = min(self.sizes.pop(0) if self.sizes else limit, limit)
        if self.done or size == 0:
            raise TimeoutError
        chunk = self.data[self.pos : self.pos + size]
        self.pos += len(chunk)
        return chunk


def frames(*items: tuple[int, tuple[int, int], bytes, amqp.Message | None]) -> bytes:
    written: list[bytes] = []
    connection = SimpleNamespace(frame_max=FRAME_MAX, bytes_sent=0)
    write = frame_writer(connection, SimpleNamespace(write=lambda b: written.append(bytes(b))))
    for channel, sig, args, content in items:
        write(1, channel, sig, args, content)
    return b"".join(written)


def deliver(channel: int, tag: str, n: int, body: bytes, **props: Any) -> Any:
    args = dumps("sLbss", (tag, n, n % 2 == 0, "in.exchange", f"object.shared.p{n}"))
    return (channel, spec.Basic.Deliver, args, amqp.Message(body, **props))


def confirm(n: int) -> Any:
    return (2, spec.Basic.Ack, dumps("Lb", (n, True)), None)


class Harness:
    """A BulkReader over a fake connection whose other frames go to py-amqp's frame handler."""

    def __init__(self, data: bytes, sizes: list[int], tags: tuple[str, ...] = ("ctag",)) -> None:
        self.seen: list[tuple[Any, ...]] = []
        self.sock = sock = FakeSocket(data, sizes)

        @contextlib.contextmanager
        def having_timeout(_timeout: float | None) -> Iterator[FakeSocket]:
            yield sock

        transport = SimpleNamespace(_read_buffer=b"", having_timeout=having_timeout, connected=True)
        self.connection = SimpleNamespace(
            transport=transport,
            bytes_recv=0,
            channels={1: SimpleNamespace(callbacks=dict.fromkeys(tags))},
        )
        self.connection.on_inbound_frame = frame_handler(self.connection, self.by_py_amqp)
        self.reader = BulkReader(self.connection)
        self.reader.sinks[(1, "ctag")] = self.by_us

    def by_us(self, message: Received) -> None:
        info = message.delivery_info
        self.seen.append(
            ("deliver", info["delivery_tag"], info["routing_key"], message.properties, message.body)
        )
        assert message.headers == (message.properties.get("application_headers") or {})

    def by_py_amqp(self, _channel: int, sig: Any, buf: bytes, content: Any) -> None:
        if sig == spec.Basic.Deliver:
            args, _ = loads("sLbss", buf, 4)
            body = content.body  # py-amqp leaves an empty body as "" (the worker reads b"")
            body = body.encode() if isinstance(body, str) else body
            self.seen.append(("deliver", args[1], args[4], content.properties, body))
        else:
            self.seen.append(("method", sig, bytes(buf)))

    def drain(self) -> list[tuple[Any, ...]]:
        """Read until the stream is exhausted; a timeout on the way keeps what was read."""
        while True:
            try:
                self.reader.blocking_read(0.01)
            except TimeoutError:
                if self.sock.done:
                    return self.seen


def py_amqp_only(data: bytes) -> list[tuple[Any, ...]]:
    harness = Harness(data, [])
    harness.reader.sinks.clear()
    return harness.drain()


STREAM = frames(
    deliver(1, "ctag", 1, b'{"a":1}', content_type="application/json", content_encoding="utf-8"),
    confirm(7),
    deliver(
        1, "ctag", 2, b"x" * 10_000, application_headers={"x-attempts": 2, "k": {"n": [1, "b"]}}
    ),
    deliver(1, "ctag", 3, b"", message_id="m-3", timestamp=1_700_000_000, user_id="guest"),
    deliver(1, "other", 4, b"{}"),  # a consumer not attached: py-amqp's path
    deliver(1, "ctag", 5, b"zipped", application_headers={"compression": "application/x-gzip"}),
    deliver(1, "ctag", 6, b'{"b":2}', delivery_mode=2, priority=3, correlation_id="c"),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=3000), max_size=60))
def test_same_messages_in_the_same_order_for_any_read_sizes(sizes: list[int]) -> None:
    assert Harness(STREAM, sizes).drain() == py_amqp_only(STREAM)


def test_deliveries_go_to_the_sink_and_the_rest_to_py_amqp() -> None:
    harness = Harness(STREAM, [], tags=("ctag", "other"))
    ours: list[int] = []
    sink = harness.by_us

    def ours_then_sink(m: Any) -> None:
        ours.append(m.delivery_info["delivery_tag"])
        sink(m)

    harness.reader.sinks[(1, "ctag")] = ours_then_sink
    harness.drain()
    assert ours == [1, 2, 3, 6]  # 4: another consumer, 5: compressed (kombu's path)
    assert harness.connection.bytes_recv == len(py_amqp_frames(STREAM))


def test_a_cancelled_consumer_is_left_to_py_amqp() -> None:
    harness = Harness(STREAM, [], tags=())
    harness.reader.sinks[(1, "ctag")] = lambda _m: pytest.fail("delivered to a cancelled consumer")
    assert harness.drain() == py_amqp_only(STREAM)


def test_a_frame_of_another_channel_inside_a_delivery_leaves_it_to_py_amqp() -> None:
    one = frames(deliver(1, "ctag", 1, b"y" * 6000))  # method, header, 2 body frames
    ack = frames(confirm(9))
    cut = one.index(b"\x03\x00\x01")  # the first body frame
    data = one[:cut] + ack + one[cut:]
    harness = Harness(data, [])
    harness.reader.sinks[(1, "ctag")] = lambda _m: pytest.fail("parsed across another frame")
    assert harness.drain() == py_amqp_only(data)


def py_amqp_frames(data: bytes) -> list[int]:
    out, pos = [], 0
    while pos < len(data):
        size = int.from_bytes(data[pos + 3 : pos + 7], "big")
        out.append(data[pos])
        pos += 8 + size
    return out
