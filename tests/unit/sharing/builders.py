"""Builders for sharing-rule tests: a fake in-memory state, driving the service, small readers.

The input events are built in event_builders.py. `SharingState()` with no loader is the
in-memory fake: what is in memory is all there is.
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass
from typing import Any

from event_builders import GLOBAL, charge, connection, entity, product, rate_plan

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

CTX = SharingContext(global_entity=GLOBAL)

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
