"""The consumer loop: batches in, one transaction, confirmed publishes, then the acks.

Shaped like kombu's `ConsumerMixin` (kombu/mixins.py): `run()` reconnects with backoff until
`should_stop`; `on_connection_revived()` redeclares the topology on every new connection;
`get_consumers()` and `consume()` take deliveries; `on_connection_error()` reports a lost
broker. It batches where the mixin handles one message at a time, so it does not subclass it.
The jobs around the loop have their own modules: a batch through the database
(runtime/attempts.py), the fate of each delivery (runtime/ack_policy.py), confirms then acks
then outbox cleanup (runtime/settle.py), and what runs between batches (runtime/housekeeping.py).
Never is a delivery tag of an older connection acked (`Delivery.generation`).
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import structlog
from amqp.exceptions import PreconditionFailed
from kombu.connection import Connection
from kombu.entity import Queue
from kombu.exceptions import OperationalError as KombuOperationalError
from kombu.messaging import Consumer
from sqlalchemy.engine import Engine

from entity_sync.config import Settings
from entity_sync.handlers.errors import ConfigurationError
from entity_sync.runtime import amqp_inbound, heartbeat, retry
from entity_sync.runtime.allowlist import allowed_for
from entity_sync.runtime.attempts import Attempts
from entity_sync.runtime.batch import Processor
from entity_sync.runtime.batching import Buffer
from entity_sync.runtime.broker import ConfirmingPublisher, PublishFailed, connect, ensure_connected
from entity_sync.runtime.bulk import BulkRunner
from entity_sync.runtime.delivery import Delivery
from entity_sync.runtime.envelope import kinds_by_queue
from entity_sync.runtime.housekeeping import Housekeeping
from entity_sync.runtime.observe import NullObserver, Observer
from entity_sync.runtime.settle import Settler
from entity_sync.runtime.stats import WorkerStats
from entity_sync.runtime.topology import Names, declare, is_rabbitmq

__all__ = ["Worker", "WorkerStats"]

log = structlog.get_logger("entity_sync.worker")


@dataclass
class _Session:
    """What lives as long as one connection."""

    conn: Connection
    channel: Any
    publisher: ConfirmingPublisher
    delay_queues: retry.DelayQueues
    buffer: Buffer


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
        self.engine = engine
        self.processor = processor
        self.names = Names(settings.prefix)
        self.queues = queues
        self.observer: Observer = observer or NullObserver()
        self.should_stop = False
        self.ready = threading.Event()  # set while consuming: topology declared, consumers on
        self.stats = WorkerStats()
        self.settler = Settler(engine, self.stats, self.observer)
        self.housekeeping = Housekeeping(settings, engine, bulk)
        self.attempts = Attempts(processor, settings, self.stats, self.observer, self._stopping)
        self._generation = 0
        self._policies = {q: retry.policy_for(settings, q) for q in queues}
        self._allowed = {q: allowed_for(settings, q) for q in queues}
        self._accepts = kinds_by_queue(self.names)
        self._delays = retry.delay_queues(settings)

    @property
    def bulk(self) -> BulkRunner | None:
        return self.housekeeping.bulk

    def stop(self, *_: Any) -> None:
        """Finish the batch in hand, then return from `run` (signal-handler safe)."""
        self.should_stop = True

    def _stopping(self) -> bool:
        return self.should_stop

    # --- connection lifecycle (ConsumerMixin: run, on_connection_revived, ...) --------------

    def run(self, *, until_idle: float | None = None) -> WorkerStats:
        """Consume until stopped (or, with `until_idle`, until no message came for that long)."""
        delay = 0.5
        while not self.should_stop:
            conn = connect(self.settings)
            try:
                ensure_connected(conn, retries=1)  # every URL of a failover list
                self.on_connection_revived(conn)
                delay = 0.5
                if self.consume(conn, until_idle):
                    break
            except (
                *conn.connection_errors,
                *conn.channel_errors,
                KombuOperationalError,  # ensure_connection's wrapper of "connection refused"
                PublishFailed,
            ) as exc:
                self.on_connection_error(exc, delay)
                heartbeat.wait(delay, None, self._stopping)
                delay = min(delay * 2, 30.0)
            finally:
                with contextlib.suppress(Exception):  # a dead connection may fail to close
                    conn.release()
        return self.stats

    def on_connection_revived(self, conn: Connection) -> None:
        """A new connection: a new generation of delivery tags, and the topology declared."""
        self._generation += 1
        try:
            # Delay queues are declared when first needed (retry.DelayQueues).
            declare(conn, self.names, {})
        except PreconditionFailed as exc:
            raise ConfigurationError(
                f"the broker holds a queue or exchange with other arguments: {exc}",
                reason="topology_mismatch",
            ) from exc

    def on_connection_error(self, exc: BaseException, interval: float) -> None:
        self.stats.reconnects += 1
        self.observer.connection_changed(False)
        log.warning(
            "broker unavailable; reconnecting",
            broker=self.settings.safe_broker_url(),
            error=str(exc)[:300],
            retry_in=interval,
        )

    def get_consumers(self, channel: Any, buffer: Buffer) -> list[Consumer]:
        """One consumer per input queue, each filling `buffer`."""
        consumers = []
        for queue in self.queues:
            consumer = Consumer(
                channel,
                queues=[],
                on_message=functools.partial(self.on_message, buffer, queue),
                prefetch_count=self.settings.prefetch,
                no_ack=False,
                auto_declare=False,
            )
            # Declared already by `declare`; consuming needs only the name (arguments must not
            # differ).
            consumer.add_queue(Queue(queue, no_declare=True))
            consumer.consume()
            consumers.append(consumer)
        return consumers

    def on_consume_ready(self, session: _Session) -> None:
        conn = session.conn
        node = conn.host if is_rabbitmq(conn) else None  # which URL of a failover list answered
        log.info("consuming", queues=self.queues, broker=self.settings.safe_broker_url(), node=node)
        self.stats.consuming_since = time.monotonic()
        self.observer.connection_changed(True)
        self.ready.set()

    # --- the loop --------------------------------------------------------------------------

    def consume(self, conn: Connection, until_idle: float | None) -> bool:
        """Take batches until stopped or idle for `until_idle`; True when done with `run`."""
        with self._session(conn) as session:
            buffer = session.buffer
            while not self.should_stop:
                conn.heartbeat_check()
                buffer.fill(conn)
                self.settler.settle_if_confirmed()
                if buffer.due():
                    self._handle(session, buffer.take())
                    self.housekeeping.bulk_step()
                elif not buffer:
                    self.settler.settle()
                    self.settler.clean_outbox()
                    if self.housekeeping.when_idle():
                        continue  # more chunks, unless deliveries came meanwhile
                    if until_idle is not None and buffer.idle_for() >= until_idle:
                        return True
            self.settler.settle()
            self.settler.clean_outbox()
        return True

    @contextlib.contextmanager
    def _session(self, conn: Connection) -> Iterator[_Session]:
        channel = conn.channel()
        # py-amqp decodes bodies by their content_encoding; the worker wants the exact bytes
        # (size limit, UTF-8 check, dead letters carry the original body untouched).
        channel.auto_decode = False
        publisher = ConfirmingPublisher(conn)
        mover = None
        if not is_rabbitmq(conn):
            delays = {q: self._delays.get(q, ()) for q in self.queues}
            mover = retry.EmbeddedRetryMover(conn, publisher, delays)
        settings = self.settings
        buffer = Buffer(settings.batch_size, settings.batch_linger_ms / 1000)
        session = _Session(
            conn, channel, publisher, retry.DelayQueues(conn, channel, self._delays), buffer
        )
        consumers = self.get_consumers(channel, buffer)
        amqp_inbound.attach(conn, consumers)  # deliveries read in bulk (RabbitMQ over TCP)
        self.on_consume_ready(session)
        # A pending batch of an old connection is never acked.
        self.settler.attach(conn, channel, publisher, self._generation)
        self.housekeeping.attach(conn, publisher, mover)
        try:
            yield session
        finally:
            self.ready.clear()
            for consumer in consumers:
                with contextlib.suppress(Exception):
                    consumer.cancel()
            if mover is not None:
                mover.close()
            publisher.close()
            # Deliveries still in the buffer are not acked: the broker hands them out again.

    def on_message(self, buffer: Buffer, queue: str, message: Any) -> None:
        info = message.delivery_info
        props = message.properties
        buffer.append(
            Delivery(
                queue=queue,
                routing_key=str(info.get("routing_key") or ""),
                exchange=str(info.get("exchange") or ""),
                body=_raw_body(message),
                headers=dict(message.headers or {}),
                properties={name: props.get(name) for name in _PROPERTIES},
                delivery_tag=int(info.get("delivery_tag") or 0),
                generation=self._generation,
                raw=message,
                policy=self._policies.get(queue),
                allowed_publishers=self._allowed.get(queue),
                accepts=self._accepts.get(queue),
            )
        )

    def _handle(self, session: _Session, batch: list[Delivery]) -> None:
        # The previous batch's confirms travel while this batch is in the database.
        started = time.monotonic()
        result = self.attempts.run(session.conn, batch, self.settler.settle)
        if result is None:  # stopping while the database was down: nothing acked
            return
        self.settler.settle()
        session.delay_queues.ensure(result.publish)
        session.publisher.publish_many(result.publish, wait=False)
        self.settler.hand_over(batch, result, started)
        if result.jobs_created and self.bulk is not None:
            self.bulk.wake()


# The AMQP properties a delivery keeps (dead letters and retries republish some of them).
_PROPERTIES = (
    "message_id",
    "content_type",
    "content_encoding",
    "timestamp",
    "user_id",
    "correlation_id",
    "type",
    "app_id",
)


def _raw_body(message: Any) -> bytes:
    body = message.body
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):  # a transport that decoded it anyway: undo with its encoding
        return body.encode(message.content_encoding or "utf-8", errors="surrogateescape")
    return bytes(body)
