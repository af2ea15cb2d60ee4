"""Each aggregate's record maps to its table's columns by name, both ways."""

from __future__ import annotations

import dataclasses
import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa

from entity_sync.handlers.sharing.model import (
    BulkJob,
    Copy,
    Decision,
    Entity,
    Link,
    SourceObject,
)
from entity_sync.store import tables as t
from entity_sync.store.decisions import DECISIONS
from entity_sync.store.jobs import JOBS
from entity_sync.store.mapping import RowMap
from entity_sync.store.sharing import COPIES, ENTITIES, LINKS, SOURCES

NOW = dt.datetime(2026, 12, 2, tzinfo=dt.UTC)

RECORDS: list[tuple[RowMap[Any], Any]] = [
    (
        ENTITIES,
        Entity(
            entity_id="t1",
            name="T1",
            display_name="Target 1",
            parent_id="global",
            is_global=False,
            earliest_activity_date=dt.date(2026, 1, 1),
            has_own_accounting_periods=True,
            active_currencies=("USD", "EUR"),
        ),
    ),
    (LINKS, Link(connection_id="c1", source_entity="g", target_entity="t1", status="connected")),
    (
        SOURCES,
        SourceObject(
            object_type="product_rate_plan",
            object_id="R1",
            parent_id="P1",
            version=3,
            data={"name": "R1"},
            event_id="e-1",
        ),
    ),
    (
        COPIES,
        Copy(
            connection_id="c1",
            target_entity="t1",
            object_type="product",
            source_object_id="P1",
            target_object_id="t1-P1",
            target_parent_id=None,
            version=2,
            data={"name": "P1"},
        ),
    ),
    (
        DECISIONS,
        Decision(
            cause_event_id="e-1",
            decision="sent",
            reason="create",
            message="",
            target_entity="t1",
            object_type="product",
            object_id="P1",
            version=1,
        ),
    ),
    (
        JOBS,
        BulkJob(
            kind="backfill",
            connection_id="c1",
            target_entity="t1",
            cause_event_id="e-1",
            object_types=("product", "product_rate_plan"),
            currencies=("EUR",),
        ),
    ),
]


@pytest.mark.parametrize(("mapping", "record"), RECORDS, ids=lambda x: type(x).__name__)
def test_a_record_comes_back_from_its_row_with_every_field_in_place(
    mapping: RowMap[Any], record: Any
) -> None:
    row = mapping.values(record)
    assert set(row) <= set(mapping.table.c.keys())
    assert mapping.record(SimpleNamespace(**row, updated_at=NOW)) == record  # more columns: fine


def test_columns_the_record_does_not_hold_are_added() -> None:
    assert LINKS.values(RECORDS[1][1], updated_at=NOW)["updated_at"] == NOW


def test_tuple_fields_are_stored_as_json_lists() -> None:
    row = JOBS.values(RECORDS[-1][1])
    assert row["object_types"] == ["product", "product_rate_plan"]
    assert row["currencies"] == ["EUR"]


def test_a_field_without_a_column_fails_when_the_map_is_declared() -> None:
    @dataclasses.dataclass
    class Renamed:
        connection_id: str
        state: str  # the column is `status`

    with pytest.raises(TypeError, match="state"):
        RowMap(Renamed, t.connections)


def test_rows_of_a_result_are_read_by_column_name_whatever_the_column_order() -> None:
    engine = sa.create_engine("sqlite://")  # in memory: no service
    t.metadata.create_all(engine, tables=[t.target_copies, t.entities])
    copy, entity = RECORDS[3][1], RECORDS[0][1]
    with engine.begin() as conn:
        conn.execute(t.target_copies.insert(), [COPIES.values(copy, updated_at=NOW)])
        conn.execute(t.entities.insert(), [ENTITIES.values(entity, updated_at=NOW)])
        reordered = sa.select(*reversed(t.target_copies.c))
        assert COPIES.records(conn.execute(reordered)) == [copy]
        assert ENTITIES.records(conn.execute(sa.select(t.entities))) == [entity]  # a tuple again
        with pytest.raises(TypeError, match="data"):
            COPIES.records(conn.execute(sa.select(t.target_copies.c.connection_id)))
    engine.dispose()
