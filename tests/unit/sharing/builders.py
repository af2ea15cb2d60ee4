"""Builders for sharing-rule tests: real input models, a fake in-memory state, small readers.

Every event is built through the pydantic contract in schemas/inputs.py, so a builder that
produced an invalid message would fail here, not silently pass a dict the worker never sees.
`SharingState()` with no loader is the in-memory fake: what is in memory is all there is.
"""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack

from entity_sync.handlers.sharing.model import Copy, Decision, Outcome, Output, SourceObject
from entity_sync.handlers.sharing.service import (
    SharingContext,
    handle_connection,
    handle_control,
    handle_entity_upserted,
    handle_object_shared,
    handle_settings,
    run_bulk_chunk,
)
from entity_sync.handlers.sharing.state import SharingState
from entity_sync.schemas.inputs import (
    EntityConnection,
    EntityControl,
    EntitySettings,
    EntityUpserted,
    Message,
    ObjectShared,
)

GLOBAL = "global"
CTX = SharingContext(global_entity=GLOBAL)
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


# --- driving the service ------------------------------------------------------------------


def handle(state: SharingState, ev: Message, chunk: int = 3) -> Outcome:
    """Dispatch one event to its handler, then run its bulk jobs to the end in chunks of
    `chunk` objects, like the worker does (each chunk after the event's commit)."""
    outcome = _dispatch(state, ev)
    for job in outcome.jobs:
        cursor = None
        while True:
            part = run_bulk_chunk(state, job, cursor, chunk)
            outcome.outputs.extend(part.outcome.outputs)
            outcome.decisions.extend(part.outcome.decisions)
            cursor = part.cursor
            if part.finished:
                break
    return outcome


def _dispatch(state: SharingState, ev: Message) -> Outcome:
    if isinstance(ev, ObjectShared):
        return handle_object_shared(state, ev, CTX)
    if isinstance(ev, EntityUpserted):
        return handle_entity_upserted(state, ev, CTX)
    if isinstance(ev, EntityConnection):
        return handle_connection(state, ev, CTX)
    if isinstance(ev, EntitySettings):
        return handle_settings(state, ev, CTX)
    if isinstance(ev, EntityControl):
        return handle_control(state, ev, CTX)
    raise TypeError(type(ev))


def add_target(state: SharingState, target: str = "t1", **entity_kw: Any) -> Outcome:
    return handle(state, entity(target, **entity_kw))


def connect(state: SharingState, target: str = "t1", connection_id: str | None = None) -> Outcome:
    """request + accept; returns the outcome of the accept (the backfill)."""
    cid = connection_id or f"conn-{target}"
    handle(state, connection(cid, target, "request"))
    return handle(state, connection(cid, target, "accept"))


def connected_world(*targets: str, **entity_kw: Any) -> SharingState:
    """A state with the global entity and the given targets, each connected."""
    state = SharingState()
    handle(state, entity(GLOBAL))
    for target in targets or ("t1",):
        add_target(state, target, **entity_kw)
        connect(state, target)
    return state


def share_tree(state: SharingState, *, prices: dict[str, str] | None = None) -> None:
    """P1 <- RP1 <- C1 shared at version 1."""
    handle(state, product("P1"))
    handle(state, rate_plan("RP1", "P1"))
    handle(state, charge("C1", "RP1", prices=prices or {"USD": "49.00"}))


# --- reading results ----------------------------------------------------------------------


def routing_keys(outcome: Outcome) -> list[str]:
    return [o.routing_key for o in outcome.outputs]


def sent(outcome: Outcome) -> list[tuple[str, str]]:
    """(object_type, source_object_id) of every target update, in publish order."""
    return [
        (o.body["object_type"], o.body["source_object_id"])
        for o in outcome.outputs
        if o.routing_key.startswith("target.")
    ]


def only_output(outcome: Outcome) -> Output:
    assert len(outcome.outputs) == 1, [o.routing_key for o in outcome.outputs]
    return outcome.outputs[0]


def only_decision(outcome: Outcome) -> Decision:
    assert len(outcome.decisions) == 1, outcome.decisions
    return outcome.decisions[0]


def decisions_for(outcome: Outcome, target: str) -> list[Decision]:
    return [d for d in outcome.decisions if d.target_entity == target]


def copy_of(state: SharingState, object_type: str, object_id: str, target: str = "t1") -> Copy:
    """The copy a target holds through its currently connected connection."""
    found = [
        c
        for c in state.copies.values()
        if c.target_entity == target
        and c.object_type == object_type
        and c.source_object_id == object_id
        and state.connections[c.connection_id].status == "connected"
    ]
    assert len(found) == 1, found
    return found[0]


@dataclass(frozen=True)
class Snapshot:
    """Everything a handler could change, deep-copied for before/after comparison."""

    parts: dict[str, Any]

    @classmethod
    def of(cls, state: SharingState) -> Snapshot:
        return cls(
            copy.deepcopy(
                {
                    "entities": state.entities,
                    "connections": state.connections,
                    "acceptance": state.acceptance,
                    "levels": state.levels,
                    "sources": state.sources,
                    "copies": state.copies,
                    "decisions": state.decisions,
                    "dirty": state.dirty,
                }
            )
        )


def date(value: str) -> dt.date:
    return dt.date.fromisoformat(value)


def store_source(state: SharingState, ev: ObjectShared) -> None:
    """Put a source object into the state without sharing it: a stored source whose copies
    the target does not have (as the database adapter would serve it)."""
    state.put_source(
        SourceObject(
            object_type=ev.object_type,
            object_id=ev.object_id,
            parent_id=ev.parent_id,
            version=ev.version,
            data=dict(ev.data or {}),
            event_id=str(ev.event_id),
        )
    )
