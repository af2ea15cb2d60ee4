"""Builders of input events for the sharing-rule tests: real input models.

Every event is built through the pydantic contract in schemas/inputs.py, so a builder that
produced an invalid message would fail here, not silently pass a dict the worker never sees.
"""

from __future__ import annotations

import uuid
from typing import Any, TypedDict, Unpack

from entity_sync.schemas.inputs import (
    EntityConnection,
    EntityControl,
    EntitySettings,
    EntityUpserted,
    ObjectShared,
)

GLOBAL = "global"
OCCURRED_AT = "2026-11-20T10:00:00Z"

# --- input events -------------------------------------------------------------------------


def eid() -> str:
    return str(uuid.uuid4())


class SharedOptions(TypedDict, total=False):
    """The optional fields of an ObjectShared event; shared() fills in the rest."""

    version: int  # 1
    data: dict[str, Any] | None  # None
    parent_id: str | None  # None
    action: str  # "upsert"
    source: str  # GLOBAL
    event_id: str | None  # a new uuid


def shared(object_type: str, object_id: str, **options: Unpack[SharedOptions]) -> ObjectShared:
    return ObjectShared.model_validate(
        {
            "event_id": options.get("event_id") or eid(),
            "source_entity": options.get("source", GLOBAL),
            "object_type": object_type,
            "object_id": object_id,
            "parent_id": options.get("parent_id"),
            "version": options.get("version", 1),
            "action": options.get("action", "upsert"),
            "data": options.get("data"),
            "occurred_at": OCCURRED_AT,
        }
    )


def product_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "Analytics Suite",
        "sku": "SKU-1",
        "description": "Reporting add-on",
        "effective_start_date": "2026-01-01",
        "effective_end_date": "2030-12-31",
    }
    data.update(overrides)
    return data


def rate_plan_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"name": "Monthly", "description": "Billed monthly"}
    data.update(overrides)
    return data


def charge_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "Monthly fee",
        "charge_type": "Recurring",
        "charge_model": "FlatFee",
        "billing_timing": "InAdvance",
        "prices": {"USD": "49.00"},
        "tiers": [],
    }
    data.update(overrides)
    return data


def period_data(
    start: str = "2026-01-01", end: str = "2026-01-31", **overrides: Any
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": f"Period from {start}",
        "start_date": start,
        "end_date": end,
        "fiscal_year": int(start[:4]),
        "status": "Open",
        "notes": "",
    }
    data.update(overrides)
    return data


def product(
    object_id: str = "P1", *, version: int = 1, event_id: str | None = None, **data: Any
) -> ObjectShared:
    return shared(
        "product", object_id, version=version, data=product_data(**data), event_id=event_id
    )


def rate_plan(
    object_id: str = "RP1",
    product_id: str = "P1",
    *,
    version: int = 1,
    event_id: str | None = None,
    **data: Any,
) -> ObjectShared:
    return shared(
        "product_rate_plan",
        object_id,
        version=version,
        parent_id=product_id,
        data=rate_plan_data(**data),
        event_id=event_id,
    )


def charge(
    object_id: str = "C1",
    rate_plan_id: str = "RP1",
    *,
    version: int = 1,
    event_id: str | None = None,
    **data: Any,
) -> ObjectShared:
    return shared(
        "product_rate_plan_charge",
        object_id,
        version=version,
        parent_id=rate_plan_id,
        data=charge_data(**data),
        event_id=event_id,
    )


def period(
    object_id: str = "AP1",
    start: str = "2026-01-01",
    end: str = "2026-01-31",
    *,
    version: int = 1,
    event_id: str | None = None,
    **data: Any,
) -> ObjectShared:
    return shared(
        "accounting_period",
        object_id,
        version=version,
        data=period_data(start, end, **data),
        event_id=event_id,
    )


def delete(
    object_type: str, object_id: str, *, version: int, parent_id: str | None = None
) -> ObjectShared:
    return shared(
        object_type, object_id, version=version, parent_id=parent_id, action="delete", data=None
    )


def entity(
    entity_id: str = "t1",
    *,
    currencies: tuple[str, ...] | list[str] = ("USD",),
    earliest_activity_date: str | None = None,
    has_own_periods: bool = False,
    is_global: bool | None = None,
    event_id: str | None = None,
) -> EntityUpserted:
    return EntityUpserted.model_validate(
        {
            "event_id": event_id or eid(),
            "occurred_at": OCCURRED_AT,
            "entity_id": entity_id,
            "name": entity_id,
            "display_name": f"Entity {entity_id}",
            "parent_id": None if entity_id == GLOBAL else GLOBAL,
            "is_global": (entity_id == GLOBAL) if is_global is None else is_global,
            "earliest_activity_date": earliest_activity_date,
            "has_own_accounting_periods": has_own_periods,
            "active_currencies": list(currencies),
        }
    )


def connection(
    connection_id: str,
    target: str,
    action: str,
    *,
    source: str = GLOBAL,
    event_id: str | None = None,
) -> EntityConnection:
    return EntityConnection.model_validate(
        {
            "event_id": event_id or eid(),
            "occurred_at": OCCURRED_AT,
            "connection_id": connection_id,
            "source_entity": source,
            "target_entity": target,
            "action": action,
        }
    )


def settings(
    target: str, acceptance: str, *, force: bool = False, event_id: str | None = None
) -> EntitySettings:
    return EntitySettings.model_validate(
        {
            "event_id": event_id or eid(),
            "occurred_at": OCCURRED_AT,
            "target_entity": target,
            "object_type": "accounting_period",
            "acceptance": acceptance,
            "force": force,
        }
    )


def control_levels(**levels: str) -> EntityControl:
    return EntityControl.model_validate(
        {"event_id": eid(), "occurred_at": OCCURRED_AT, "levels": levels}
    )
