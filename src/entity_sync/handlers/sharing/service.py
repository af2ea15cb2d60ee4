"""Applies the pure rules (rules.py) to the sharing state, one event at a time.

Every check that can reject an event runs before the event's first write, so a rejected event
leaves the state untouched. Sending to targets (send.py) may still raise `RetryLater` after a
write, only if an invariant broke; the batch then sets the event aside (runtime/batch.py).
Callers run these functions inside one database transaction per batch.
"""

from __future__ import annotations

from dataclasses import dataclass

from entity_sync.handlers.sharing import rules
from entity_sync.handlers.sharing.fanout import Chunk, release_prices, run_bulk_chunk
from entity_sync.handlers.sharing.model import (
    PRODUCT_TYPES,
    Decision,
    Entity,
    Link,
    Outcome,
    SourceObject,
)
from entity_sync.handlers.sharing.send import Run, target_view
from entity_sync.handlers.sharing.state import SharingState
from entity_sync.schemas.inputs import (
    PARENT_TYPE,
    EntityConnection,
    EntityControl,
    EntitySettings,
    EntityUpserted,
    ObjectShared,
)


@dataclass(frozen=True, slots=True)
class SharingContext:
    global_entity: str


def handle_object_shared(state: SharingState, ev: ObjectShared, ctx: SharingContext) -> Outcome:
    rules.check_source(ev.source_entity, ctx.global_entity)
    cause = str(ev.event_id)
    held = state.source(ev.object_type, ev.object_id)
    parent_type = PARENT_TYPE[ev.object_type]
    parent_known = (
        parent_type is None
        or ev.parent_id is None
        or state.source(parent_type, ev.parent_id) is not None
    )
    verdict = rules.check_object_event(
        object_type=ev.object_type,
        action=ev.action,
        version=ev.version,
        data=ev.data,
        held=held,
        parent_id=ev.parent_id,
        parent_known=parent_known,
    )
    run = Run(state, cause)
    if verdict == "stale":
        assert held is not None
        for link in state.connected():
            run.decide(
                Decision(
                    cause_event_id=cause,
                    decision="stale",
                    reason="version_not_newer",
                    message=f"version {ev.version} is not newer than source version {held.version}",
                    target_entity=link.target_entity,
                    object_type=ev.object_type,
                    object_id=ev.object_id,
                    version=ev.version,
                )
            )
        return run.outcome
    source = SourceObject(
        object_type=ev.object_type,
        object_id=ev.object_id,
        parent_id=ev.parent_id,
        version=ev.version,
        data=dict(ev.data or {}),
        event_id=cause,
    )
    state.put_source(source)
    for link in state.connected():
        run.send_to(link, source)
    return run.outcome


def handle_entity_upserted(state: SharingState, ev: EntityUpserted, ctx: SharingContext) -> Outcome:
    rules.check_global_flag(ev.entity_id, ev.is_global, ctx.global_entity)
    before = state.entities.get(ev.entity_id)
    entity = Entity(
        entity_id=ev.entity_id,
        name=ev.name,
        display_name=ev.display_name,
        parent_id=ev.parent_id,
        is_global=ev.is_global,
        earliest_activity_date=ev.earliest_activity_date,
        has_own_accounting_periods=ev.has_own_accounting_periods,
        active_currencies=tuple(dict.fromkeys(ev.active_currencies)),
    )
    view_before = target_view(state, ev.entity_id)
    state.put_entity(entity)
    run = Run(state, str(ev.event_id))
    link = state.active_connection(ev.entity_id)
    if before is None or link is None or link.status != "connected":
        return run.outcome
    newly_active = set(entity.active_currencies) - set(before.active_currencies)
    if newly_active:
        release_prices(run, link, newly_active)
    view_after = target_view(state, ev.entity_id)
    if view_before is not None and view_after is not None:
        first = state.first_period_start()
        was_blocked = rules.period_block(view_before, first) is not None
        if was_blocked and rules.period_block(view_after, first) is None:
            # The target may receive shared periods now (its own periods dropped, or its
            # earliest activity moved): offer the ones it was refused.
            run.backfill(link, ("accounting_period",))
    return run.outcome


def handle_connection(state: SharingState, ev: EntityConnection, ctx: SharingContext) -> Outcome:
    rules.check_source(ev.source_entity, ctx.global_entity)
    rules.check_target(ev.target_entity, ctx.global_entity)
    current = state.connections.get(ev.connection_id)
    status = rules.next_connection_status(current.status if current else None, ev.action)
    link = Link(ev.connection_id, ev.source_entity, ev.target_entity, status)
    rules.check_connection(
        link,
        current,
        target_known=ev.target_entity in state.entities,
        other=state.active_connection(ev.target_entity) if current is None else None,
    )
    state.put_connection(link)
    run = Run(state, str(ev.event_id))
    run.decide(
        Decision(
            cause_event_id=run.cause,
            decision="connection",
            reason=status,
            message=f"connection {ev.connection_id} is {status}",
            target_entity=ev.target_entity,
        )
    )
    if status == "connected":
        run.backfill(link)
    return run.outcome


def handle_settings(state: SharingState, ev: EntitySettings, ctx: SharingContext) -> Outcome:
    rules.check_target(ev.target_entity, ctx.global_entity)
    if ev.target_entity not in state.entities:
        raise rules.unknown_entity(ev.target_entity)
    current = state.acceptance.get(ev.target_entity, "dont_accept")
    new, backfill = rules.next_acceptance(current, ev.acceptance, ev.force)
    run = Run(state, str(ev.event_id))
    if new != current:
        state.put_acceptance(ev.target_entity, new)
    run.decide(
        Decision(
            cause_event_id=run.cause,
            decision="setting",
            reason=new,
            message=f"accounting periods: {new}" + (" (forced)" if ev.force else ""),
            target_entity=ev.target_entity,
            object_type="accounting_period",
        )
    )
    link = state.active_connection(ev.target_entity)
    if backfill and link is not None and link.status == "connected":
        run.backfill(link, ("accounting_period",))
    return run.outcome


def handle_control(state: SharingState, ev: EntityControl, ctx: SharingContext) -> Outcome:
    merged = rules.merge_levels(state.levels, ev.levels)
    state.put_levels(merged)
    run = Run(state, str(ev.event_id))
    run.decide(
        Decision(
            cause_event_id=run.cause,
            decision="setting",
            reason="control_levels",
            message="control levels: "
            + ", ".join(f"{a}={lvl}" for a, lvl in sorted(ev.levels.items())),
        )
    )
    return run.outcome


__all__ = [
    "PRODUCT_TYPES",
    "Chunk",
    "SharingContext",
    "handle_connection",
    "handle_control",
    "handle_entity_upserted",
    "handle_object_shared",
    "handle_settings",
    "run_bulk_chunk",
]
