"""Bulk fan-outs run in chunks: an accept's backfill and a currency release, each chunk
committed with its outputs and cursor; a crash resumes at the cursor without redoing finished
chunks or changing ids; a disconnect cancels the rest. PostgreSQL and SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from entity_sync.handlers.sharing import ids
from entity_sync.handlers.sharing.service import SharingContext
from entity_sync.operations.cli.main import cli
from entity_sync.runtime import outbox
from entity_sync.runtime.batch import BatchProcessor, BatchResult
from entity_sync.runtime.broker import OutMessage
from entity_sync.runtime.bulk import BulkRunner
from entity_sync.store import migrate
from entity_sync.store import tables as t
from entity_sync.store.engine import create_engine
from tests.support import scenario as sc

TREES = 7  # 21 objects: products, rate plans, charges
CHUNK = 4


class Published:
    """A publisher fake: records what was published, or dies before publishing (a crash)."""

    def __init__(self) -> None:
        self.messages: list[OutMessage] = []
        self.die = False

    def publish_many(self, messages: list[OutMessage], *, wait: bool = True) -> None:
        if self.die:
            raise SystemExit("the worker died after its commit, before publishing")
        self.messages.extend(messages)


@pytest.fixture
def engine(state_db_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(state_db_url)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


def _apply(engine: sa.Engine, *events: sc.Event) -> BatchResult:
    processor = BatchProcessor(engine, SharingContext("global"), "p.out", max_body_bytes=1 << 20,
                               max_attempts=5)  # fmt: skip
    result = processor.process([sc.delivery(e) for e in events])
    assert result.fates["applied"] == len(events), result.fates
    return result


def _catalog(engine: sa.Engine) -> list[tuple[str, str]]:
    _apply(
        engine,
        sc.entity("global", ["USD", "EUR"]),
        sc.entity("t-a", ["USD"]),
        sc.entity("t-b", ["USD"]),
        sc.connection("c-a", "t-a", "request"),
        sc.connection("c-a", "t-a", "accept"),
        sc.connection("c-b", "t-b", "request"),
    )
    charge = {"charge_model": "flat_fee", "billing_timing": "in_advance",
              "prices": {"USD": "1.00", "EUR": "0.90"}}  # fmt: skip
    objects: list[sc.Event] = []
    for k in range(TREES):
        objects += [
            sc.obj("product", f"P{k}", 1, {"name": f"P{k}", "sku": f"S{k}"}),
            sc.obj("product_rate_plan", f"R{k}", 1, {"name": f"R{k}"}, parent=f"P{k}"),
            sc.obj("product_rate_plan_charge", f"C{k}", 1, {"name": f"C{k}", **charge}, f"R{k}"),
        ]
    _apply(engine, *objects)
    runner = _runner(engine)
    while runner.step(Published()):  # t-a's backfill (of an empty catalog) finishes
        pass
    with engine.begin() as conn:  # as after the worker published and acked all of it
        conn.execute(t.bulk_jobs.delete())
        conn.execute(t.outbox_batches.delete())
    return [(body["object_type"], body["object_id"]) for _, body in objects]


def _versions(engine: sa.Engine) -> list[tuple[str, str, str]]:
    """(object type, id, the event that made its current version) of every source object."""
    c = t.source_objects.c
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(c.object_type, c.object_id, c.event_id))]


def _job(engine: sa.Engine) -> dict[str, object]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(t.bulk_jobs)).one()._mapping)


def _runner(engine: sa.Engine) -> BulkRunner:
    return BulkRunner(engine, SharingContext("global"), "p.out", chunk_size=CHUNK)


def test_a_backfill_runs_in_chunks_and_resumes_after_a_crash_with_the_same_ids(
    engine: sa.Engine, state_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = _catalog(engine)
    assert _apply(engine, sc.connection("c-b", "t-b", "accept")).jobs_created == 1
    assert (_job(engine)["status"], _job(engine)["total"], _job(engine)["done"]) == (
        "running",
        len(objects),
        0,
    )
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.target_copies).where(
            t.target_copies.c.target_entity == "t-b")).scalar() == 0  # fmt: skip

    out = Published()
    runner = _runner(engine)
    assert runner.step(out)
    assert runner.step(out)
    assert _job(engine)["done"] == 2 * CHUNK
    monkeypatch.setenv("ENTITY_SYNC_DATABASE_URL", state_db_url)
    monkeypatch.setenv("ENTITY_SYNC_DATA_DIR", str(tmp_path))  # the embedded broker, unused
    shown = CliRunner().invoke(cli, ["status", "--json"], catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    [running] = orjson.loads(shown.output)["bulk_fan_outs"]
    assert (running["kind"], running["target_entity"]) == ("backfill", "t-b")
    assert (running["done"], running["total"]) == (2 * CHUNK, len(objects))
    before_crash = len(out.messages)
    out.die = True
    with pytest.raises(SystemExit):
        runner.step(out)  # committed the third chunk, died before publishing it
    stranded = outbox.pending(engine, "p.out", older_than_seconds=-60).messages
    assert len(stranded) == CHUNK  # the relay publishes these later, with these ids
    out.die = False
    restarted = _runner(engine)
    steps = 0
    while restarted.step(out):
        steps += 1
    assert steps == -(-(len(objects) - 3 * CHUNK) // CHUNK)  # only the chunks not yet done
    assert _job(engine)["status"] == "finished"
    assert _job(engine)["done"] == len(objects)

    bodies = [m.body for m in out.messages]
    bodies[before_crash:before_crash] = [m.body for m in stranded]  # in the order of chunks
    sent = [orjson.loads(b) for b in bodies]
    order = [(b["object_type"], b["source_object_id"]) for b in sent]
    kinds = [o[0] for o in order]
    assert sorted(order) == sorted(objects)  # each object once: no chunk redone
    assert kinds == sorted(kinds, key=["product", "product_rate_plan",
                                       "product_rate_plan_charge"].index)  # fmt: skip
    # Each update's id: the event that made the version, the connection and the object, so the
    # resumed run gave the ids the uninterrupted one would have.
    made_by = {(ot, oid): eid for ot, oid, eid in _versions(engine)}
    assert {b["event_id"] for b in sent} == {
        ids.output_event_id(made_by[(ot, oid)], "c-b", ot, oid) for ot, oid in objects
    }
    assert {b["cause_event_id"] for b in sent} == set(made_by.values())


def test_a_currency_release_runs_in_chunks_over_the_targets_charges(engine: sa.Engine) -> None:
    _catalog(engine)
    activation = sc.entity("t-a", ["USD", "EUR"])
    assert _apply(engine, activation).jobs_created == 1
    assert _job(engine)["total"] == TREES  # the charge copies of t-a
    out = Published()
    runner = _runner(engine)
    while runner.step(out):
        pass
    released = [orjson.loads(m.body) for m in out.messages]
    assert len(released) == TREES
    assert all(b["data"]["prices"] == {"USD": "1.00", "EUR": "0.90"} for b in released)
    assert all(b["changed"] == ["prices"] for b in released)
    assert _job(engine)["status"] == "finished"


def test_a_disconnect_cancels_the_rest_of_a_backfill(engine: sa.Engine) -> None:
    _catalog(engine)
    _apply(engine, sc.connection("c-b", "t-b", "accept"))
    out = Published()
    runner = _runner(engine)
    assert runner.step(out)
    _apply(engine, sc.connection("c-b", "t-b", "disconnect"))
    runner.wake()
    assert runner.step(out)  # finds the job, sees the disconnect, cancels it
    assert not runner.step(out)
    assert len(out.messages) == CHUNK
    assert _job(engine)["status"] == "cancelled"
