"""No message stops the worker: each queue takes only its own kinds, whatever the headers say,
and an unexpected exception while handling one delivery retries or dead-letters that delivery."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import orjson
import pika
import pytest
from kombu.connection import Connection

from entity_sync.bootstrap import build
from entity_sync.handlers.errors import InvalidMessage
from entity_sync.handlers.sharing.service import SharingContext
from entity_sync.operations.letters import peek
from entity_sync.runtime import ack_policy
from entity_sync.runtime.batch import BatchResult
from entity_sync.runtime.bulk import BulkRunner
from entity_sync.runtime.consumer import Worker
from entity_sync.runtime.delivery import Delivery
from entity_sync.runtime.failure import Failure
from entity_sync.runtime.topology import Names, declare
from tests.integration.harness import processed
from tests.support import scenario as sc
from tests.support.amqp import PikaPublisher, pika_params, queue_depth
from tests.support.runner import running_app, settings_for
from tests.support.waiting import wait_for


def _sync_request() -> tuple[str, dict[str, Any]]:
    return (
        "sync.request",
        {
            "request_id": str(uuid.uuid4()),
            "object_type": "billing_account",
            "zuora_ids": ["0a" + "0" * 30],
            "origin": "api",
            "requested_by": "it@example.com",
            "requested_at": "2026-11-20T12:00:00Z",
        },
    )


KINDS = {
    "object.shared.product": lambda: sc.obj("product", f"p-{uuid.uuid4().hex[:6]}", 1, {}),
    "entity.upserted": lambda: sc.entity("t-wrong", ["USD"]),
    "sync.request": _sync_request,
}
HOME = {"object.shared.product": "object-shared", "entity.upserted": "entity-admin"}
HOME["sync.request"] = "sync-request"


def _publish_direct(url: str, queue: str, body: bytes, message_id: str, header: str | None) -> None:
    """Straight into a queue through the default exchange, as a misbehaving upstream might."""
    headers = {"x-original-routing-key": header} if header else None
    with pika.BlockingConnection(pika_params(url)) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish(
            "",
            queue,
            body,
            pika.BasicProperties(
                content_type="application/json",
                delivery_mode=2,
                message_id=message_id,
                headers=headers,
            ),
            mandatory=True,
        )


@pytest.mark.integration
@pytest.mark.usefixtures("rabbit_cleanup")
def test_every_kind_in_every_wrong_queue_is_dead_lettered_and_the_worker_goes_on(
    broker_url: str, database_url: str, prefix: str
) -> None:
    settings = settings_for(prefix, broker_url, database_url)
    names = Names(prefix)
    expected: dict[str, tuple[str, str]] = {}  # message id -> (dlq, reason)
    with running_app(settings) as app:
        for routing_key, make in KINDS.items():
            for short in ("object-shared", "entity-admin", "sync-request"):
                if short == HOME[routing_key]:
                    continue
                queue = f"{prefix}.{short}"
                for header in (routing_key, None):
                    _, body = make()
                    message_id = f"{short}-{routing_key}-{'h' if header else 'n'}"
                    _publish_direct(broker_url, queue, orjson.dumps(body), message_id, header)
                    reason = "wrong_queue" if header else "unknown_routing_key"
                    expected[message_id] = (names.dlq(queue), reason)

        per_dlq = Counter(dlq for dlq, _ in expected.values())
        wait_for(
            lambda: all(queue_depth(broker_url, q) == n for q, n in per_dlq.items()),
            timeout=30,
            what="every misplaced message dead-lettered",
            status=lambda: {q: queue_depth(broker_url, q) for q in per_dlq},
        )
        got: dict[str, tuple[str, str]] = {}
        with Connection(broker_url) as conn:
            for dlq in per_dlq:
                for letter in peek(conn, dlq):
                    got[letter.id] = (dlq, str(letter.headers["x-error-type"]))
                    assert letter.headers["x-original-queue"] == dlq.removesuffix(".dlq")
        assert got == expected

        # Still running: both consumers ready, and a good event is applied.
        assert app.is_ready()
        before = processed(app)
        pub = PikaPublisher(broker_url, f"{prefix}.in")
        pub.publish(*sc.entity("t-after", ["USD"]))
        pub.close()
        wait_for(lambda: processed(app) == before + 1, what="a good event after the bad ones")


class _Explodes:
    """A processor with a bug that one message runs into (and the rest do not)."""

    def __init__(self) -> None:
        self.handled: list[str] = []

    def process(self, deliveries: list[Delivery]) -> BatchResult:
        result = BatchResult()
        handled = []  # committed only if the whole batch goes through, like a transaction
        for delivery in deliveries:
            if delivery.body == b'"boom"':
                raise KeyError("boom")
            if delivery.body == b'"poison"':
                bad = InvalidMessage("bad", reason="schema_invalid")
                ack_policy.dead_letter(result, delivery, Failure.of(bad))
                continue
            handled.append(delivery.body.decode())
            result.fates["applied"] += 1
        self.handled.extend(handled)
        return result


@pytest.mark.integration
@pytest.mark.usefixtures("rabbit_cleanup")
def test_an_unexpected_exception_retries_then_dead_letters_that_delivery_only(
    broker_url: str, database_url: str, prefix: str
) -> None:
    settings = settings_for(
        prefix, broker_url, database_url, retry_delays="1", max_attempts=2, batch_linger_ms=200
    )
    names = Names(prefix)
    app = build(settings)
    app.upgrade_database()
    processor = _Explodes()
    worker = Worker(settings, app.engine, processor, [names.object_shared])
    dlq = names.dlq(names.object_shared)
    try:
        with Connection(broker_url) as conn:
            declare(conn, names, {})
            producer = conn.Producer()
            for body in (b'"a"', b'"boom"', b'"b"', b'"poison"', b'"c"'):
                producer.publish(
                    body, exchange="", routing_key=names.object_shared, serializer=None,
                    content_type="application/json", content_encoding="utf-8",
                    headers={"x-original-routing-key": "object.shared.product"},
                )  # fmt: skip
        stats = worker.run(until_idle=4.0)
        assert sorted(processor.handled) == ['"a"', '"b"', '"c"']
        assert stats.fates["retried"] == 1
        assert stats.fates["dead_lettered"] == 2
        with Connection(broker_url) as conn:
            letters = {x.body: x for x in peek(conn, dlq)}
        boom = letters[b'"boom"']
        assert boom.headers["x-error-type"] == "unexpected_error"
        assert boom.headers["x-exception-type"] == "KeyError"
        assert boom.headers["x-attempts"] == 2
        assert letters[b'"poison"'].headers["x-error-type"] == "schema_invalid"
    finally:
        app.close()
        with Connection(broker_url) as conn:
            conn.default_channel.queue_delete(Names.retry_queue(names.object_shared, 1))


class _BrokenBulk(BulkRunner):
    """A bulk fan-out whose chunk fails with a bug."""

    def __init__(self, engine: Any) -> None:
        super().__init__(engine, SharingContext("global"), "p.out", chunk_size=10)
        self.calls = 0

    def commit_chunk(self) -> None:
        self.calls += 1
        raise RuntimeError("a bug in a chunk")


@pytest.mark.integration
@pytest.mark.usefixtures("rabbit_cleanup")
def test_a_failing_bulk_chunk_does_not_end_the_worker(
    broker_url: str, database_url: str, prefix: str
) -> None:
    settings = settings_for(prefix, broker_url, database_url)
    names = Names(prefix)
    app = build(settings)
    app.upgrade_database()
    bulk = _BrokenBulk(app.engine)
    processor = _Explodes()
    worker = Worker(settings, app.engine, processor, [names.object_shared], bulk=bulk)
    try:
        with Connection(broker_url) as conn:
            declare(conn, names, {})
            conn.Producer().publish(
                b'"a"', exchange="", routing_key=names.object_shared, serializer=None,
                content_type="application/json", content_encoding="utf-8",
                headers={"x-original-routing-key": "object.shared.product"},
            )  # fmt: skip
        stats = worker.run(until_idle=2.0)
    finally:
        app.close()
    assert bulk.calls >= 1
    assert processor.handled == ['"a"']
    assert stats.fates["applied"] == 1
