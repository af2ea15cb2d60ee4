"""Sync sessions and locks in the state database, on PostgreSQL and SQLite alike."""

from __future__ import annotations

import datetime as dt

from entity_sync.schemas.inputs import SyncRequest
from entity_sync.store import migrate
from entity_sync.store.engine import create_engine
from entity_sync.store.sync_store import DbSyncLocks, DbSyncStore


def test_one_holder_at_a_time_and_expired_locks_are_taken_over(state_db_url: str) -> None:
    engine = create_engine(state_db_url)
    migrate.upgrade(engine)
    first, second = DbSyncLocks(engine), DbSyncLocks(engine)  # two workers
    assert first.try_acquire("billing_account:a", ttl_seconds=60)
    assert not second.try_acquire("billing_account:a", ttl_seconds=60)
    assert second.try_acquire("billing_account:b", ttl_seconds=60)
    first.release("billing_account:a")
    assert second.try_acquire("billing_account:a", ttl_seconds=60)
    assert first.try_acquire("product:c", ttl_seconds=-1)  # a crashed holder's lock expired
    assert second.try_acquire("product:c", ttl_seconds=60)
    engine.dispose()


def test_sessions_are_kept_then_pruned(state_db_url: str) -> None:
    engine = create_engine(state_db_url)
    migrate.upgrade(engine)
    store = DbSyncStore(engine, retention_days=7)
    now = dt.datetime.now(dt.UTC)
    for request_id, age_days in (
        ("6f7a8b9c-0d1e-4f2a-8b3c-4d5e6f7a8b08", 9),
        ("7f7a8b9c-0d1e-4f2a-8b3c-4d5e6f7a8b08", 1),
    ):
        finished = now - dt.timedelta(days=age_days)
        request = SyncRequest.model_validate(
            {
                "request_id": request_id,
                "object_type": "product",
                "zuora_ids": ["a" * 32],
                "origin": "api",
                "requested_by": "t",
                "requested_at": finished.isoformat(),
            }
        )
        store.save(
            {
                "request_id": request_id,
                "status": "finished",
                "results": [],
                "started_at": finished.isoformat(),
                "finished_at": finished.isoformat(),
            },
            request=request,
        )
    assert store.get("6f7a8b9c-0d1e-4f2a-8b3c-4d5e6f7a8b08") is None  # older than 7 days
    kept = store.get("7f7a8b9c-0d1e-4f2a-8b3c-4d5e6f7a8b08")
    assert kept is not None
    assert kept["status"] == "finished"
    assert [s["request_id"] for s in store.recent()] == ["7f7a8b9c-0d1e-4f2a-8b3c-4d5e6f7a8b08"]
    engine.dispose()
