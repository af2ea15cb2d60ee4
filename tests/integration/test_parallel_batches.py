"""No global lock: batches of different objects commit in parallel; batches of the same object
end in the newest version whatever their order; admin events wait for (and are waited for by)
object batches, so no update slips past a new connection; one event delivered to two batches
at once is applied by one. Real PostgreSQL, two transactions."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa

from entity_sync.handlers.sharing.service import SharingContext
from entity_sync.runtime.batch import BatchProcessor, BatchResult
from entity_sync.runtime.envelope import Envelope
from entity_sync.store import migrate
from entity_sync.store import tables as t
from entity_sync.store.engine import create_engine
from tests.support import scenario as sc
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


class Held(BatchProcessor):
    """Holds its transaction open, rows written and locked, until released."""

    def __init__(self, engine: sa.Engine) -> None:
        super().__init__(engine, SharingContext("global"), "p.out", max_body_bytes=1 << 20,
                         max_attempts=5)  # fmt: skip
        self.holding = threading.Event()
        self.release = threading.Event()

    def written(self, envelopes: list[Envelope]) -> None:
        self.holding.set()
        assert self.release.wait(60), "the test never released the transaction"


def _plain(engine: sa.Engine) -> BatchProcessor:
    return BatchProcessor(engine, SharingContext("global"), "p.out", max_body_bytes=1 << 20,
                          max_attempts=5)  # fmt: skip


@contextmanager
def _in_thread(work: Callable[[], BatchResult]) -> Iterator[list[BatchResult]]:
    out: list[BatchResult] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            out.append(work())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield out
    finally:
        thread.join(60)
        if errors:
            raise errors[0]
        assert not thread.is_alive(), "a batch never finished"


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(database_url)
    migrate.upgrade(engine)
    _plain(engine).process(
        [
            sc.delivery(e)
            for e in (
                sc.entity("global", ["USD"]),
                sc.entity("t-a", ["USD"]),
                sc.entity("t-b", ["USD"]),
                sc.connection("c-a", "t-a", "request"),
                sc.connection("c-a", "t-a", "accept"),
            )
        ]
    )
    yield engine
    engine.dispose()


def _source(engine: sa.Engine, object_id: str) -> tuple[int, dict[str, Any]] | None:
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(t.source_objects.c.version, t.source_objects.c.data).where(
                t.source_objects.c.object_id == object_id
            )
        ).first()
    return (row.version, row.data) if row else None


def _copies(engine: sa.Engine, object_id: str) -> dict[str, tuple[int, dict[str, Any]]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.target_copies).where(t.target_copies.c.source_object_id == object_id)
        ).all()
    return {r.target_entity: (r.version, r.data) for r in rows}


def _waiting_on_a_lock(engine: sa.Engine) -> bool:
    """A backend of this database waits on a lock (advisory or a row's transaction)."""
    sql = (
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    with engine.connect() as conn:
        return bool(conn.execute(sa.text(sql)).scalar())


def test_a_batch_of_another_object_commits_while_one_is_held_open(engine: sa.Engine) -> None:
    held = Held(engine)
    x = sc.obj("product", "p-x", 1, {"name": "x", "sku": "x1"})
    y = sc.obj("product", "p-y", 1, {"name": "y", "sku": "y1"})
    with _in_thread(lambda: held.process([sc.delivery(x)])):
        assert held.holding.wait(30), "the first batch never reached its commit"
        with _in_thread(lambda: _plain(engine).process([sc.delivery(y)])) as second:
            wait_for(
                lambda: bool(second),
                timeout=30,
                what="the batch of p-y to commit while p-x is held open",
                status=lambda: {"waiting on a lock": _waiting_on_a_lock(engine)},
            )
        assert _source(engine, "p-y") == (1, {"name": "y", "sku": "y1"})
        assert _source(engine, "p-x") is None  # still uncommitted
        assert second[0].lock_wait_seconds < 5
        held.release.set()
    assert _source(engine, "p-x") == (1, {"name": "x", "sku": "x1"})
    assert set(_copies(engine, "p-y")) == {"t-a"}


@pytest.mark.parametrize(("first", "second"), [(3, 2), (2, 3)])
def test_two_versions_of_one_object_at_once_end_in_the_newest(
    engine: sa.Engine, first: int, second: int
) -> None:
    _plain(engine).process([sc.delivery(sc.obj("product", "p-z", 1, {"name": "z", "sku": "v1"}))])
    held = Held(engine)
    newer = sc.obj("product", "p-z", first, {"name": "z", "sku": f"v{first}"})
    older = sc.obj("product", "p-z", second, {"name": "z", "sku": f"v{second}"})
    with _in_thread(lambda: held.process([sc.delivery(newer)])):
        assert held.holding.wait(30)
        with _in_thread(lambda: _plain(engine).process([sc.delivery(older)])):
            wait_for(lambda: _waiting_on_a_lock(engine), timeout=30, what="the row lock wait")
            held.release.set()
    assert _source(engine, "p-z") == (3, {"name": "z", "sku": "v3"})
    assert _copies(engine, "p-z")["t-a"][0] == 3
    assert _copies(engine, "p-z")["t-a"][1]["sku"] == "v3"


def test_an_object_event_waits_for_an_accept_and_reaches_the_new_target(
    engine: sa.Engine,
) -> None:
    _plain(engine).process([sc.delivery(sc.connection("c-b", "t-b", "request"))])
    held = Held(engine)
    accept = sc.connection("c-b", "t-b", "accept")  # backfills t-b with what it sees
    new = sc.obj("product", "p-new", 1, {"name": "n", "sku": "n1"})
    with _in_thread(lambda: held.process([sc.delivery(accept)])):
        assert held.holding.wait(30)
        with _in_thread(lambda: _plain(engine).process([sc.delivery(new)])) as objects:
            wait_for(lambda: _waiting_on_a_lock(engine), timeout=30, what="the admin lock wait")
            held.release.set()
    assert set(_copies(engine, "p-new")) == {"t-a", "t-b"}  # nothing slipped past the accept
    assert objects[0].lock_wait_seconds > 0


def test_one_event_in_two_batches_at_once_is_applied_by_one(engine: sa.Engine) -> None:
    """A redelivery while the first delivery's batch is still open (two workers): the second
    waits for the first's claim of the event id and counts a duplicate, with no output."""
    held = Held(engine)
    event = sc.obj("product", "p-d", 1, {"name": "d", "sku": "d1"})
    with _in_thread(lambda: held.process([sc.delivery(event)])) as first:
        assert held.holding.wait(30)
        with _in_thread(lambda: _plain(engine).process([sc.delivery(event)])) as second:
            wait_for(lambda: _waiting_on_a_lock(engine), timeout=30, what="the claim's wait")
            held.release.set()
    assert first[0].fates["applied"] == 1
    assert second[0].fates["duplicate"] == 1
    assert second[0].fates["applied"] == 0
    assert second[0].publish == []
    assert _copies(engine, "p-d")["t-a"][0] == 1
