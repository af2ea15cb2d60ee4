"""The database stage (runtime/stage.py): a batch's transaction on its own thread while the
loop thread keeps the broker connection, and what happens to a batch that is in the database
when that connection dies."""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from entity_sync.runtime.batch import BatchProcessor
from entity_sync.store.engine import StateLock, create_engine, lock_state
from tests.integration.harness import copies, processed
from tests.support import scenario as sc
from tests.support.amqp import PikaPublisher, bind_output_queue, collect, queue_depth
from tests.support.runner import running_worker, settings_for
from tests.support.waiting import wait_for


def _waiting_for_lock(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                    " AND database = (SELECT oid FROM pg_database"
                    " WHERE datname = current_database())"
                )
            ).scalar_one()
        )


def _publish(broker_url: str, prefix: str, events: list[sc.Event]) -> None:
    publisher = PikaPublisher(broker_url, f"{prefix}.in")
    for routing_key, body in events:
        publisher.publish(routing_key, body)
    publisher.close()


def _connected(broker_url: str, prefix: str, app: Any) -> None:
    _publish(
        broker_url,
        prefix,
        [
            sc.entity(sc.GLOBAL, ["USD"]),
            sc.entity("t1", ["USD"]),
            sc.connection("c1", "t1", "request"),
            sc.connection("c1", "t1", "accept"),
        ],
    )
    wait_for(lambda: processed(app) == 4, what="the target connected")


@pytest.mark.integration
@pytest.mark.usefixtures("rabbit_cleanup")
def test_batch_transactions_run_on_the_stage_thread_not_the_loop_thread(
    broker_url: str, database_url: str, prefix: str
) -> None:
    settings = settings_for(prefix, broker_url, database_url)
    threads: list[str] = []
    with running_worker(settings) as (app, worker):
        assert isinstance(worker.processor, BatchProcessor)
        written = worker.processor.written

        def record(envelopes: list[Any]) -> None:
            threads.append(threading.current_thread().name)
            written(envelopes)

        worker.processor.written = record  # type: ignore[method-assign]
        _connected(broker_url, prefix, app)
        events = [sc.obj("product", "p-1", v, {"name": f"P1 v{v}"}) for v in (1, 2, 3)]
        _publish(broker_url, prefix, events)
        wait_for(lambda: processed(app) == 7, what="the three versions applied")
        assert copies(app)[("t1", "p-1")]["version"] == 3
    assert threads, "no batch ran"
    assert set(threads) == {"database"}, f"batch transactions ran on {set(threads)}"


@pytest.mark.integration
@pytest.mark.usefixtures("rabbit_cleanup")
def test_a_batch_in_the_database_when_its_connection_dies_is_published_never_acked(
    broker_url: str, database_url: str, prefix: str
) -> None:
    # No relay during the test: only the stage's hand-back can publish the outputs.
    settings = settings_for(prefix, broker_url, database_url, outbox_relay_age_seconds=3600)
    blocker, observer = create_engine(database_url), create_engine(database_url)
    with running_worker(settings) as (app, worker):
        _connected(broker_url, prefix, app)
        out = bind_output_queue(broker_url, prefix)
        with blocker.begin() as conn:
            lock_state(conn, StateLock.ADMIN)
            _publish(broker_url, prefix, [sc.obj("product", "p-1", 1, {"name": "P1"})])
            wait_for(lambda: _waiting_for_lock(observer) == 1, what="a batch waiting on the lock")
            amqp: Any = worker._conn.connection  # type: ignore[union-attr]
            amqp.transport.sock.shutdown(socket.SHUT_RDWR)  # the broker connection dies
            wait_for(
                lambda: worker.stats.reconnects >= 1 and worker.ready.is_set(),
                what="the worker consuming on a new connection",
                status=lambda: (worker.stats.reconnects, worker.ready.is_set()),
            )
        # The lock is gone: the batch commits; its output goes out on the new connection, and
        # the event, never acked on the dead one, comes again and is a duplicate.
        got = collect(broker_url, out, 1, timeout=30)
        assert [m.routing_key for m in got] == ["target.t1.product"]
        assert got[0].json()["source_object_id"] == "p-1"
        wait_for(
            lambda: worker.stats.fates["duplicate"] >= 1,
            what="the redelivered event seen as a duplicate",
            status=lambda: dict(worker.stats.fates),
        )
        wait_for(
            lambda: queue_depth(broker_url, f"{prefix}.object-shared") == 0,
            what="the object queue empty",
        )
        assert processed(app) == 5
        assert list(copies(app)) == [("t1", "p-1")]
    blocker.dispose()
    observer.dispose()
