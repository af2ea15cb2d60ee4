"""A realistic sequence of events with known expectations, for integration tests.

Entities: `global` (source), `t-auto` (connected, auto_accept periods, EUR+USD), `t-manual`
(connected, dont_accept, USD only until phase 4), `t-pending` (requested, never accepted).
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from entity_sync.runtime.delivery import Delivery

Event = tuple[str, dict[str, Any]]
GLOBAL = "global"
PRODUCT, RATE_PLAN, CHARGE = "p-1", "rp-1", "c-1"
PERIOD = "ap-2026-01"
HOSTILE_PRODUCT = "p-hostile"
HOSTILE_NAME = '\'; DROP TABLE entities; -- ../../etc/passwd "quoted" ' + "x" * 10_000
T = "2026-11-20T09:00:00Z"


def delivery(event: Event) -> Delivery:
    """`event` as the worker would take it from the queue of prefix `p` it belongs in, for
    tests and benchmarks that run a processor without a broker."""
    routing_key, body = event
    queue = "p.object-shared" if routing_key.startswith("object.") else "p.entity-admin"
    return Delivery(
        queue, routing_key, "p.in", orjson.dumps(body), properties={"message_id": body["event_id"]}
    )


def eid() -> str:
    return str(uuid.uuid4())


def entity(entity_id: str, currencies: list[str], **kw: Any) -> Event:
    body = {
        "event_id": eid(),
        "occurred_at": T,
        "entity_id": entity_id,
        "name": entity_id,
        "display_name": entity_id.title(),
        "parent_id": None if entity_id == GLOBAL else GLOBAL,
        "is_global": entity_id == GLOBAL,
        "earliest_activity_date": kw.get("earliest", "2027-01-01"),
        "has_own_accounting_periods": kw.get("own_periods", False),
        "active_currencies": currencies,
    }
    return ("entity.upserted", body)


def connection(conn_id: str, target: str, action: str) -> Event:
    return (
        "entity.connection",
        {
            "event_id": eid(),
            "occurred_at": T,
            "connection_id": conn_id,
            "source_entity": GLOBAL,
            "target_entity": target,
            "action": action,
        },
    )


def obj(
    object_type: str,
    object_id: str,
    version: int,
    data: dict[str, Any],
    parent: str | None = None,
    **kw: Any,
) -> Event:
    return (
        f"object.shared.{object_type}",
        {
            "event_id": kw.get("event_id") or eid(),
            "occurred_at": T,
            "source_entity": kw.get("source", GLOBAL),
            "object_type": object_type,
            "object_id": object_id,
            "parent_id": parent,
            "version": version,
            "action": kw.get("action", "upsert"),
            "data": data,
        },
    )


def admin_phase() -> list[Event]:
    return [
        entity(GLOBAL, ["USD", "EUR"]),
        entity("t-auto", ["EUR", "USD"]),
        entity("t-manual", ["USD"]),
        entity("t-pending", ["USD"]),
        entity("t-own", ["USD"], own_periods=True),
        connection("c-auto", "t-auto", "request"),
        connection("c-auto", "t-auto", "accept"),
        connection("c-manual", "t-manual", "request"),
        connection("c-manual", "t-manual", "accept"),
        connection("c-pending", "t-pending", "request"),
        connection("c-own", "t-own", "request"),
        connection("c-own", "t-own", "accept"),
        (
            "entity.settings",
            {
                "event_id": eid(),
                "occurred_at": T,
                "target_entity": "t-auto",
                "object_type": "accounting_period",
                "acceptance": "auto_accept",
            },
        ),
        (
            "entity.settings",
            {
                "event_id": eid(),
                "occurred_at": T,
                "target_entity": "t-own",
                "object_type": "accounting_period",
                "acceptance": "auto_accept",
            },
        ),
        ("entity.control", {"event_id": eid(), "occurred_at": T, "levels": {"name": "source"}}),
    ]


def object_phase() -> list[Event]:
    return [
        obj("product", PRODUCT, 1, {"name": "Analytics", "sku": "SKU-1", "description": "d1"}),
        obj("product_rate_plan", RATE_PLAN, 1, {"name": "Monthly"}, parent=PRODUCT),
        obj(
            "product_rate_plan_charge",
            CHARGE,
            1,
            {
                "name": "Fee",
                "charge_type": "Recurring",
                "charge_model": "FlatFee",
                "billing_timing": "InAdvance",
                "prices": {"USD": "49.00", "EUR": "45.00"},
            },
            parent=RATE_PLAN,
        ),
        obj(
            "accounting_period",
            PERIOD,
            1,
            {
                "name": "January 2026",
                "start_date": "2026-01-01",
                "end_date": "2026-01-31",
                "fiscal_year": 2026,
                "status": "Open",
                "notes": "",
            },
        ),
        obj("product", HOSTILE_PRODUCT, 1, {"name": HOSTILE_NAME, "sku": "S'; --"}),
    ]


def change_phase() -> tuple[list[Event], dict[str, str]]:
    """Updates, a stale and a duplicate event, and events the rules reject.

    Returns the events and the expected dead-letter reason per event id.
    """
    update = obj(
        "product", PRODUCT, 2, {"name": "Analytics Pro", "sku": "SKU-1", "description": "d2"}
    )
    stale = obj("product", PRODUCT, 1, {"name": "Old", "sku": "SKU-0"})
    delete = obj("product", PRODUCT, 3, {}, action="delete")
    foreign = obj("product", "p-foreign", 1, {"name": "x"}, source="t-auto")
    immutable = obj(
        "product_rate_plan_charge",
        CHARGE,
        2,
        {
            "name": "Fee",
            "charge_type": "Recurring",
            "charge_model": "PerUnit",
            "billing_timing": "InAdvance",
            "prices": {"USD": "1.00"},
        },
        parent=RATE_PLAN,
    )
    events = [update, update, stale, delete, foreign, immutable]
    rejected = {
        delete[1]["event_id"]: "shared_object_delete",
        foreign[1]["event_id"]: "not_global_source",
        immutable[1]["event_id"]: "immutable_attribute",
    }
    return events, rejected


def release_phase() -> list[Event]:
    return [entity("t-manual", ["USD", "EUR"])]


def poison() -> list[tuple[str, bytes, str]]:
    """(routing key, raw body, expected x-error-type)."""
    big = b'{"pad": "' + b"a" * (1024 * 1024 + 10) + b'"}'
    bad_version = obj("product", "p-2", 1, {"name": "n"})[1] | {"version": "3"}
    bad_id = obj("product", "../../etc/passwd", 1, {"name": "n"})[1]
    import orjson

    return [
        ("object.shared.product", b"\xff\xfe not utf-8", "not_utf8"),
        ("object.shared.product", b"{not json", "invalid_json"),
        ("object.shared.product", big, "oversize_body"),
        ("object.shared.product", orjson.dumps(bad_version), "schema_invalid"),
        ("object.shared.product", orjson.dumps(bad_id), "schema_invalid"),
        ("entity.upserted", b"[1, 2, 3]", "schema_invalid"),
        ("entity.bogus", b"{}", "unknown_routing_key"),
    ]
