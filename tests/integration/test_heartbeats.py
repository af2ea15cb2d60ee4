"""A batch that waits long in the database keeps its broker connection (heartbeats flow)."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from entity_sync.store.engine import StateLock, create_engine, lock_state
from tests.integration.harness import processed
from tests.support import scenario as sc
from tests.support.amqp import PikaPublisher
from tests.support.runner import running_worker, settings_for
from tests.support.waiting import wait_for

HEARTBEAT = 2  # seconds; RabbitMQ drops a silent connection after about two of them
HELD = 8.0  # how long another transaction holds the state lock


@pytest.mark.integration
@pytest.mark.usefixtures("rabbit_cleanup")
def test_a_batch_blocked_on_the_database_keeps_its_connection(
    broker_url: str, database_url: str, prefix: str
) -> None:
    settings = settings_for(prefix, broker_url, database_url, heartbeat_seconds=HEARTBEAT)
    blocker = create_engine(database_url)
    observer = create_engine(database_url)
    with running_worker(settings) as (app, worker):
        with blocker.begin() as conn:
            lock_state(conn, StateLock.ADMIN)  # the worker's next batch waits for it
            publisher = PikaPublisher(broker_url, f"{prefix}.in")
            publisher.publish(*sc.entity(sc.GLOBAL, ["USD"]))
            publisher.close()
            wait_for(
                lambda: _waiting_for_lock(observer) == 1, what="the worker waiting on the lock"
            )
            end = time.monotonic() + HELD
            while time.monotonic() < end:  # the fault lasts HELD seconds; the link must hold
                assert worker.stats.reconnects == 0, "the broker dropped the connection"
                time.sleep(0.1)
        wait_for(lambda: processed(app) == 1, what="the event applied after the lock")
        assert worker.stats.reconnects == 0
        assert worker.ready.is_set()
    blocker.dispose()
    observer.dispose()


def _waiting_for_lock(engine: Engine) -> int:
    """Backends waiting for an advisory lock: the worker's batch transaction, blocked."""
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
