"""Processed event ids are forgotten after the retention, on PostgreSQL and SQLite."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from entity_sync.store import migrate
from entity_sync.store import tables as t
from entity_sync.store.engine import create_engine
from entity_sync.store.processed import claim, prune_processed


def test_old_event_ids_are_pruned_and_recent_ones_kept(state_db_url: str) -> None:
    engine = create_engine(state_db_url)
    migrate.upgrade(engine)
    ids = [f"00000000-0000-4000-8000-{n:012d}" for n in range(5)]
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        assert claim(conn, [(i, "q") for i in ids]) == set(ids)
        conn.execute(
            t.processed_events.update()
            .where(t.processed_events.c.event_id.in_(ids[:3]))
            .values(processed_at=now - dt.timedelta(days=40))
        )
    with engine.begin() as conn:
        assert prune_processed(conn, now - dt.timedelta(days=30), limit=2) == 2  # a chunk
        assert prune_processed(conn, now - dt.timedelta(days=30)) == 1
        assert prune_processed(conn, now - dt.timedelta(days=30)) == 0
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(t.processed_events)).scalar() == 2
        )
        # The forgotten ids are new again; the kept ones are still duplicates.
        assert claim(conn, [(i, "q") for i in ids]) == set(ids[:3])
    engine.dispose()
