"""A batch costs a fixed number of statements whatever its size (docs/scaling.md): 500 object
events to 3 targets are 9 statements on PostgreSQL: the admin lock, the claim of the event ids,
one read each of the small tables, sources and copies, and one write each of sources, copies,
decisions and the outbox."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from entity_sync.handlers.sharing.service import SharingContext
from entity_sync.runtime.batch import BatchProcessor
from entity_sync.store import migrate
from entity_sync.store.engine import create_engine
from tests.support import scenario as sc


@pytest.mark.integration
def test_a_batch_of_500_events_to_3_targets_is_9_statements(database_url: str) -> None:
    engine = create_engine(database_url)
    migrate.upgrade(engine)
    processor = BatchProcessor(
        engine, SharingContext(sc.GLOBAL), "p.out", max_body_bytes=1 << 20, max_attempts=5
    )
    admin = [sc.entity(sc.GLOBAL, ["USD"])]
    for i in range(3):
        admin += [
            sc.entity(f"t{i}", ["USD"]),
            sc.connection(f"c{i}", f"t{i}", "request"),
            sc.connection(f"c{i}", f"t{i}", "accept"),
        ]
    assert processor.process([sc.delivery(e) for e in admin]).fates["applied"] == len(admin)
    events = [sc.obj("product", f"p-{i}", 1, {"name": f"P{i}", "sku": f"S{i}"}) for i in range(500)]
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    result = processor.process([sc.delivery(e) for e in events])
    sa.event.remove(engine, "before_cursor_execute", count)
    engine.dispose()

    assert result.fates["applied"] == 500
    assert len(result.publish) == 1500  # 3 target updates each
    assert len(statements) == 9, "\n".join(s[:80] for s in statements)
