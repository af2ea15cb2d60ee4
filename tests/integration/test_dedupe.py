"""The dedupe of redelivered events (store/processed.py claim), on PostgreSQL and SQLite: an
applied event delivered again is a duplicate, also within one batch; an event that failed is
not recorded, so its next delivery is applied."""

from __future__ import annotations

import pytest

from entity_sync.handlers.sharing.service import SharingContext
from entity_sync.runtime.batch import BatchProcessor
from entity_sync.store import migrate
from entity_sync.store.engine import create_engine
from tests.support import scenario as sc

pytestmark = pytest.mark.integration


def test_applied_events_are_duplicates_and_failed_ones_are_applied_later(
    state_db_url: str,
) -> None:
    engine = create_engine(state_db_url)
    migrate.upgrade(engine)
    processor = BatchProcessor(
        engine, SharingContext(sc.GLOBAL), "p.out", max_body_bytes=1 << 20, max_attempts=5
    )
    setup = [
        sc.entity(sc.GLOBAL, ["USD"]),
        sc.entity("t1", ["USD"]),
        sc.connection("c1", "t1", "request"),
        sc.connection("c1", "t1", "accept"),
    ]
    assert processor.process([sc.delivery(e) for e in setup]).fates["applied"] == len(setup)
    plan = sc.obj("product_rate_plan", "rp-1", 1, {"name": "Monthly"}, parent="p-1")
    product = sc.obj("product", "p-1", 1, {"name": "P", "sku": "S"})

    first = processor.process([sc.delivery(plan), sc.delivery(product), sc.delivery(product)])
    assert first.fates["retried"] == 1  # the plan before its parent: parent_unknown
    assert first.fates["applied"] == 1
    assert first.fates["duplicate"] == 1  # the product twice in one batch

    again = processor.process([sc.delivery(plan), sc.delivery(product)])
    assert again.fates["applied"] == 1  # the plan: its failure was not recorded
    assert again.fates["duplicate"] == 1
    assert [m.routing_key for m in again.publish] == ["target.t1.product_rate_plan"]
    engine.dispose()
