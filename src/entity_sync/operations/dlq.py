"""Dead-letter queues for operators: browse, group, replay, purge and export.

Works the same on RabbitMQ and on the embedded broker (kombu's `get` with manual acks).

Browsing (`list`, `show`, `export`) takes messages without acking them and closes the channel,
so the broker keeps every one where it was. Moving (`replay`, `purge`) handles one message at a
time: a replayed message is published to its original queue and the broker has confirmed it
before the dead letter is acked; a purged one is acked only. Interrupting at any point leaves
each message either still in its DLQ or already moved; at worst (a crash between the confirm
and the ack) a message is both replayed and still dead-lettered, and the worker's `event_id`
dedupe makes a second replay of it harmless.

One failure per message. A crash between a dead letter's publish and the ack of its delivery
leaves two copies of that message in the DLQ (delivery is at least once). Every operation here
keys dead letters by message id, as ServiceControl does: `list` and `status` count ids, `show`
and `export` give each id once (with the number of copies), and `replay` and `purge` act once
per id and take the extra copies out with it.

Replay removes the failure and death headers (republish.FAILURE_HEADERS), so the message
starts again with no attempts counted, and records who replayed it and when: headers
`x-replayed-by`, `x-replayed-at`, `x-replayed-from`, `x-replay-count`, plus one log line
("dlq replayed") per message.
"""

from __future__ import annotations

import base64
import contextlib
import getpass
import hashlib
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog
from kombu.connection import Connection
from kombu.entity import Queue

from entity_sync.handlers.errors import EntitySyncError
from entity_sync.runtime import republish
from entity_sync.runtime.broker import ConfirmingPublisher, OutMessage
from entity_sync.runtime.topology import Names, is_rabbitmq

log = structlog.get_logger("entity_sync.dlq")

_VOLATILE = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|'[^']*'|\"[^\"]*\"|\d+"
)


class DlqError(EntitySyncError):
    reason = "dlq"


@dataclass(slots=True)
class DeadLetter:
    queue: str
    routing_key: str
    body: bytes
    headers: dict[str, Any]
    properties: dict[str, Any]
    raw: Any = None
    copies: int = 1  # physical copies of this message id in the queue (see the module doc)

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
        return str(self.headers.get("x-last-failure-at") or self.headers.get("x-error-at") or "")

    @property
    def original_queue(self) -> str:
        # From the DLQ's own name, never from a header: a publisher can write any header, and
        # a replay must not be steered into a queue of its choosing.
        return self.queue.removesuffix(".dlq")

    def as_json(self) -> dict[str, Any]:
        """One JSON-lines record (export): headers, properties and the body, lossless."""
        try:
            text: str | None = self.body.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        record: dict[str, Any] = {
            "queue": self.queue,
            "id": self.id,
            "group": self.group,
            "routing_key": self.routing_key,
            "copies": self.copies,
            "headers": self.headers,
            "properties": {k: v for k, v in self.properties.items() if v is not None},
        }
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


@dataclass
class Group:
    error_type: str
    fingerprint: str
    count: int
    example: str


@dataclass
class Summary:
    queue: str
    count: int  # distinct messages (ids)
    groups: list[Group] = field(default_factory=list)
    copies: int = 0  # physical messages in the queue, extra copies of an id included
    oldest: str = ""
    newest: str = ""


@dataclass
class Selection:
    """Which dead letters an operation applies to (all of the queue when empty)."""

    groups: Sequence[str] = ()
    ids: Sequence[str] = ()

    def matches(self, letter: DeadLetter) -> bool:
        if self.groups and not any(
            g in (letter.group, letter.fingerprint, letter.error_type) for g in self.groups
        ):
            return False
        return not self.ids or letter.id in self.ids


@dataclass
class MoveResult:
    matched: int = 0  # distinct messages selected
    moved: int = 0
    skipped: int = 0
    merged: int = 0  # extra copies of a moved id taken out with it
    moved_ids: list[str] = field(default_factory=list)


def dlq_names(names: Names) -> list[str]:
    return [Names.dlq(q) for q in names.bindings()]


def resolve(names: Names, queue: str | None) -> list[str]:
    """`object-shared`, `entity-sync.object-shared` or `...object-shared.dlq` -> the DLQ."""
    known = dlq_names(names)
    if queue is None:
        return known
    full = f"{names.prefix}.{queue}"
    for candidate in (queue, f"{queue}.dlq", full, f"{full}.dlq"):
        if candidate in known:
            return [candidate]
    raise DlqError(
        f"{queue!r} is not a dead-letter queue; one of: {', '.join(known)}",
        reason="unknown_queue",
    )


def _letter(queue: str, message: Any) -> DeadLetter:
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
        raw=message,
    )


class _Reader:
    """Takes messages of one queue with manual acks; unacked ones return on close."""

    def __init__(self, conn: Connection, queue: str) -> None:
        self.conn = conn
        self.queue_name = queue
        self.channel = conn.channel()
        self.channel.auto_decode = False
        self.queue = Queue(queue, no_declare=True)(self.channel)

    def depth(self) -> int:
        try:
            _, count, _ = self.channel.queue_declare(queue=self.queue_name, passive=True)
        except Exception as exc:
            raise DlqError(
                f"queue {self.queue_name} does not exist (run `entity-sync topology declare`)",
                reason="unknown_queue",
            ) from exc
        return int(count)

    def __iter__(self) -> Iterator[DeadLetter]:
        while (message := self.queue.get(no_ack=False)) is not None:
            yield _letter(self.queue_name, message)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if is_rabbitmq(self.conn):
                self.channel.close()
            else:  # the virtual transport returns unacked messages when the channel closes
                self.channel.close()


def browse(conn: Connection, queue: str, limit: int | None = None) -> list[DeadLetter]:
    """The messages of `queue` in order, leaving them all in place."""
    reader = _Reader(conn, queue)
    try:
        total = reader.depth()
        out: list[DeadLetter] = []
        for letter in reader:
            out.append(letter)
            if len(out) >= total or (limit is not None and len(out) >= limit):
                break
        return out
    finally:
        reader.close()


def distinct(letters: Sequence[DeadLetter]) -> list[DeadLetter]:
    """One letter per message id, the first in queue order, with `copies` counted."""
    first: dict[str, DeadLetter] = {}
    for letter in letters:
        kept = first.setdefault(letter.id, letter)
        if kept is not letter:
            kept.copies += 1
    return list(first.values())


def summarize(queue: str, letters: Sequence[DeadLetter]) -> Summary:
    counts: Counter[tuple[str, str]] = Counter()
    examples: dict[tuple[str, str], str] = {}
    physical = len(letters)
    letters = distinct(letters)
    for letter in letters:
        key = (letter.error_type, letter.fingerprint)
        counts[key] += 1
        examples.setdefault(key, letter.error_message[:120])
    times = sorted(t for t in (letter.failed_at for letter in letters) if t)
    return Summary(
        queue=queue,
        count=len(letters),
        groups=[Group(e, f, n, examples[(e, f)]) for (e, f), n in counts.most_common()],
        oldest=times[0] if times else "",
        newest=times[-1] if times else "",
        copies=physical,
    )


def operator() -> str:
    with contextlib.suppress(Exception):
        return getpass.getuser()
    return "unknown"


def _replayed(letter: DeadLetter, who: str, conn_user: str | None) -> OutMessage:
    return republish.replayed(letter, who, conn_user)


def move(
    conn: Connection,
    queue: str,
    selection: Selection,
    *,
    replay: bool,
    dry_run: bool = False,
    limit: int | None = None,
    rate: float | None = None,
    who: str | None = None,
    on_step: Callable[[DeadLetter, int], None] | None = None,
) -> MoveResult:
    """Replay (to the original queue) or purge the selected dead letters of `queue`.

    Messages not selected are left unacked until the end, then return to the DLQ in order.
    `on_step(letter, total)` is called after each selected message is handled.
    """
    who = who or operator()
    conn_user = getattr(conn, "userid", None) if is_rabbitmq(conn) else None
    reader = _Reader(conn, queue)
    publisher = None if dry_run or not replay else ConfirmingPublisher(conn)
    result = MoveResult()
    try:
        total = reader.depth()
        pause = 1.0 / rate if rate else 0.0
        handled: set[str] = set()
        passed: set[str] = set()
        for seen, letter in enumerate(reader, start=1):
            if letter.id in handled:
                # Another copy of a message this run already moved: one failure, one move.
                if not dry_run:
                    letter.raw.ack()
                result.merged += 1
            elif selection.matches(letter) and (limit is None or result.matched < limit):
                handled.add(letter.id)
                result.matched += 1
                if not dry_run:
                    if publisher is not None:
                        publisher.publish_many([_replayed(letter, who, conn_user)])
                    letter.raw.ack()  # only after the broker confirmed the copy
                    result.moved += 1
                    result.moved_ids.append(letter.id)
                    log.info(
                        "dlq replayed" if replay else "dlq purged",
                        queue=queue,
                        to=letter.original_queue if replay else None,
                        id=letter.id,
                        error_type=letter.error_type,
                        by=who,
                    )
                if on_step is not None:
                    on_step(letter, total)
                if pause and not dry_run:
                    time.sleep(pause)  # pacing the replay, not synchronisation
            elif letter.id not in passed:
                passed.add(letter.id)
                result.skipped += 1
            if seen >= total or (limit is not None and result.matched >= limit):
                break
    finally:
        if publisher is not None:
            publisher.close()
        reader.close()
    return result
