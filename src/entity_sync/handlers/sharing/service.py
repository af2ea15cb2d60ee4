"""Applies the pure rules to the sharing state, one event at a time.

Every check that can reject an event runs before the first write, so a rejected event leaves
the state untouched. Callers run these functions inside one database transaction per batch.
"""

from __future__ import annotations

from dataclasses import dataclass

from entity_sync.handlers.errors import Rejected, RetryLater
from entity_sync.handlers.sharing import control, ids, outputs, rules
from entity_sync.handlers.sharing.model import (
    PRODUCT_TYPES,
    TYPE_ORDER,
    BulkJob,
    Copy,
    Decision,
    DecisionKind,
    Entity,
    Link,
    Outcome,
    SourceKey,
    SourceObject,
)
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


def target_view(state: SharingState, target_entity: str) -> rules.TargetView | None:
    entity = state.entities.get(target_entity)
    if entity is None:
        return None
    return rules.TargetView(
        entity_id=entity.entity_id,
        active_currencies=entity.active_currencies,
        acceptance=state.acceptance.get(target_entity, "dont_accept"),
        has_own_accounting_periods=entity.has_own_accounting_periods,
        earliest_activity_date=entity.earliest_activity_date,
    )


_DECISION_OF: dict[rules.TargetDecisionKind, DecisionKind] = {
    "create": "sent",
    "update": "sent",
    "unchanged": "unchanged",
    "stale": "stale",
    "not_accepted": "not_accepted",
    "blocked": "blocked",
}


class _Run:
    """Collects decisions and outputs of one event and writes copies as it goes."""

    def __init__(self, state: SharingState, cause: str) -> None:
        self.state = state
        self.cause = cause
        self.outcome = Outcome()

    def decide(self, decision: Decision) -> None:
        self.state.record(decision)
        self.outcome.decisions.append(decision)

    def send_to(self, link: Link, source: SourceObject, reason: str | None = None) -> None:
        """Offer one source object at its current version to one connected target."""
        target = target_view(self.state, link.target_entity)
        if target is None:  # a connection is only made to a known entity
            raise RetryLater(f"entity {link.target_entity!r} is not known", reason="unknown_entity")
        held = self.state.copy(link.connection_id, source.object_type, source.object_id)
        first = (
            self.state.first_period_start() if source.object_type == "accounting_period" else None
        )
        verdict = rules.decide_target(
            object_type=source.object_type,
            version=source.version,
            source_data=source.data,
            held=held,
            target=target,
            levels=self.state.levels,
            first_period_start=first,
        )
        base = Decision(
            cause_event_id=self.cause,
            decision="sent",
            reason=reason or verdict.reason,
            message=verdict.message,
            target_entity=link.target_entity,
            object_type=source.object_type,
            object_id=source.object_id,
            version=source.version,
        )
        if verdict.kind in ("create", "update"):
            parent_copy_id = self._ensure_parent(link, source)
            copy = Copy(
                connection_id=link.connection_id,
                target_entity=link.target_entity,
                object_type=source.object_type,
                source_object_id=source.object_id,
                target_object_id=held.target_object_id
                if held
                else ids.target_object_id(link.connection_id, source.object_type, source.object_id),
                target_parent_id=parent_copy_id,
                version=source.version,
                data=verdict.data,
            )
            self.state.put_copy(copy)
            # The update's cause is the event that made this version, whether it is sent for
            # that event, cascaded before a child or offered by a backfill: when two workers
            # send one version to one connection at once, consumers see one id twice.
            self.outcome.outputs.append(
                outputs.target_update(
                    source.event_id or self.cause, copy, verdict.kind, list(verdict.changed)
                )
            )
            self.decide(base)
            return
        if verdict.kind == "unchanged" and held is not None:
            held.version = source.version
            self.state.put_copy(held)
        if verdict.kind == "blocked":
            self.outcome.outputs.append(
                outputs.share_exception(
                    self.cause,
                    link.target_entity,
                    source.object_type,
                    source.object_id,
                    source.version,
                    verdict.reason,
                    verdict.message,
                )
            )
        base.decision = _DECISION_OF[verdict.kind]
        base.reason = verdict.reason
        self.decide(base)

    def _ensure_parent(self, link: Link, source: SourceObject) -> str | None:
        """Rule 4: a child goes after its parent; send the stored parent first if missing."""
        parent_type = PARENT_TYPE[source.object_type]
        if parent_type is None or source.parent_id is None:
            return None
        held = self.state.copy(link.connection_id, parent_type, source.parent_id)
        if held is None:
            parent = self.state.source(parent_type, source.parent_id)
            if parent is None:
                raise RetryLater(
                    f"parent {source.parent_id!r} of {source.object_type} is not known yet",
                    reason="parent_unknown",
                )
            self.send_to(link, parent, reason="cascade")
            held = self.state.copy(link.connection_id, parent_type, source.parent_id)
        return held.target_object_id if held else None

    def backfill(self, link: Link, object_types: tuple[str, ...] = ()) -> None:
        """Rule 3: offer every source object to a new target, as a bulk job (run_bulk_chunk)."""
        self.outcome.jobs.append(
            BulkJob("backfill", link.connection_id, link.target_entity, self.cause, object_types)
        )


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
    run = _Run(state, cause)
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
    if ev.is_global != (ev.entity_id == ctx.global_entity):
        raise Rejected(
            f"entity {ev.entity_id!r} says is_global={ev.is_global}, but the configured global "
            f"entity is {ctx.global_entity!r}",
            reason="global_mismatch",
        )
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
    run = _Run(state, str(ev.event_id))
    link = state.active_connection(ev.entity_id)
    if before is None or link is None or link.status != "connected":
        return run.outcome
    newly_active = set(entity.active_currencies) - set(before.active_currencies)
    if newly_active:
        _release_prices(run, link, newly_active)
    view_after = target_view(state, ev.entity_id)
    if view_before is not None and view_after is not None:
        first = state.first_period_start()
        was_blocked = rules.period_block(view_before, first) is not None
        if was_blocked and rules.period_block(view_after, first) is None:
            # The target may receive shared periods now (its own periods dropped, or its
            # earliest activity moved): offer the ones it was refused.
            run.backfill(link, ("accounting_period",))
    return run.outcome


def _release_prices(run: _Run, link: Link, newly_active: set[str]) -> None:
    """Rule 8: prices withheld for inactive currencies are sent once the target activates them,
    as a bulk job over the target's charge copies (run_bulk_chunk)."""
    run.outcome.jobs.append(
        BulkJob(
            "release",
            link.connection_id,
            link.target_entity,
            run.cause,
            ("product_rate_plan_charge",),
            tuple(sorted(newly_active)),
        )
    )


def _release_one(run: _Run, link: Link, held: Copy, currencies: set[str]) -> None:
    source = run.state.source(held.object_type, held.source_object_id)
    if source is None:
        return
    data = control.release_data(held.data, source.data, currencies)
    changed = control.changed_attributes(held.data, data)
    if not changed:
        return
    held.data = data
    run.state.put_copy(held)
    run.outcome.outputs.append(outputs.target_update(run.cause, held, "update", changed))
    run.decide(
        Decision(
            cause_event_id=run.cause,
            decision="sent",
            reason="currency_release",
            message=f"released prices for {', '.join(sorted(currencies))}",
            target_entity=link.target_entity,
            object_type=held.object_type,
            object_id=held.source_object_id,
            version=held.version,
        )
    )


@dataclass(slots=True)
class Chunk:
    """One chunk of a bulk job: what it produced and where the next one starts."""

    outcome: Outcome
    cursor: SourceKey | None  # the last object handled (the next chunk starts after it)
    handled: int
    finished: bool
    cancelled: bool = False


def run_bulk_chunk(state: SharingState, job: BulkJob, after: SourceKey | None, limit: int) -> Chunk:
    """Up to `limit` objects of `job` after `after`, in backfill order (parents first).

    A job whose connection is no longer connected (disconnected meanwhile) is cancelled: rule 2
    sends nothing more to it.
    """
    run = _Run(state, job.cause_event_id)
    link = state.connections.get(job.connection_id)
    if link is None or link.status != "connected":
        return Chunk(run.outcome, after, 0, finished=True, cancelled=True)
    keys: list[SourceKey] = []
    if job.kind == "backfill":
        types = job.object_types or tuple(TYPE_ORDER)
        for source in state.sources_page(types, after, limit):
            run.send_to(link, source, reason="backfill")
            keys.append(source.key)
    else:
        entity = state.entities.get(link.target_entity)
        active = set(entity.active_currencies if entity else ()) & set(job.currencies)
        for held in state.copies_page(link.connection_id, job.object_types[0], after, limit):
            if active:
                _release_one(run, link, held, active)
            keys.append((held.object_type, held.source_object_id))
    return Chunk(run.outcome, keys[-1] if keys else after, len(keys), len(keys) < limit)


def handle_connection(state: SharingState, ev: EntityConnection, ctx: SharingContext) -> Outcome:
    rules.check_source(ev.source_entity, ctx.global_entity)
    if ev.target_entity == ctx.global_entity:
        raise Rejected("the global entity is never a target", reason="global_not_target")
    current = state.connections.get(ev.connection_id)
    status = rules.next_connection_status(current.status if current else None, ev.action)
    if current is not None and (
        current.source_entity != ev.source_entity or current.target_entity != ev.target_entity
    ):
        raise Rejected(
            f"connection {ev.connection_id!r} joins {current.source_entity!r} to "
            f"{current.target_entity!r}, not {ev.source_entity!r} to {ev.target_entity!r}",
            reason="connection_mismatch",
        )
    if current is None:
        if ev.target_entity not in state.entities:
            raise RetryLater(f"entity {ev.target_entity!r} is not known", reason="unknown_entity")
        other = state.active_connection(ev.target_entity)
        if other is not None:
            raise Rejected(
                f"{ev.target_entity!r} already has connection {other.connection_id!r} "
                f"({other.status})",
                reason="connection_exists",
            )
    link = Link(ev.connection_id, ev.source_entity, ev.target_entity, status)
    state.put_connection(link)
    run = _Run(state, str(ev.event_id))
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
    if ev.target_entity == ctx.global_entity:
        raise Rejected("the global entity is never a target", reason="global_not_target")
    if ev.target_entity not in state.entities:
        raise RetryLater(f"entity {ev.target_entity!r} is not known", reason="unknown_entity")
    current = state.acceptance.get(ev.target_entity, "dont_accept")
    new, backfill = rules.next_acceptance(current, ev.acceptance, ev.force)
    run = _Run(state, str(ev.event_id))
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
    run = _Run(state, str(ev.event_id))
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
    "SharingContext",
    "handle_connection",
    "handle_control",
    "handle_entity_upserted",
    "handle_object_shared",
    "handle_settings",
    "run_bulk_chunk",
]
