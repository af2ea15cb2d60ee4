"""Sources and copies are looked up one index probe per key, whatever PostgreSQL's statistics
say (store/sql.py lookup): on tables never analyzed, as in a new database or a bulk load before
autovacuum's first ANALYZE, PostgreSQL's own plan for each lookup probes the primary key, or
`ix_target_copies_source`, with every key column. A scan of every row of a type (the old
`= ANY(array)` form) or a probe on a prefix of the key (a backfill once spent 343 s instead of
14 s on 100,000 objects that way) fails here."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from entity_sync.handlers.sharing.service import SharingContext
from entity_sync.runtime.batch import BatchProcessor
from entity_sync.store import migrate
from entity_sync.store.engine import create_engine
from entity_sync.store.sharing import DbLoader
from tests.support import scenario as sc

pytestmark = pytest.mark.integration
OBJECTS = 2000


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(database_url)
    migrate.upgrade(engine)
    processor = BatchProcessor(
        engine, SharingContext(sc.GLOBAL), "p.out", max_body_bytes=1 << 20, max_attempts=5
    )
    events = [sc.entity(sc.GLOBAL, ["USD"])]
    for target in ("t1", "t2"):
        c = f"c-{target}"
        events += [sc.entity(target, ["USD"]), sc.connection(c, target, "request")]
        events += [sc.connection(c, target, "accept")]
    events += [sc.obj("product", f"p-{i}", 1, {"name": "P", "sku": "S"}) for i in range(OBJECTS)]
    for start in range(0, len(events), 500):
        processor.process([sc.delivery(e) for e in events[start : start + 500]])
    yield engine
    engine.dispose()


def _plans(engine: sa.Engine, conn: sa.Connection, work: Any) -> list[dict[str, Any]]:
    """PostgreSQL's plan of every lookup statement `work(conn)` runs."""
    seen: list[tuple[str, Any]] = []

    def capture(_c: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if "LATERAL" in statement:
            seen.append((statement, params))

    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        work(conn)
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    assert seen, "no lookup ran"
    return [
        conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, params).scalar_one()[0]["Plan"]
        for statement, params in seen
    ]


def _scans(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """The plan's nodes that read `relation`s."""
    found = [plan] if "Relation Name" in plan else []
    for child in plan.get("Plans", []):
        found += _scans(child)
    return found


def _assert_probes(plan: dict[str, Any], index: str, columns: list[str]) -> None:
    scans = _scans(plan)
    assert len(scans) == 1, scans
    scan = scans[0]
    if scan["Node Type"] == "Bitmap Heap Scan":  # a probe that may find several rows
        (scan,) = scan["Plans"]
        assert scan["Node Type"] == "Bitmap Index Scan", plan
    else:
        assert scan["Node Type"] in ("Index Scan", "Index Only Scan"), plan
    assert scan["Index Name"] == index, plan
    for column in columns:
        assert f"{column})" in scan["Index Cond"], (column, scan["Index Cond"])


def test_a_batch_probes_sources_and_copies_by_their_whole_key(engine: sa.Engine) -> None:
    keys = [("product", f"p-{i}") for i in range(0, OBJECTS, 4)]  # 500, stored
    with engine.connect() as conn:
        assert (
            conn.exec_driver_sql(
                "SELECT count(*) FROM pg_stats WHERE tablename = 'target_copies'"
            ).scalar_one()
            == 0
        ), "the table has statistics: this test is about having none"
        loader = DbLoader(conn)
        sources = _plans(engine, conn, lambda c: loader.load_sources(keys))
        copies = _plans(engine, conn, lambda c: loader.load_copies(keys))
        assert len(loader.load_copies(keys)) == 2 * len(keys)
    _assert_probes(sources[0], "source_objects_pkey", ["object_type", "object_id"])
    _assert_probes(copies[0], "ix_target_copies_source", ["source_object_id"])


def test_a_bulk_job_probes_its_connections_copies_by_the_whole_primary_key(
    engine: sa.Engine,
) -> None:
    keys = [("product", f"p-{i}") for i in range(0, OBJECTS, 4)]
    with engine.connect() as conn:
        loader = DbLoader(conn, copies_of="c-t1")
        plans = _plans(engine, conn, lambda c: loader.load_copies(keys))
        assert {c.connection_id for c in loader.load_copies(keys)} == {"c-t1"}
    _assert_probes(
        plans[0], "target_copies_pkey", ["connection_id", "object_type", "source_object_id"]
    )
