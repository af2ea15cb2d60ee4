"""Deliveries read in bulk: one socket read for many frames, and `basic.deliver` parsed here.

py-amqp reads a frame with three `recv` calls (header, payload, end octet) inside a per-frame
socket-timeout change, builds an `amqp.Message`, dispatches it through the channel, and kombu
wraps it in its own `Message` before the worker's callback sees it. With 3 frames a delivery,
that was about 30% of the worker's time at 1 target (py-spy). On a consuming connection:
- py-amqp's `blocking_read` (what `drain_events` loops on) is replaced by one that reads up to
  256 KiB at a time and cuts frames from that buffer, touching the socket's timeout only when
  it has to wait;
- a delivery to a consumer attached here, with its method, header and body frames next to each
  other in the buffer, goes straight to the consumer's `on_message` as a `Received` (what the
  worker reads of a message), its properties decoded by py-amqp's own decoder;
- every other frame (confirms, channel methods, heartbeats, a delivery kombu would have to
  decompress, one for a cancelled consumer) goes to py-amqp's frame handler as before, in order.
Acks, prefetch and confirms are untouched: this changes how bytes become messages, not what is
acknowledged when. Plain TCP only; TLS and the embedded transport keep py-amqp's reads.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from amqp.exceptions import UnexpectedFrame
from amqp.serialization import decode_properties_basic
from amqp.transport import TCPTransport

_RECV_BYTES = 262_144
_FRAME = struct.Struct(">BHI")
_DELIVER = b"\x00\x3c\x00\x3c"  # class 60 (basic), method 60 (deliver)
_TAG = struct.Struct(">Q")
_BODY_SIZE = struct.Struct(">Q")
_FRAME_END = 0xCE
_UNAVAILABLE = {errno.EAGAIN, errno.EINTR, errno.ENOENT, errno.EWOULDBLOCK}  # as py-amqp's reads


class _Skip(Enum):
    INCOMPLETE = "the buffer ends inside the delivery: read more"
    DECLINED = "not ours to parse: py-amqp's frame handler takes it"


_Content = tuple[dict[str, Any], bytes, int, int]  # properties, body, position after, frames


@dataclass(slots=True)
class Received:
    """A delivery as the worker's `on_message` reads it (the attributes of kombu's Message)."""

    delivery_info: dict[str, Any]
    properties: dict[str, Any]
    body: bytes
    headers: dict[str, Any] = field(default_factory=dict)

    @property
    def content_encoding(self) -> str | None:
        value = self.properties.get("content_encoding")
        return value if isinstance(value, str) else None


def attach(conn: Any, consumers: Iterable[Any]) -> bool:
    """Read the deliveries of `consumers` (kombu Consumers, consuming, with `on_message`) on
    kombu connection `conn` in bulk. False (nothing changed) if it is not py-amqp over TCP."""
    amqp_conn: Any = getattr(conn, "connection", None)
    if not isinstance(getattr(amqp_conn, "transport", None), TCPTransport):
        return False
    reader = getattr(amqp_conn.blocking_read, "__self__", None)
    if not isinstance(reader, BulkReader):
        reader = BulkReader(amqp_conn)
        amqp_conn.blocking_read = reader.blocking_read
    for consumer in consumers:
        if consumer.on_message is not None:
            for tag in consumer._active_tags.values():  # queue name -> consumer tag
                reader.sinks[(consumer.channel.channel_id, tag)] = consumer.on_message
    return True


class BulkReader:
    """Frames of one py-amqp connection, read from a buffer filled by large reads."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.transport = connection.transport
        self.buf = bytes(self.transport._read_buffer)  # what py-amqp read ahead, if anything
        self.transport._read_buffer = b""
        self.pos = 0
        self.sinks: dict[tuple[int, str], Callable[[Received], object]] = {}

    def blocking_read(self, timeout: float | None = None) -> bool:
        """py-amqp's contract: True once a method is complete. Here also once deliveries were
        handed out and the buffer holds no further complete frame (no wait for more)."""
        while True:
            done = self._dispatch_buffered()
            if done:
                return True
            self._fill(timeout)

    def _dispatch_buffered(self) -> bool:
        delivered = False
        buf, on_frame = self.buf, self.connection.on_inbound_frame
        while True:
            pos = self.pos
            if len(buf) - pos < 7:
                return delivered
            frame_type, channel, size = _FRAME.unpack_from(buf, pos)
            end = pos + 7 + size
            if len(buf) <= end:
                return delivered
            if buf[end] != _FRAME_END:
                raise UnexpectedFrame(f"Received frame_end {buf[end]:#04x} while expecting 0xce")
            if frame_type == 1 and buf[pos + 7 : pos + 11] == _DELIVER:
                taken = self._delivery(channel, pos + 7, end)
                if taken is _Skip.INCOMPLETE:
                    return delivered
                if taken is not _Skip.DECLINED:
                    self.pos = taken
                    delivered = True
                    continue
            self.pos = end + 1
            if on_frame((frame_type, channel, buf[pos + 7 : end])):
                return True

    def _delivery(self, channel: int, start: int, end: int) -> int | _Skip:
        """Hand one delivery to its sink; the buffer position after it, or a reason not to."""
        buf = self.buf
        tag_len = buf[start + 4]
        consumer_tag = buf[start + 5 : start + 5 + tag_len].decode("utf-8", "surrogatepass")
        sink = self.sinks.get((channel, consumer_tag))
        amqp_channel = (self.connection.channels or {}).get(channel)
        if sink is None or amqp_channel is None or consumer_tag not in amqp_channel.callbacks:
            return _Skip.DECLINED  # a cancelled consumer: py-amqp rejects it, as always
        content = self._content(channel, end + 1)
        if isinstance(content, _Skip):
            return content
        properties, body, after, frames = content
        headers = properties.get("application_headers") or {}
        if "compression" in headers:  # kombu decompresses such bodies: leave it to kombu
            return _Skip.DECLINED
        at = start + 5 + tag_len
        (delivery_tag,) = _TAG.unpack_from(buf, at)
        exchange_len = buf[at + 9]
        exchange = buf[at + 10 : at + 10 + exchange_len].decode("utf-8", "surrogatepass")
        at += 10 + exchange_len
        routing_key = buf[at + 1 : at + 1 + buf[at]].decode("utf-8", "surrogatepass")
        self.connection.bytes_recv += frames
        sink(
            Received(
                {
                    "consumer_tag": consumer_tag,
                    "delivery_tag": delivery_tag,
                    "redelivered": bool(buf[start + 13 + tag_len] & 1),
                    "exchange": exchange,
                    "routing_key": routing_key,
                },
                properties,
                body,
                headers,
            )
        )
        return after

    def _content(self, channel: int, pos: int) -> _Content | _Skip:
        """The content frames at `pos` (header, then body frames); DECLINED if any other frame
        comes in between (frames of other channels may interleave; a frame_max body may too)."""
        buf = self.buf
        header = self._frame_at(pos, 2, channel)
        if isinstance(header, _Skip):
            return header
        start, end = header
        (body_size,) = _BODY_SIZE.unpack_from(buf, start + 4)
        properties, _ = decode_properties_basic(buf, start + 12)
        pos, got, frames = end + 1, 0, 2  # the method and header frames
        parts: list[bytes] = []
        while got < body_size:
            body = self._frame_at(pos, 3, channel)
            if isinstance(body, _Skip):
                return body
            parts.append(buf[body[0] : body[1]])
            got += body[1] - body[0]
            pos = body[1] + 1
            frames += 1
        return properties, parts[0] if len(parts) == 1 else b"".join(parts), pos, frames

    def _frame_at(self, pos: int, frame_type: int, channel: int) -> tuple[int, int] | _Skip:
        """(payload start, end) of a complete frame of this type and channel at `pos`."""
        buf = self.buf
        if len(buf) - pos < 7:
            return _Skip.INCOMPLETE
        kind, on, size = _FRAME.unpack_from(buf, pos)
        if kind != frame_type or on != channel:
            return _Skip.DECLINED
        end = pos + 7 + size
        if len(buf) <= end:
            return _Skip.INCOMPLETE
        if buf[end] != _FRAME_END:
            raise UnexpectedFrame(f"Received frame_end {buf[end]:#04x} while expecting 0xce")
        return pos + 7, end

    def _fill(self, timeout: float | None) -> None:
        """One read of what the socket has (waiting up to `timeout`), as py-amqp's reads fail:
        a timeout keeps the buffer; a dead socket marks the transport disconnected."""
        transport = self.transport
        try:
            with transport.having_timeout(timeout) as sock:
                data = sock.recv(_RECV_BYTES)
        except TimeoutError:
            raise
        except OSError as exc:
            if exc.errno not in _UNAVAILABLE:
                transport.connected = False
            raise
        if not data:
            transport.connected = False
            raise OSError("Server unexpectedly closed connection")
        self.buf = self.buf[self.pos :] + data
        self.pos = 0
