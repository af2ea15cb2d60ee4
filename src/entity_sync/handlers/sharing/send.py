"""Offering source objects to connected targets: the verdict of the rules, the copy written,
the parent sent first (rule 4), and the decision and output of each offer.

`Run` collects the decisions and outputs of one event (or one bulk chunk) and writes copies as
it goes. Its two `RetryLater`s guard invariants the other rules keep (a connected target is a
known entity; a stored source's parent is stored): should one fail after a write, the batch sets
the event aside and runs again without it (runtime/batch.py).
"""

from __future__ import annotations

from entity_sync.handlers.errors import RetryLater
from entity_sync.handlers.sharing import ids, outputs, rules
from entity_sync.handlers.sharing.model import (
    BulkJob,
    Copy,
    Decision,
    DecisionKind,
    Link,
    Outcome,
    SourceObject,
)
from entity_sync.handlers.sharing.state import SharingState
from entity_sync.schemas.inputs import PARENT_TYPE


def target_view(state: SharingState, target_entity: str) -> rules.TargetView | None:
    """The target as the rules see it; built once per batch (state.target_views), as every
    event offers its object to every connected target."""
    view = state.target_views.get(target_entity)
    if view is not None:
        return view
    entity = state.entities.get(target_entity)
    if entity is None:
        return None
    view = rules.TargetView(
        entity_id=entity.entity_id,
        active_currencies=entity.active_currencies,
        acceptance=state.acceptance.get(target_entity, "dont_accept"),
        has_own_accounting_periods=entity.has_own_accounting_periods,
        earliest_activity_date=entity.earliest_activity_date,
    )
    state.target_views[target_entity] = view
    return view


_DECISION_OF: dict[rules.TargetDecisionKind, DecisionKind] = {
    "create": "sent",
    "update": "sent",
    "unchanged": "unchanged",
    "stale": "stale",
    "not_accepted": "not_accepted",
    "blocked": "blocked",
}


class Run:
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
            raise rules.unknown_entity(link.target_entity)
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
        sending = verdict.kind in ("create", "update")
        if sending:
            self._write(link, source, held, verdict)
        else:
            self._keep(link, source, held, verdict)
        self.decide(
            Decision(
                cause_event_id=self.cause,
                decision=_DECISION_OF[verdict.kind],
                # A send says why it was sent (cascade, backfill); the rest say why not.
                reason=(reason or verdict.reason) if sending else verdict.reason,
                message=verdict.message,
                target_entity=link.target_entity,
                object_type=source.object_type,
                object_id=source.object_id,
                version=source.version,
            )
        )

    def _write(
        self, link: Link, source: SourceObject, held: Copy | None, verdict: rules.TargetDecision
    ) -> None:
        """A create or update: the copy (its parent first) and the target update."""
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

    def _keep(
        self, link: Link, source: SourceObject, held: Copy | None, verdict: rules.TargetDecision
    ) -> None:
        """Nothing sent: an unchanged copy moves to the new version; a block is reported."""
        if verdict.kind == "unchanged" and held is not None:
            held.version = source.version
            self.state.put_copy(held)
        if verdict.kind == "blocked":
            self.outcome.outputs.append(
                outputs.share_exception(
                    self.cause,
                    link.target_entity,
                    source,
                    verdict.reason,
                    verdict.message,
                )
            )

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
