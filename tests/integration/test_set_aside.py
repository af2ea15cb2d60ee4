"""An event that fails after writing to the batch's state is set aside: the batch runs again
without it, so its writes are gone and every other event's outcome is as if it had been refused
before writing (runtime/batch.py). PostgreSQL and SQLite."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest
import sqlalchemy as sa

from entity_sync.handlers.sharing.service import SharingContext
from entity_sync.runtime.batch import BatchProcessor, BatchResult
from entity_sync.runtime.delivery import Delivery
from entity_sync.store import migrate
from entity_sync.store import tables as t
from entity_sync.store.engine import create_engine
from tests.support import scenario as sc


@pytest.fixture
def engine(state_db_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(state_db_url)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


def _process(engine: sa.Engine, *events: sc.Event) -> BatchResult:
    processor = BatchProcessor(
        engine, SharingContext("global"), "p.out", max_body_bytes=1 << 20, max_attempts=5
    )
    deliveries = [
        Delivery(
            "p.object-shared" if rk.startswith("object.") else "p.entity-admin",
            rk,
            "p.in",
            orjson.dumps(body),
            properties={"message_id": body["event_id"]},
        )
        for rk, body in events
    ]
    return processor.process(deliveries)


@pytest.mark.integration
def test_an_event_failing_after_its_first_write_is_set_aside_and_the_rest_applied(
    engine: sa.Engine,
) -> None:
    setup = [sc.entity("global", ["USD"]), sc.entity("t-a", ["USD"])]
    setup += [sc.connection("c-a", "t-a", "request"), sc.connection("c-a", "t-a", "accept")]
    assert _process(engine, *setup).fates["applied"] == len(setup)
    # Break the invariant that a connected target is a known entity: sending the product to it
    # raises RetryLater after the product's source row was written to the batch's state.
    with engine.begin() as conn:
        conn.execute(t.entities.delete().where(t.entities.c.entity_id == "t-a"))

    product = sc.obj("product", "p-1", 1, {"name": "x", "sku": "s", "description": "d"})
    result = _process(engine, product, sc.entity("t-b", ["USD"]))

    assert (result.fates["retried"], result.fates["applied"]) == (1, 1)
    assert list(result.retries) == [("p.object-shared", "unknown_entity")]
    [retry] = [m for m in result.publish if m.routing_key.startswith("p.object-shared.retry.")]
    assert retry.headers["x-exception-type"] == "RetryLater"
    with engine.connect() as conn:
        sources = conn.execute(sa.select(t.source_objects.c.object_id)).scalars().all()
        entities = set(conn.execute(sa.select(t.entities.c.entity_id)).scalars())
    assert sources == []  # the failed event's write went with the rolled-back transaction
    assert entities == {"global", "t-b"}
