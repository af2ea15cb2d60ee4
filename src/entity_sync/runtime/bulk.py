"""Bulk fan-outs (backfill on accept or auto_accept, currency release) run in chunks.

An admin event records a job (store `bulk_jobs`) in its own transaction; workers then run
it a chunk at a time between batches: each chunk reads the next objects after the job's cursor
(keyset pages in backfill order, parents first), applies the rules, and commits the copies, the
outputs (outbox) and the new cursor together, then publishes the outputs with confirms. Memory
holds one chunk, whatever the catalog's size; a crash resumes at the cursor, and a chunk that
runs twice gives the same output ids (their cause is the job's event). One worker runs a job at
a time (the job row is locked, others skip it); object batches keep running beside it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import structlog
from sqlalchemy.engine import Engine

from entity_sync.handlers.sharing.service import SharingContext, run_bulk_chunk
from entity_sync.runtime import outbox
from entity_sync.runtime.batch import BatchResult
from entity_sync.runtime.broker import OutMessage
from entity_sync.runtime.observe import NullObserver, Observer
from entity_sync.store.engine import StateLock, lock_periods, lock_state
from entity_sync.store.jobs import claim_job, save_job
from entity_sync.store.sharing import flush_state, load_state

log = structlog.get_logger("entity_sync.bulk")
RECHECK_SECONDS = 2.0
PAUSE_SECONDS = 10.0


class Publishes(Protocol):
    def publish_many(self, messages: list[OutMessage], *, wait: bool = True) -> None: ...


@dataclass(slots=True)
class ChunkDone:
    kind: str
    objects: int
    messages: list[OutMessage]
    outbox_ids: list[int]  # outbox_batches rows to delete once the messages are confirmed
    status: str
    counts: BatchResult  # target updates and share exceptions, for the metrics


class BulkRunner:
    def __init__(
        self,
        engine: Engine,
        context: SharingContext,
        out_exchange: str,
        *,
        chunk_size: int,
        observer: Observer | None = None,
    ) -> None:
        self.engine = engine
        self.context = context
        self.out_exchange = out_exchange
        self.chunk_size = chunk_size
        self.observer: Observer = observer or NullObserver()
        self._quiet_until = 0.0  # found no job: look again after this (time.monotonic())

    def wake(self) -> None:
        """A job was just recorded: look for it at the next step."""
        self._quiet_until = 0.0

    def pause(self, seconds: float = PAUSE_SECONDS) -> None:
        """A chunk failed (the database, a bug): the loop goes on, the job waits a while."""
        self._quiet_until = time.monotonic() + seconds

    def due(self) -> bool:
        """Whether `step` would look for a job now (no query: see `step`)."""
        return time.monotonic() >= self._quiet_until

    def step(self, publisher: Publishes) -> bool:
        """Run one chunk of the oldest job no other worker is running; False if none.

        After finding none it looks again only every `RECHECK_SECONDS` (jobs recorded by
        another worker wait that long at most), so the hot path pays no query per batch.
        """
        if time.monotonic() < self._quiet_until:
            return False
        started = time.perf_counter()
        done = self.commit_chunk()
        if done is None:
            self._quiet_until = time.monotonic() + RECHECK_SECONDS
            return False
        publisher.publish_many(done.messages)
        outbox.delete(self.engine, done.outbox_ids)
        self.observer.bulk_chunk(
            done.kind, done.objects, done.counts, time.perf_counter() - started
        )
        return True

    def commit_chunk(self) -> ChunkDone | None:
        """Commit the next chunk of a job (copies, outbox, cursor); its outputs still to publish."""
        with self.engine.begin() as conn:
            lock_state(conn, StateLock.OBJECTS)  # admin events wait for the chunk, and it for them
            claimed = claim_job(conn)
            if claimed is None:
                return None
            job = claimed.job
            if not job.object_types or "accounting_period" in job.object_types:
                lock_periods(conn)  # periods are judged against each other (rule 5)
            state = load_state(conn, copies_of=job.connection_id)
            chunk = run_bulk_chunk(state, job, claimed.cursor, self.chunk_size)
            flush_state(conn, state)
            stored = outbox.store(conn, chunk.outcome.outputs, self.out_exchange)
            messages = stored.messages
            status = "cancelled" if chunk.cancelled else "finished" if chunk.finished else "running"
            done = claimed.done + chunk.handled
            save_job(conn, job.job_id, chunk.cursor, done, status)
        log.info(
            "bulk fan-out",
            kind=job.kind,
            target=job.target_entity,
            cause_event_id=job.cause_event_id,
            done=done,
            total=claimed.total,
            outputs=len(messages),
            status=status,
        )
        counts = BatchResult()
        counts.count_outputs(chunk.outcome.outputs)
        return ChunkDone(
            kind=job.kind,
            objects=chunk.handled,
            messages=messages,
            outbox_ids=stored.batch_ids,
            status=status,
            counts=counts,
        )
