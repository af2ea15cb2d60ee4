"""The events `entity-sync demo` publishes: a small, realistic multi-entity story.

Targets: acme-de (connected, accepts accounting periods, EUR+USD), acme-ch (connected, keeps its
own accounting periods, CHF only until it activates EUR), acme-jp (connection requested, never
accepted).
"""

from __future__ import annotations

import uuid
from typing import Any

Event = tuple[str, dict[str, Any]]
AT = "2026-11-20T09:00:00Z"
PRODUCT = "8a80c3a87f1d2e3b017f1e9c0c5d0001"
PLAN = "8a80c3a87f1d2e3b017f1e9c0c5d0002"
CHARGE = "8a80c3a87f1d2e3b017f1e9c0c5d0003"
PERIOD = "AP-2027-01"


def _id() -> str:
    return str(uuid.uuid4())


def _entity(entity_id: str, display: str, currencies: list[str], **kw: Any) -> Event:
    return (
        "entity.upserted",
        {
            "event_id": _id(),
            "occurred_at": AT,
            "entity_id": entity_id,
            "name": entity_id,
            "display_name": display,
            "parent_id": None if entity_id == "global" else "global",
            "is_global": entity_id == "global",
            "earliest_activity_date": kw.get("earliest"),
            "has_own_accounting_periods": kw.get("own_periods", False),
            "active_currencies": currencies,
        },
    )


def _connection(conn_id: str, target: str, action: str) -> Event:
    return (
        "entity.connection",
        {
            "event_id": _id(),
            "occurred_at": AT,
            "connection_id": conn_id,
            "source_entity": "global",
            "target_entity": target,
            "action": action,
        },
    )


def _object(
    object_type: str,
    object_id: str,
    version: int,
    data: dict[str, Any],
    parent: str | None = None,
    action: str = "upsert",
) -> Event:
    return (
        f"object.shared.{object_type}",
        {
            "event_id": _id(),
            "occurred_at": AT,
            "source_entity": "global",
            "object_type": object_type,
            "object_id": object_id,
            "parent_id": parent,
            "version": version,
            "action": action,
            "data": data,
        },
    )


def _charge(version: int, model: str = "FlatFee") -> Event:
    return _object(
        "product_rate_plan_charge",
        CHARGE,
        version,
        {
            "name": "Monthly fee",
            "charge_type": "Recurring",
            "charge_model": model,
            "billing_timing": "InAdvance",
            "prices": {"USD": "49.00", "EUR": "45.00", "CHF": "47.00"},
            "tiers": [],
        },
        parent=PLAN,
    )


def _settings(target: str) -> Event:
    """`target` takes accounting periods as they come (auto_accept)."""
    return (
        "entity.settings",
        {
            "event_id": _id(),
            "occurred_at": AT,
            "target_entity": target,
            "object_type": "accounting_period",
            "acceptance": "auto_accept",
        },
    )


def _admin() -> list[Event]:
    return [
        _entity("global", "Acme Global", ["USD", "EUR", "CHF"]),
        _entity("acme-de", "Acme Germany", ["EUR", "USD"], earliest="2027-02-01"),
        _entity("acme-ch", "Acme Switzerland", ["CHF"], earliest="2027-03-01", own_periods=True),
        _entity("acme-jp", "Acme Japan", ["USD"]),
        _connection("conn-de", "acme-de", "request"),
        _connection("conn-de", "acme-de", "accept"),
        _connection("conn-ch", "acme-ch", "request"),
        _connection("conn-ch", "acme-ch", "accept"),
        _connection("conn-jp", "acme-jp", "request"),
        _settings("acme-de"),
        _settings("acme-ch"),
        ("entity.control", {"event_id": _id(), "occurred_at": AT, "levels": {"name": "source"}}),
    ]


def _product(version: int, name: str, description: str) -> Event:
    data = {
        "name": name,
        "sku": "SKU-00042",
        "description": description,
        "effective_start_date": "2027-01-01",
        "effective_end_date": "2030-12-31",
    }
    return _object("product", PRODUCT, version, data)


def _catalogue() -> list[Event]:
    period = {
        "name": "January 2027",
        "start_date": "2027-01-01",
        "end_date": "2027-01-31",
        "fiscal_year": 2027,
        "status": "Open",
        "notes": "",
    }
    return [
        _product(1, "Analytics Suite", "Reporting add-on"),
        _object("product_rate_plan", PLAN, 1, {"name": "Monthly"}, parent=PRODUCT),
        _charge(1),
        _object("accounting_period", PERIOD, 1, period),
    ]


def story() -> list[tuple[str, list[Event]]]:
    """Steps of the story, each a caption and its events (published in this order)."""
    changes = [
        _product(2, "Analytics Suite Pro", "Now with dashboards"),
        _object("product", PRODUCT, 1, {"name": "Analytics Suite", "sku": "SKU-00042"}),
        _charge(2, model="PerUnit"),
        _object("product", PRODUCT, 3, {}, action="delete"),
    ]
    activates = _entity(
        "acme-ch", "Acme Switzerland", ["CHF", "EUR"], earliest="2027-03-01", own_periods=True
    )
    return [
        ("entities and connections", _admin()),
        ("the catalogue and a period", _catalogue()),
        ("changes, some allowed and some not", changes),
        ("acme-ch activates EUR", [activates]),
    ]


ACCOUNTS = [
    "0a000000000000000000000000000001",
    "0a000000000000000000000000000002",
    "0a000000000000000000000000000003",
]  # the third has no CrmId in the seed
CRM_ACCOUNT = "001000000000001AAA"  # its billing accounts: the first above and 0a000…0004
SEED_PRODUCT = "1a000000000000000000000000000001"


def syncs() -> list[Event]:
    """On-demand syncs against the sandboxes seeded from sandbox/entity_sync_sandbox/seeds//"""

    def request(object_type: str, ids: list[str]) -> Event:
        ids_field = "crm_account_ids" if object_type == "crm_account" else "zuora_ids"
        return (
            "sync.request",
            {
                "request_id": _id(),
                "event_id": _id(),
                "object_type": object_type,
                ids_field: ids,
                "origin": "ui",
                "requested_by": "demo@example.com",
                "requested_at": AT,
            },
        )

    return [
        request("billing_account", ACCOUNTS),
        request("product", [SEED_PRODUCT]),
        request("crm_account", [CRM_ACCOUNT]),
    ]
