"""One batch of deliveries: decode, one state transaction, and what to publish and ack.

Each delivery's fate is decided by the acknowledgement policy (runtime/ack_policy.py); this
module runs the handlers and collects the fates. A database failure raises out of `process`:
the caller keeps the batch unacked and retries (runtime/attempts.py).

Setting an event aside. The handlers of one batch share one in-memory state and one transaction.
Rule checks run before an event's first write where they can (handlers/sharing/service.py), but
an event may still fail after writing: a `RetryLater` for a target or parent found missing while
sending (an invariant the other rules keep), or a bug. Its writes cannot be taken back one by
one, so the batch is rolled back and run again with that event set aside, its failure kept:
`SetAside` below, raised when the state's write count moved (`SharingState.writes`). Every
other event of the batch then gets the outcome it would have had if the failing event had been
refused before writing. This is the only place that relies on the write count.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import sqlalchemy as sa
import structlog
from pydantic import BaseModel
from sqlalchemy.engine import Engine

from entity_sync import logs
from entity_sync.handlers.errors import EntitySyncError
from entity_sync.handlers.sharing import service
from entity_sync.handlers.sharing.model import BulkJob, Decision, Outcome, Output
from entity_sync.handlers.sharing.service import SharingContext
from entity_sync.handlers.sharing.state import SharingState
from entity_sync.runtime import ack_policy, allowlist, outbox
from entity_sync.runtime.ack_policy import Fate
from entity_sync.runtime.delivery import Delivery
from entity_sync.runtime.envelope import Envelope, Poison, decode
from entity_sync.runtime.failure import Failure
from entity_sync.runtime.result import BatchResult
from entity_sync.schemas.inputs import (
    EntityConnection,
    EntityControl,
    EntitySettings,
    EntityUpserted,
    ObjectShared,
)
from entity_sync.store import jobs as job_store
from entity_sync.store import processed, sharing
from entity_sync.store.engine import StateLock, lock_state

# BatchResult is re-exported: processors outside this module build theirs from here.
__all__ = ["BatchProcessor", "BatchResult", "Processor", "admit", "lock_mode"]

log = structlog.get_logger("entity_sync.batch")

Handler = Callable[[SharingState, Any, SharingContext], Outcome]
HANDLERS: dict[type[BaseModel], Handler] = {
    ObjectShared: service.handle_object_shared,
    EntityUpserted: service.handle_entity_upserted,
    EntityConnection: service.handle_connection,
    EntitySettings: service.handle_settings,
    EntityControl: service.handle_control,
}


class SetAside(Exception):
    """An event failed after writing to the batch's state: run the batch again without it."""

    def __init__(self, index: int, failure: Failure) -> None:
        self.index = index
        self.failure = failure


def lock_mode(envelopes: list[Envelope]) -> StateLock:
    """Admin events run alone; periods one batch at a time; other object events in parallel."""
    if any(not isinstance(e.model, ObjectShared) for e in envelopes):
        return StateLock.ADMIN
    if any(
        isinstance(e.model, ObjectShared) and e.model.object_type == "accounting_period"
        for e in envelopes
    ):
        return StateLock.PERIODS
    return StateLock.OBJECTS


def _rejected_decision(model: BaseModel, failure: Failure) -> Decision:
    target = getattr(model, "target_entity", None) or getattr(model, "entity_id", None)
    return Decision(
        cause_event_id=str(getattr(model, "event_id", "")),
        decision="rejected",
        reason=failure.reason,
        message=failure.message,
        target_entity=target,
        object_type=getattr(model, "object_type", None),
        object_id=getattr(model, "object_id", None),
        version=getattr(model, "version", None),
    )


class Processor(Protocol):
    """Turns a batch of deliveries into what to publish and ack; raises on a database outage."""

    def process(self, deliveries: list[Delivery]) -> BatchResult: ...


class BatchProcessor:
    """The sharing processor: object-shared and entity-admin events."""

    def __init__(
        self,
        engine: Engine,
        context: SharingContext,
        out_exchange: str,
        *,
        max_body_bytes: int,
        max_attempts: int,
    ) -> None:
        self.engine = engine
        self.context = context
        self.out_exchange = out_exchange
        self.max_body_bytes = max_body_bytes
        self.max_attempts = max_attempts

    def process(self, deliveries: list[Delivery]) -> BatchResult:
        result = BatchResult()
        envelopes = [
            env for d in deliveries if (env := admit(d, self.max_body_bytes, result)) is not None
        ]
        if envelopes:
            failed: dict[int, Failure] = {}
            while True:
                attempt = BatchResult()
                try:
                    self._transaction(envelopes, failed, attempt)
                except SetAside as aside:  # see the module docstring
                    result.lock_wait_seconds += attempt.lock_wait_seconds
                    failed[aside.index] = aside.failure
                    continue
                break
            result.merge(attempt)
        return result

    def _transaction(
        self, envelopes: list[Envelope], failed: dict[int, Failure], result: BatchResult
    ) -> None:
        with self.engine.begin() as conn:
            result.lock_wait_seconds += lock_state(conn, lock_mode(envelopes))
            # Claimed before applying (store/processed.py claim); duplicates are the rest.
            claimed = processed.claim(conn, [(e.event_id, e.delivery.queue) for e in envelopes])
            state = sharing.load_state(conn)
            state.prefetch(
                [
                    (m.object_type, m.object_id)
                    for e in envelopes
                    if isinstance(m := e.model, ObjectShared)
                ]
            )
            unapplied: list[str] = []
            outputs: list[Output] = []
            jobs: list[BulkJob] = []
            elog = log.bind()  # once per batch: the lazy proxy builds a logger on every call
            for index, env in enumerate(envelopes):
                if env.event_id not in claimed:  # recorded before, or earlier in this batch
                    result.fates[Fate.DUPLICATE] += 1
                    continue
                claimed.discard(env.event_id)
                # Every log line about this message carries its event_id, object and target.
                with logs.MessageContext(env.model):
                    failure = failed.get(index) or self._apply(
                        index, env, state, outputs, jobs, elog
                    )
                    if failure is None:
                        result.fates[Fate.APPLIED] += 1
                        continue
                    unapplied.append(env.event_id)
                    if failure.permanent:
                        state.record(_rejected_decision(env.model, failure))
                    ack_policy.fail(result, env.delivery, failure, self.max_attempts)
            sharing.flush_state(conn, state)
            processed.release(conn, unapplied)
            # Run in chunks after the commit (runtime/bulk.py).
            job_store.insert_jobs(conn, jobs)
            result.jobs_created += len(jobs)
            stored = outbox.store(conn, outputs, self.out_exchange)
            self.written(envelopes)
        result.count_outputs(outputs)
        result.publish[:0] = stored.messages
        result.outbox_ids.extend(stored.batch_ids)

    def written(self, envelopes: list[Envelope]) -> None:
        """Called with the batch's rows written and locked, just before the commit.

        A fault-injection point: tests hold a transaction open here to prove what runs in
        parallel with it and what waits.
        """

    def _apply(
        self,
        index: int,
        env: Envelope,
        state: SharingState,
        outputs: list[Output],
        jobs: list[BulkJob],
        elog: Any,
    ) -> Failure | None:
        writes_before = state.writes
        try:
            outcome = HANDLERS[type(env.model)](state, env.model, self.context)
        except sa.exc.SQLAlchemyError:
            raise  # the database, not this event: the whole batch waits
        except Exception as exc:  # the error tree decides; nothing ends the worker
            if not isinstance(exc, EntitySyncError):
                log.exception("handler failed")
            failure = Failure.of(exc)
        else:
            outputs.extend(outcome.outputs)
            jobs.extend(outcome.jobs)
            elog.debug("event applied", outputs=len(outcome.outputs))
            return None
        if state.writes != writes_before:
            raise SetAside(index, failure)
        return failure


def admit(delivery: Delivery, max_body_bytes: int, result: BatchResult) -> Envelope | None:
    """The delivery as a contract model, or None after dead-lettering it into `result`."""
    refused = allowlist.check(delivery)
    if refused is not None:
        ack_policy.dead_letter(result, delivery, Failure.of(refused))
        return None
    decoded = decode(delivery, max_body_bytes)
    if isinstance(decoded, Poison):
        ack_policy.dead_letter(result, delivery, Failure.of(decoded.error()))
        return None
    return decoded
