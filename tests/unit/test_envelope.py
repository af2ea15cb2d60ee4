"""Decoding deliveries: each kind of poison gets its own reason; good ones become models."""

from __future__ import annotations

import orjson
import pytest

from entity_sync.runtime.delivery import Delivery
from entity_sync.runtime.envelope import Envelope, Poison, decode, kinds_by_queue
from entity_sync.runtime.topology import Names
from entity_sync.schemas.inputs import ADMIN_MODELS, EntityControl, ObjectShared, SyncRequest

GOOD = {
    "event_id": "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c04",
    "occurred_at": "2026-11-20T09:07:00Z",
    "source_entity": "global",
    "object_type": "product",
    "object_id": "p-1",
    "parent_id": None,
    "version": 1,
    "action": "upsert",
    "data": {"name": "n"},
}


def delivery(body: bytes, routing_key: str = "object.shared.product", **kw: object) -> Delivery:
    return Delivery(queue="q", routing_key=routing_key, exchange="x", body=body, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("body", "routing_key", "reason"),
    [
        (b"\xff\xfe\x00", "object.shared.product", "not_utf8"),
        (b"{nope", "object.shared.product", "invalid_json"),
        (b"[]", "object.shared.product", "schema_invalid"),
        (orjson.dumps(GOOD | {"version": True}), "object.shared.product", "schema_invalid"),
        (orjson.dumps(GOOD), "object.shared.accounting_period", "schema_invalid"),
        (orjson.dumps(GOOD), "entity.unknown", "unknown_routing_key"),
        (b"x" * 2000, "object.shared.product", "oversize_body"),
    ],
)
def test_poison_reasons(body: bytes, routing_key: str, reason: str) -> None:
    result = decode(delivery(body, routing_key), max_body_bytes=1024)
    assert isinstance(result, Poison)
    assert result.reason == reason
    assert result.message


def test_a_good_body_becomes_its_model_with_its_event_id() -> None:
    result = decode(delivery(orjson.dumps(GOOD)), max_body_bytes=1024)
    assert isinstance(result, Envelope)
    assert isinstance(result.model, ObjectShared)
    assert result.event_id == GOOD["event_id"]


def test_a_retried_message_is_decoded_by_its_original_routing_key() -> None:
    body = orjson.dumps(
        {
            "event_id": GOOD["event_id"],
            "occurred_at": GOOD["occurred_at"],
            "levels": {"sku": "source"},
        }
    )
    retried = Delivery(
        queue="es.entity-admin",
        routing_key="es.entity-admin",
        exchange="",
        body=body,
        headers={"x-original-routing-key": "entity.control"},
    )
    result = decode(retried, max_body_bytes=1024)
    assert isinstance(result, Envelope)
    assert isinstance(result.model, EntityControl)


def test_the_original_routing_key_header_is_ignored_on_a_fresh_publish() -> None:
    forged = Delivery(
        queue="q",
        routing_key="object.shared.product",
        exchange="es.in",
        body=orjson.dumps(GOOD),
        headers={"x-original-routing-key": "entity.control"},
    )
    assert isinstance(decode(forged, max_body_bytes=1024), Envelope)


@pytest.mark.parametrize("header", ["sync.request", "object.shared.product", None])
def test_a_kind_that_does_not_belong_in_the_queue_is_poison_whatever_the_header(
    header: str | None,
) -> None:
    names = Names("p")
    forged = Delivery(
        queue=names.entity_admin,
        routing_key=names.entity_admin,
        exchange="",
        body=orjson.dumps(GOOD),
        headers={"x-original-routing-key": header} if header else {},
        accepts=kinds_by_queue(names)[names.entity_admin],
    )
    result = decode(forged, max_body_bytes=10_000)
    assert isinstance(result, Poison)
    assert result.reason == ("wrong_queue" if header else "unknown_routing_key")


def test_each_queue_takes_exactly_its_own_kinds() -> None:
    names = Names("p")
    kinds = kinds_by_queue(names)
    assert kinds[names.object_shared] == {ObjectShared}
    assert kinds[names.sync_request] == {SyncRequest}
    assert kinds[names.entity_admin] == set(ADMIN_MODELS.values())
