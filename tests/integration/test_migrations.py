"""The migrations build exactly the schema of worker/db/tables.py, on both backends."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from worker.db import migrate
from worker.db import tables as t
from worker.db.engine import create_engine


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
