"""The migrations build exactly the schema of src/entity_sync/store/tables.py, on both backends."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from entity_sync.store import migrate
from entity_sync.store import tables as t
from entity_sync.store.engine import create_engine


@pytest.mark.integration
def test_upgraded_schema_matches_the_tables(state_db_url: str) -> None:
    engine = create_engine(state_db_url)
    try:
        migrate.upgrade(engine)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), t.metadata)
    finally:
        engine.dispose()
    assert diff == []


@pytest.mark.integration
def test_downgrading_0004_splits_shared_decision_rows(state_db_url: str) -> None:
    engine = create_engine(state_db_url)
    migrate.upgrade(engine)
    row = {
        "at": dt.datetime(2026, 12, 2, tzinfo=dt.UTC),
        "cause_event_id": "E1",
        "object_type": "product",
        "object_id": "X",
        "version": 1,
        "decision": "sent",
        "reason": "create",
        "message": "",
    }
    with engine.begin() as conn:
        conn.execute(t.decisions.insert(), [{**row, "targets": ["t1", "t2"]}])
        cfg = migrate._config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0003")
    with engine.connect() as conn:
        got = conn.execute(sa.text("SELECT target_entity, object_id FROM decisions")).all()
    engine.dispose()
    assert sorted(got) == [("t1", "X"), ("t2", "X")]


@pytest.mark.integration
def test_outbox_batches_are_compressed_with_lz4_where_postgresql_has_it(
    database_url: str,
) -> None:
    engine = create_engine(database_url)
    migrate.upgrade(engine)
    with engine.connect() as conn:
        available = conn.execute(
            sa.text(
                "SELECT count(*) > 0 FROM pg_settings "
                "WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)"
            )
        ).scalar()
        method = conn.execute(
            sa.text(
                "SELECT attcompression FROM pg_attribute "
                "WHERE attrelid = 'outbox_batches'::regclass AND attname = 'messages'"
            )
        ).scalar()
    engine.dispose()
    assert (method == "l") == bool(available)
