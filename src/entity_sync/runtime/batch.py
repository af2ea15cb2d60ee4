"""One batch of deliveries: decode, one state transaction, and what to publish and ack.

This is the acknowledgement policy in one place. Every delivery of a batch ends in exactly one
fate: applied (state committed, outputs in the outbox), duplicate, dead-lettered (poison or
rejected by a rule) or retried (transient, counted on the message). Handlers only raise.
A database failure raises out of `process`: the caller keeps the batch unacked and retries.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa
import structlog
from pydantic import BaseModel
from sqlalchemy.engine import Engine

from entity_sync.handlers.errors import EntitySyncError, PermanentError
from entity_sync.handlers.sharing import service
from entity_sync.handlers.sharing.model import BulkJob, Decision, Outcome, Output
from entity_sync.handlers.sharing.service import SharingContext
from entity_sync.handlers.sharing.state import SharingState
from entity_sync.runtime import allowlist, deadletter, outbox, retry
from entity_sync.runtime.broker import OutMessage
from entity_sync.runtime.delivery import Delivery
from entity_sync.runtime.envelope import Envelope, Poison, decode
from entity_sync.schemas.inputs import (
    EntityConnection,
    EntityControl,
    EntitySettings,
    EntityUpserted,
    ObjectShared,
)
from entity_sync.store import repository as repo
from entity_sync.store.engine import StateLock, lock_state

log = structlog.get_logger("entity_sync.batch")

Handler = Callable[[SharingState, Any, SharingContext], Outcome]
HANDLERS: dict[type[BaseModel], Handler] = {
    ObjectShared: service.handle_object_shared,
    EntityUpserted: service.handle_entity_upserted,
    EntityConnection: service.handle_connection,
    EntitySettings: service.handle_settings,
    EntityControl: service.handle_control,
}


@dataclass
class BatchResult:
    publish: list[OutMessage] = field(default_factory=list)  # outputs, dead letters, retries
    outbox_ids: list[int] = field(default_factory=list)  # batch rows: delete once confirmed
    fates: Counter[str] = field(default_factory=Counter)
    dead_letters: Counter[tuple[str, str]] = field(default_factory=Counter)  # (queue, reason)
    retries: Counter[tuple[str, str]] = field(default_factory=Counter)  # (queue, reason)
    outputs: Counter[tuple[str, str]] = field(default_factory=Counter)  # (target, object_type)
    exceptions: Counter[str] = field(default_factory=Counter)  # share.exception reason
    lock_wait_seconds: float = 0.0  # waited for the state locks (src/entity_sync/store/engine.py)
    jobs_created: int = 0  # bulk fan-outs recorded by this batch (src/entity_sync/runtime/bulk.py)

    def count_outputs(self, outputs: list[Output]) -> None:
        """Count target updates by (target, type) and share exceptions by reason."""
        for out in outputs:
            if "reason" in out.body:
                self.exceptions[str(out.body["reason"])] += 1
            else:
                self.outputs[(str(out.body["target_entity"]), str(out.body["object_type"]))] += 1

    def merge(self, other: BatchResult) -> None:
        self.publish.extend(other.publish)
        self.outbox_ids.extend(other.outbox_ids)
        self.fates.update(other.fates)
        self.dead_letters.update(other.dead_letters)
        self.retries.update(other.retries)
        self.outputs.update(other.outputs)
        self.exceptions.update(other.exceptions)
        self.lock_wait_seconds += other.lock_wait_seconds
        self.jobs_created += other.jobs_created


@dataclass(frozen=True, slots=True)
class Failure:
    """Why one delivery failed, with the exception type kept (no parsing it back from text)."""

    reason: str
    message: str
    permanent: bool
    exception_type: str

    @classmethod
    def of(cls, exc: BaseException) -> Failure:
        """By the error tree: permanent errors and refused rows dead-letter now, the rest retry."""
        kind = type(exc).__name__
        if isinstance(exc, PermanentError):
            return cls(exc.reason, exc.message, True, kind)
        if isinstance(exc, EntitySyncError):
            return cls(exc.reason, exc.message, False, kind)
        text = str(exc).splitlines()[0][:500] if str(exc) else kind
        if isinstance(exc, sa.exc.DBAPIError):  # the database refuses this row: it never will
            return cls("storage_rejected", text, True, kind)
        return cls("unexpected_error", f"{kind}: {text}", False, kind)


class _Rerun(Exception):
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


_CONTEXT_FIELDS = ("event_id", "object_type", "object_id", "target_entity", "entity_id")


@functools.cache
def _context_fields(kind: type[BaseModel]) -> tuple[str, ...]:
    # Only the fields the kind has: pydantic answers a missing attribute with an exception.
    return tuple(name for name in _CONTEXT_FIELDS if name in kind.model_fields)


def _context_of(model: BaseModel) -> dict[str, Any]:
    ctx: dict[str, Any] = {}
    for name in _context_fields(type(model)):
        value = getattr(model, name)
        if value is not None:
            ctx[name] = str(value)
    return ctx


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


class _LogContext:
    """Binds a message's log context and restores the previous one after, like structlog's
    `bound_contextvars` but through the tokens (it reads the whole context twice per use)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values
        self.tokens: Any = None

    def __enter__(self) -> None:
        self.tokens = structlog.contextvars.bind_contextvars(**self.values)

    def __exit__(self, *_: object) -> None:
        structlog.contextvars.reset_contextvars(**self.tokens)


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
                except _Rerun as rerun:
                    result.lock_wait_seconds += attempt.lock_wait_seconds
                    # A failing event had already written to the in-memory state: roll the whole
                    # transaction back and run the batch again with that event set aside.
                    failed[rerun.index] = rerun.failure
                    continue
                break
            result.merge(attempt)
        return result

    def _transaction(
        self, envelopes: list[Envelope], failed: dict[int, Failure], result: BatchResult
    ) -> None:
        with self.engine.begin() as conn:
            result.lock_wait_seconds += lock_state(conn, lock_mode(envelopes))
            seen = repo.seen_event_ids(conn, {e.event_id for e in envelopes})
            state = repo.load_state(conn)
            state.prefetch(
                [
                    (m.object_type, m.object_id)
                    for e in envelopes
                    if isinstance(m := e.model, ObjectShared)
                ]
            )
            applied: list[tuple[str, str]] = []
            outputs: list[Output] = []
            jobs: list[BulkJob] = []
            elog = log.bind()  # once per batch: the lazy proxy builds a logger on every call
            for index, env in enumerate(envelopes):
                if env.event_id in seen:
                    result.fates["duplicate"] += 1
                    continue
                # Every log line about this message carries its event_id, object and target.
                with _LogContext(_context_of(env.model)):
                    failure = failed.get(index) or self._apply(
                        index, env, state, outputs, jobs, elog
                    )
                    if failure is None:
                        seen.add(env.event_id)
                        applied.append((env.event_id, env.delivery.queue))
                        result.fates["applied"] += 1
                        continue
                    if failure.permanent:
                        state.record(_rejected_decision(env.model, failure))
                    fail_into(result, env.delivery, failure, self.max_attempts)
            repo.flush_state(conn, state)
            repo.mark_processed(conn, applied)
            repo.insert_jobs(
                conn, jobs
            )  # run in chunks after the commit (src/entity_sync/runtime/bulk.py)
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
            raise _Rerun(index, failure)
        return failure


def fail_into(result: BatchResult, delivery: Delivery, failure: Failure, max_attempts: int) -> None:
    """Retry `delivery` after its queue's delay, or dead-letter it (permanent or exhausted)."""
    policy = delivery.policy or retry.QueuePolicy(
        max_attempts=max_attempts, delays=retry.QueuePolicy().delays
    )
    delay = policy.decide(delivery.attempts, permanent=failure.permanent)
    if delay is None:
        dead_letter_into(result, delivery, failure.reason, failure.message, failure.exception_type)
        return
    log.info("retrying", reason=failure.reason, attempts=delivery.attempts + 1, delay=delay)
    result.publish.append(
        deadletter.retry(delivery, failure.reason, failure.message, delay, failure.exception_type)
    )
    result.fates["retried"] += 1
    result.retries[(delivery.queue, failure.reason)] += 1


def dead_letter_into(
    result: BatchResult,
    delivery: Delivery,
    reason: str,
    msg: str,
    exception_type: str | None = None,
) -> None:
    """Record `delivery` as dead-lettered in `result`, with its dead letter to publish."""
    log.warning(
        "dead-lettered",
        queue=delivery.queue,
        reason=reason,
        error=msg[:300],
        message_id=delivery.properties.get("message_id"),
    )
    kind = exception_type or (
        "PublisherNotAllowed" if reason == allowlist.REASON else "InvalidMessage"
    )
    result.publish.append(deadletter.dead_letter(delivery, reason, msg, kind))
    result.fates["dead_lettered"] += 1
    result.dead_letters[(delivery.queue, reason)] += 1


def admit(delivery: Delivery, max_body_bytes: int, result: BatchResult) -> Envelope | None:
    """The delivery as a contract model, or None after dead-lettering it into `result`."""
    refused = allowlist.check(delivery)
    if refused is not None:
        dead_letter_into(result, delivery, refused.reason, refused.message)
        return None
    decoded = decode(delivery, max_body_bytes)
    if isinstance(decoded, Poison):
        dead_letter_into(result, delivery, decoded.reason, decoded.message)
        return None
    return decoded
