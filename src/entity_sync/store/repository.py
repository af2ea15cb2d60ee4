"""The old single store module, kept as re-exports while its callers move to the aggregate
modules (runtime/batch.py, runtime/consumer.py and operations/cli/status.py, changed in
parallel by their owners). No SQL here: remove once nothing imports it."""

from entity_sync.store.decisions import decision_rows
from entity_sync.store.jobs import JobRow, claim_job, insert_jobs, running_jobs, save_job
from entity_sync.store.processed import mark_processed, prune_processed, seen_event_ids
from entity_sync.store.sharing import DbLoader, flush_state, load_state
from entity_sync.store.sql import bulk_insert, member_of, upsert

__all__ = [
    "DbLoader",
    "JobRow",
    "bulk_insert",
    "claim_job",
    "decision_rows",
    "flush_state",
    "insert_jobs",
    "load_state",
    "mark_processed",
    "member_of",
    "prune_processed",
    "running_jobs",
    "save_job",
    "seen_event_ids",
    "upsert",
]
