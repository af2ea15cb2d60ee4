"""The batch encoder writes the bytes py-amqp would write for each publish, frame for frame."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import amqp
import pytest
from amqp import spec
from amqp.method_framing import frame_writer
from amqp.serialization import dumps
from hypothesis import given
from hypothesis import strategies as st

from entity_sync.runtime import amqp_frames
from entity_sync.runtime.broker import OutMessage, _Unconfirmed


def py_amqp_bytes(channel: int, frame_max: int, msg: OutMessage, timestamp: int) -> bytes:
    """What `Channel.basic_publish` hands to the socket, as the publisher called it before."""
    written: list[bytes] = []
    connection = SimpleNamespace(frame_max=frame_max, bytes_sent=0)
    transport = SimpleNamespace(write=lambda data: written.append(bytes(data)))
    props: dict[str, Any] = dict(msg.extra)
    props.setdefault("timestamp", timestamp)
    if msg.message_id:
        props["message_id"] = msg.message_id
    message = amqp.Message(
        msg.body,
        content_type=msg.content_type,
        content_encoding=msg.content_encoding,
        application_headers=msg.headers,
        delivery_mode=2,
        **props,
    )
    args = dumps("Bssbb", (0, msg.exchange, msg.routing_key, False, False))
    frame_writer(connection, transport)(1, channel, spec.Basic.Publish, args, message)
    return b"".join(written)


def encoded(channel: int, frame_max: int, messages: list[OutMessage], timestamp: int) -> bytes:
    return b"".join(amqp_frames.encode(channel, frame_max, messages, timestamp))


OUTPUT = OutMessage(
    "entity-sync.out",
    "target.t1.product",
    b'{"event_id":"f37923cd-8af8-5a4e-8c38-38aa638ce56c","data":{"name":"x"}}',
    message_id="f37923cd-8af8-5a4e-8c38-38aa638ce56c",
)
DEAD_LETTER = OutMessage(
    "",
    "entity-sync.object-shared.dlq",
    b"\x00not json\xff",
    message_id="m-1",
    headers={"x-error-type": "invalid_json", "x-attempts": 3, "x-first": {"a": [1, "b"]}},
    content_type="application/octet-stream",
    content_encoding="binary",
    extra={"correlation_id": "c-9", "type": "object.shared.product", "user_id": "guest"},
)


@pytest.mark.parametrize(
    "msg",
    [
        OUTPUT,
        OutMessage("x", "rk", b"", message_id=None),
        OutMessage("x", "rk", b"{}", message_id="id", headers={"k": "v"}),
        OutMessage("x", "rk", b"{}", extra={"timestamp": 5, "app_id": "a", "priority": 3}),
        DEAD_LETTER,
    ],
    ids=["output", "empty-body-no-id", "headers", "extra-properties", "dead-letter"],
)
def test_one_publish_is_byte_identical_to_py_amqp(msg: OutMessage) -> None:
    assert encoded(7, 131072, [msg], 1_700_000_000) == py_amqp_bytes(7, 131072, msg, 1_700_000_000)


@given(
    body=st.binary(max_size=3000),
    frame_max=st.integers(min_value=4096, max_value=8192),
    routing_key=st.text(max_size=60),
    message_id=st.none() | st.text(min_size=1, max_size=40),
)
def test_bodies_over_frame_max_are_split_like_py_amqp(
    body: bytes, frame_max: int, routing_key: str, message_id: str | None
) -> None:
    msg = OutMessage("ex", routing_key, body * 3, message_id=message_id)
    assert encoded(1, frame_max, [msg], 42) == py_amqp_bytes(1, frame_max, msg, 42)


def test_a_batch_is_the_publishes_in_order_in_few_buffers() -> None:
    messages = [
        OutMessage("entity-sync.out", f"target.t{i % 10}.product", b"x" * 600, message_id=f"id-{i}")
        for i in range(2000)
    ]
    buffers = amqp_frames.encode(3, 131072, messages, 9)
    assert 1 < len(buffers) <= 10
    assert b"".join(buffers) == b"".join(py_amqp_bytes(3, 131072, m, 9) for m in messages)


def test_a_routing_key_over_255_bytes_is_refused_before_anything_is_written() -> None:
    with pytest.raises(ValueError, match="over 255 bytes"):
        amqp_frames.encode(1, 131072, [OUTPUT, OutMessage("x", "k" * 256, b"")], 1)


def test_confirm_tags_settle_singly_multiply_and_out_of_order() -> None:
    tags = _Unconfirmed()
    tags.add(5)
    assert len(tags) == 5
    assert tags.settle(3, multiple=False) == 1
    assert tags.settle(3, multiple=False) == 0  # a repeated confirm counts once
    assert tags.settle(4, multiple=True) == 3  # 1, 2 and 4; 3 was already settled
    assert tags.settle(2, multiple=True) == 0
    assert len(tags) == 1
    assert tags.settle(9, multiple=False) == 0  # never published
    tags.add(2)
    assert tags.settle(7, multiple=False) == 1
    assert tags.settle(5, multiple=False) == 1
    assert tags.settle(6, multiple=False) == 1
    assert len(tags) == 0
