"""Bulk fan-outs (rules 3, 5 and 8), one chunk at a time: a backfill offers every source object
to a newly connected target, parents first; a release sends the prices withheld for currencies a
target has just activated. The runtime runs the chunks after the event commits
(runtime/bulk.py); outputs carry the job's cause, so a chunk run twice gives the same ids.
"""

from __future__ import annotations

from dataclasses import dataclass

from entity_sync.handlers.sharing import control, outputs
from entity_sync.handlers.sharing.model import (
    TYPE_ORDER,
    BulkJob,
    Copy,
    Decision,
    Link,
    Outcome,
    SourceKey,
)
from entity_sync.handlers.sharing.send import Run
from entity_sync.handlers.sharing.state import SharingState


def release_prices(run: Run, link: Link, newly_active: set[str]) -> None:
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


def _release_one(run: Run, link: Link, held: Copy, currencies: set[str]) -> None:
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
    run = Run(state, job.cause_event_id)
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
