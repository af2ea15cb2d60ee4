"""The consumer loop: batches in, one transaction, confirmed publishes, then the acks.

Shaped like kombu's ConsumerMixin: reconnect with backoff, redeclare the topology on every new
connection, and never ack a delivery tag from an older connection (`Delivery.generation`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
import structlog
from amqp.exceptions import PreconditionFailed
from kombu.connection import Connection
from kombu.entity import Queue
from kombu.exceptions import OperationalError as KombuOperationalError
from kombu.messaging import Consumer
from sqlalchemy.engine import Engine

from entity_sync.config import Settings
from entity_sync.handlers.errors import ConfigurationError
from entity_sync.runtime import amqp_inbound, outbox, retry
from entity_sync.runtime.allowlist import allowed_for
from entity_sync.runtime.batch import BatchResult, Failure, Processor, fail_into
from entity_sync.runtime.broker import (
    ConfirmingPublisher,
    OutMessage,
    PublishFailed,
    connect,
    ensure_connected,
)
from entity_sync.runtime.bulk import BulkRunner
from entity_sync.runtime.delivery import Delivery
from entity_sync.runtime.envelope import kinds_by_queue
from entity_sync.runtime.observe import NullObserver, Observer
from entity_sync.runtime.topology import Names, declare, is_rabbitmq, retry_queues
from entity_sync.store.repository import prune_processed

log = structlog.get_logger("entity_sync.worker")

# The database is unreachable (retry the same batch later) as opposed to refusing one row.
OUTAGE_ERRORS = (sa.exc.OperationalError, sa.exc.InterfaceError)
RELAY_EVERY_SECONDS = 5.0
PRUNE_EVERY_SECONDS = 600.0
# A crash re-publishes (same ids) at most this much of already-confirmed outputs.
OUTBOX_CLEANUP_EVERY_SECONDS = 1.0


@dataclass
class _Pending:
    """A batch whose state is committed and outputs published, awaiting confirms and acks."""

    batch: list[Delivery]
    result: BatchResult
    started: float  # time.monotonic() when the batch was taken


@dataclass
class WorkerStats:
    batches: int = 0
    fates: Counter[str] = field(default_factory=Counter)
    published: int = 0
    reconnects: int = 0
    db_waits: int = 0
    lock_wait_seconds: float = 0.0
    contention_retries: int = 0
    consuming_since: float = 0.0  # time.monotonic() when consuming began
    last_batch_at: float = 0.0  # time.monotonic() when the last batch was acked


class Worker:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        processor: Processor,
        queues: list[str],
        observer: Observer | None = None,
        *,
        bulk: BulkRunner | None = None,
    ) -> None:
        self.settings = settings
        self.bulk = bulk  # bulk fan-outs, run a chunk at a time between batches
        self.engine = engine
        self.processor = processor
        self.names = Names(settings.prefix)
        self.queues = queues
        self.observer: Observer = observer or NullObserver()
        self.should_stop = False
        self.ready = threading.Event()  # set while consuming: topology declared, consumers on
        self.stats = WorkerStats()
        self._generation = 0
        self._last_relay = 0.0
        self._outbox_done: list[int] = []  # outbox rows of confirmed batches, to delete
        self._last_cleanup = 0.0
        self._pending: _Pending | None = None
        self._last_prune = 0.0
        self._policies = {q: retry.policy_for(settings, q) for q in queues}
        self._allowed = {q: allowed_for(settings, q) for q in queues}
        self._accepts = kinds_by_queue(self.names)
        self._delays = retry.delay_queues(settings)

    def stop(self, *_: Any) -> None:
        """Finish the batch in hand, then return from `run` (signal-handler safe)."""
        self.should_stop = True

    # --- connection lifecycle --------------------------------------------------------------

    def run(self, *, until_idle: float | None = None) -> WorkerStats:
        """Consume until stopped (or, with `until_idle`, until no message came for that long)."""
        delay = 0.5
        while not self.should_stop:
            conn = connect(self.settings)
            try:
                ensure_connected(conn, retries=1)  # every URL of a failover list
                self._generation += 1
                try:
                    # Delay queues are declared when first needed (`_declare_retry_queues`).
                    declare(conn, self.names, {})
                except PreconditionFailed as exc:
                    raise ConfigurationError(
                        f"the broker holds a queue or exchange with other arguments: {exc}",
                        reason="topology_mismatch",
                    ) from exc
                delay = 0.5
                if self._consume(conn, until_idle):
                    break
            except (
                *conn.connection_errors,
                *conn.channel_errors,
                KombuOperationalError,  # ensure_connection's wrapper of "connection refused"
                PublishFailed,
            ) as exc:
                self.stats.reconnects += 1
                self.observer.connection_changed(False)
                log.warning(
                    "broker unavailable; reconnecting",
                    broker=self.settings.safe_broker_url(),
                    error=str(exc)[:300],
                    retry_in=delay,
                )
                self._sleep(delay, None)
                delay = min(delay * 2, 30.0)
            finally:
                with contextlib.suppress(Exception):  # a dead connection may fail to close
                    conn.release()
        return self.stats

    def _sleep(self, seconds: float, conn: Connection | None) -> None:
        """Sleep in small steps: stay stoppable and keep heartbeats flowing both ways.

        With a connection, the wait reads from it (heartbeats, confirms; deliveries join the
        buffer for later), so a long database outage does not look like a dead broker.
        """
        deadline = time.monotonic() + seconds
        while not self.should_stop and time.monotonic() < deadline:
            step = min(0.1, max(0.0, deadline - time.monotonic()))
            if conn is None:
                time.sleep(step)
                continue
            conn.heartbeat_check()
            with contextlib.suppress(TimeoutError):
                conn.drain_events(timeout=max(step, 0.01))

    @contextlib.contextmanager
    def _heartbeats_while_busy(self, conn: Connection) -> Iterator[None]:
        """Send heartbeats from a helper thread while the loop thread is in the database.

        py-amqp only sends heartbeats when asked; a batch that waits long for a lock would let
        the broker close the connection. The loop thread does not touch the connection inside
        this block, so the helper is its only user. Afterwards the client-side check restarts
        its clock: the broker's heartbeats of that time are unread, not missing.
        """
        amqp_conn = getattr(conn, "connection", None)
        interval = self.settings.heartbeat_seconds
        if not interval or not is_rabbitmq(conn) or amqp_conn is None:
            yield
            return
        done = threading.Event()

        def beat() -> None:
            while not done.wait(max(interval / 3, 0.5)):
                try:
                    amqp_conn.send_heartbeat()
                except Exception:  # noqa: BLE001 - the loop thread sees the dead connection
                    return

        helper = threading.Thread(target=beat, name="heartbeat", daemon=True)
        helper.start()
        try:
            yield
        finally:
            done.set()
            helper.join()
            amqp_conn.prev_recv = None  # count from now, see the docstring

    # --- the loop --------------------------------------------------------------------------

    def _consume(self, conn: Connection, until_idle: float | None) -> bool:
        settings = self.settings
        channel = conn.channel()
        # py-amqp decodes bodies by their content_encoding; the worker wants the exact bytes
        # (size limit, UTF-8 check, dead letters carry the original body untouched).
        channel.auto_decode = False
        publisher = ConfirmingPublisher(conn)
        mover = (
            None
            if is_rabbitmq(conn)
            else retry.EmbeddedRetryMover(
                conn, publisher, {q: self._delays.get(q, ()) for q in self.queues}
            )
        )
        buffer: list[Delivery] = []
        consumers = [
            Consumer(
                channel,
                queues=[],
                on_message=functools.partial(self._on_message, buffer, queue),
                prefetch_count=settings.prefetch,
                no_ack=False,
                auto_declare=False,
            )
            for queue in self.queues
        ]
        for consumer, queue in zip(consumers, self.queues, strict=True):
            consumer.add_queue(_bare_queue(queue))
            consumer.consume()
        amqp_inbound.attach(conn, consumers)  # deliveries read in bulk (RabbitMQ over TCP)
        node = conn.host if is_rabbitmq(conn) else None  # which URL of a failover list answered
        log.info("consuming", queues=self.queues, broker=settings.safe_broker_url(), node=node)
        self.stats.consuming_since = time.monotonic()
        self.observer.connection_changed(True)
        self.ready.set()
        self._relay(publisher, force=True)
        linger = settings.batch_linger_ms / 1000
        first_at = 0.0
        last_message = time.monotonic()
        self._pending = None  # a pending batch of an old connection is never acked
        self._retry_declared: set[str] = set()
        try:
            while not self.should_stop:
                conn.heartbeat_check()
                if len(buffer) < settings.batch_size:
                    before = len(buffer)
                    with contextlib.suppress(TimeoutError):
                        conn.drain_events(timeout=linger or 0.01)
                    if len(buffer) > before:
                        last_message = time.monotonic()
                        if before == 0:
                            first_at = last_message
                self._settle_if_confirmed(conn, channel, publisher)
                now = time.monotonic()
                if buffer and (len(buffer) >= settings.batch_size or now - first_at >= linger):
                    batch = buffer[: settings.batch_size]
                    del buffer[: settings.batch_size]
                    first_at = now
                    self._handle(conn, channel, publisher, batch)
                    self._bulk_step(conn, channel, publisher)
                elif not buffer:
                    self._settle(conn, channel, publisher)
                    self._clean_outbox()
                    if self._bulk_step(conn, channel, publisher):
                        continue  # more chunks, unless deliveries came meanwhile
                    self._relay(publisher)
                    self._prune()
                    if mover is not None:
                        mover.move_due()
                    if until_idle is not None and now - last_message >= until_idle:
                        return True
            self._settle(conn, channel, publisher)
            self._clean_outbox()
        finally:
            self.ready.clear()
            for consumer in consumers:
                with contextlib.suppress(Exception):
                    consumer.cancel()
            if mover is not None:
                mover.close()
            publisher.close()
            # Deliveries still in `buffer` are not acked: the broker hands them out again.
        return True

    def _on_message(self, buffer: list[Delivery], queue: str, message: Any) -> None:
        info = message.delivery_info
        props = message.properties
        buffer.append(
            Delivery(
                queue=queue,
                routing_key=str(info.get("routing_key") or ""),
                exchange=str(info.get("exchange") or ""),
                body=_raw_body(message),
                headers=dict(message.headers or {}),
                properties={
                    "message_id": props.get("message_id"),
                    "content_type": props.get("content_type"),
                    "content_encoding": props.get("content_encoding"),
                    "timestamp": props.get("timestamp"),
                    "user_id": props.get("user_id"),
                    "correlation_id": props.get("correlation_id"),
                    "type": props.get("type"),
                    "app_id": props.get("app_id"),
                },
                delivery_tag=int(info.get("delivery_tag") or 0),
                generation=self._generation,
                raw=message,
                policy=self._policies.get(queue),
                allowed_publishers=self._allowed.get(queue),
                accepts=self._accepts.get(queue),
            )
        )

    # --- one batch -------------------------------------------------------------------------

    def _handle(
        self, conn: Connection, channel: Any, publisher: ConfirmingPublisher, batch: list[Delivery]
    ) -> None:
        # The previous batch's confirms travel while this batch is in the database.
        started = time.monotonic()
        result = self._process(conn, batch, lambda: self._settle(conn, channel, publisher))
        if result is None:  # stopping while the database was down: nothing acked
            return
        self._settle(conn, channel, publisher)
        self._declare_retry_queues(conn, channel, result.publish)
        publisher.publish_many(result.publish, wait=False)
        self._pending = _Pending(batch, result, started)
        if result.jobs_created and self.bulk is not None:
            self.bulk.wake()

    def _bulk_step(self, conn: Connection, channel: Any, publisher: ConfirmingPublisher) -> bool:
        """One chunk of a bulk fan-out, if one is waiting; True if a chunk ran.

        Between batches, so neither starves the other. The chunk waits for its confirms, and
        so for the pending batch's too, which the loop then acks at once.
        """
        if self.bulk is None:
            return False
        try:
            with self._heartbeats_while_busy(conn):
                return self.bulk.step(publisher)
        except (*conn.connection_errors, *conn.channel_errors, PublishFailed):
            raise  # the broker: the run loop reconnects; the chunk's outbox rows are relayed
        except OUTAGE_ERRORS as exc:
            log.warning("bulk fan-out paused: database unavailable", error=str(exc)[:200])
        except Exception:  # a chunk that fails must not end the worker: try it again later
            log.exception("bulk fan-out chunk failed; trying again later")
        self.bulk.pause()
        return False

    def _declare_retry_queues(
        self, conn: Connection, channel: Any, messages: list[OutMessage]
    ) -> None:
        """Declare the delay queues these retries go to, once per connection.

        Declared on first use rather than at start-up, so a deployment (or a test) that never
        retries has no delay queues. Publishing to an undeclared queue through the default
        exchange would drop the message, so this runs before every publish of a batch.
        """
        wanted = {
            m.routing_key for m in messages if m.exchange == "" and ".retry." in m.routing_key
        } - self._retry_declared
        if not wanted:
            return
        rabbit = is_rabbitmq(conn)
        for source, delays in self._delays.items():
            for queue in retry_queues(source, delays, rabbit):
                if queue.name in wanted:
                    queue(channel).declare()
                    self._retry_declared.add(queue.name)

    def _settle_if_confirmed(
        self, conn: Connection, channel: Any, publisher: ConfirmingPublisher
    ) -> None:
        """Ack as soon as the confirms are in, not after the next batch's transaction: a crash
        then redelivers (and repeats) less."""
        if self._pending is not None and publisher.all_confirmed:
            self._settle(conn, channel, publisher)

    def _settle(self, conn: Connection, channel: Any, publisher: ConfirmingPublisher) -> None:
        """Wait for the pending batch's confirms, then ack it and clear its outbox rows."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        publisher.wait_for_confirms()
        self._ack(conn, channel, pending.batch)
        self._outbox_done.extend(pending.result.outbox_ids)
        if time.monotonic() - self._last_cleanup >= OUTBOX_CLEANUP_EVERY_SECONDS:
            self._clean_outbox()
        self.stats.batches += 1
        self.stats.last_batch_at = time.monotonic()
        self.stats.published += len(pending.result.publish)
        self.stats.fates.update(pending.result.fates)
        self.stats.lock_wait_seconds += pending.result.lock_wait_seconds
        self.observer.batch_acked(
            pending.batch, pending.result, self.stats.last_batch_at - pending.started
        )
        log.debug("batch done", size=len(pending.batch), **dict(pending.result.fates))

    def _clean_outbox(self) -> None:
        """Delete the outbox rows of confirmed batches, a second's worth in one transaction
        while busy (a transaction per batch cost the loop about 5%), all of them when idle."""
        done, self._outbox_done = self._outbox_done, []
        self._last_cleanup = time.monotonic()
        try:
            outbox.delete(self.engine, done)
        except sa.exc.SQLAlchemyError as exc:
            # Published and acked; the relay publishes these rows again with the same ids.
            log.warning("outbox cleanup failed", error=str(exc)[:300])

    def _process(
        self, conn: Connection, batch: list[Delivery], on_outage: Callable[[], None] | None = None
    ) -> BatchResult | None:
        delay = 0.2
        while True:
            try:
                with self._heartbeats_while_busy(conn):
                    return self.processor.process(batch)
            except OUTAGE_ERRORS as exc:
                if _is_contention(exc):
                    # A deadlock or serialization failure between concurrent batches: the
                    # database rolled this one back; run it again at once.
                    self.stats.contention_retries += 1
                    log.info(
                        "batch rolled back by the database; running it again", error=str(exc)[:200]
                    )
                    continue
                if on_outage is not None:
                    on_outage()  # ack what is already safe before waiting
                self.stats.db_waits += 1
                self.observer.database_waiting(delay)
                log.error(
                    "database unavailable; holding the batch unacked",
                    database=self.settings.safe_database_url(),
                    error=str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__,
                    retry_in=delay,
                    batch=len(batch),
                )
                self._sleep(delay, conn)
                if self.should_stop:
                    return None
                delay = min(delay * 2, self.settings.db_retry_max_seconds)
            except Exception as exc:  # one delivery must not end the worker
                # A row the database refuses, or a bug a message runs into: find the delivery
                # and give it its fate by the error tree; the rest of the batch goes on.
                if not isinstance(exc, sa.exc.DBAPIError):
                    log.exception("batch failed; handling its deliveries one by one")
                return self._isolate(conn, batch, exc)

    def _isolate(self, conn: Connection, batch: list[Delivery], exc: Exception) -> BatchResult:
        """Run the deliveries of a failed batch one by one; the one that fails alone gets the
        failure's fate (retry or dead letter), the others are handled as usual."""
        if len(batch) == 1:
            result = BatchResult()
            fail_into(result, batch[0], Failure.of(exc), self.settings.max_attempts)
            return result
        merged = BatchResult()
        for delivery in batch:
            one = self._process(conn, [delivery])
            if one is not None:
                merged.merge(one)
        return merged

    def _ack(self, conn: Connection, channel: Any, batch: list[Delivery]) -> None:
        current = [d for d in batch if d.generation == self._generation]
        if len(current) != len(batch):
            log.warning(
                "not acking deliveries of an old connection", count=len(batch) - len(current)
            )
        if not current:
            return
        if is_rabbitmq(conn):
            channel.basic_ack(max(d.delivery_tag for d in current), multiple=True)
        else:
            for delivery in current:
                delivery.raw.ack()

    def _prune(self) -> None:
        """When idle, now and then: forget event ids older than the retention."""
        now = time.monotonic()
        if now - self._last_prune < PRUNE_EVERY_SECONDS:
            return
        self._last_prune = now
        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=self.settings.processed_retention_days)
        try:
            with self.engine.begin() as conn:
                pruned = prune_processed(conn, cutoff)
        except sa.exc.SQLAlchemyError as exc:
            log.warning("pruning processed event ids skipped", error=str(exc)[:200])
            return
        if pruned:
            log.info("pruned processed event ids", count=pruned)

    def _relay(self, publisher: ConfirmingPublisher, *, force: bool = False) -> None:
        """Publish outbox rows a dead worker left behind (older than the relay age)."""
        now = time.monotonic()
        if not force and now - self._last_relay < RELAY_EVERY_SECONDS:
            return
        self._last_relay = now
        try:
            left = outbox.pending(
                self.engine, self.names.out_exchange, self.settings.outbox_relay_age_seconds
            )
            if not left.messages:
                return
            publisher.publish_many(left.messages)
            outbox.delete(self.engine, left.batch_ids, left.legacy_ids)
            log.info("relayed outbox rows", count=len(left.messages))
        except sa.exc.SQLAlchemyError as exc:
            log.warning("outbox relay skipped: database unavailable", error=str(exc)[:200])


def _is_contention(exc: Exception) -> bool:
    """Deadlock detected (40P01) or serialization failure (40001): retry, not an outage."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None) in ("40P01", "40001")


def _raw_body(message: Any) -> bytes:
    body = message.body
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):  # a transport that decoded it anyway: undo with its encoding
        return body.encode(message.content_encoding or "utf-8", errors="surrogateescape")
    return bytes(body)


def _bare_queue(name: str) -> Queue:
    # Declared already by `declare`; consuming needs only the name (arguments must not differ).
    return Queue(name, no_declare=True)
