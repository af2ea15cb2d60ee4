"""The batch transaction's bulk writes to PostgreSQL, table by table, by each write path.

The rows are those a real batch writes: a `BatchProcessor` (1 target) handles 500 product
events and every bulk write it makes is captured (store/sql.py `bulk_insert`). Then each path of
benchmarks/write_paths.py writes the same rows, timed from the call to its return (Python
encoding included), each write in its own transaction that is then rolled back, so every round
sees the same table: `--preload` stored objects (and their copies) besides the batch's own.
  fresh   the batch's objects are not stored yet (inserts; decisions and processed ids are
          always this case in the worker)
  update  every object is stored at the version before (the version-guarded upserts update)
Rounds interleave the paths; the tables are vacuumed every 50 rounds (rolled-back rows leave
dead tuples). Figures: median ms per write, and the ratio to the recordset path of the same run.

Then (--explain N) PostgreSQL's own planning and execution time of the same writes.

Usage: python benchmarks/bench_writes.py [--rounds N] [--preload N] [--explain N] [--database URL]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import write_paths
from benchmarks.common import connected_targets, fresh_run, service_args
from entity_sync import logs
from entity_sync.handlers.sharing.service import SharingContext
from entity_sync.runtime.batch import BatchProcessor
from entity_sync.store import decisions, migrate, processed, sql
from entity_sync.store import tables as t
from entity_sync.store.engine import create_engine
from tests.support import scenario as sc

BATCH = 500
# Written by a batch of object events at 1 target (the small tables only by admin events).
TABLES = ("source_objects", "target_copies", "decisions", "processed_events")
UPSERTED = ("source_objects", "target_copies")
Captured = dict[str, tuple[write_paths.Rows, dict[str, Any]]]


def _products(prefix: str, start: int, version: int) -> list[sc.Event]:
    return [
        sc.obj(
            "product",
            f"{prefix}-{i}",
            version,
            {"name": f"Product {i} v{version}", "sku": f"SKU-{i}", "description": f"Item {i}"},
        )
        for i in range(start, start + BATCH)
    ]


@contextmanager
def _capturing() -> Iterator[Captured]:
    """Every bulk write of the batches run inside, by table: (rows, keyword arguments)."""
    captured: Captured = {}
    real = sql.bulk_insert

    def record(conn: Any, table: sa.Table, rows: write_paths.Rows, **kw: Any) -> None:
        if rows:
            captured[table.name] = ([dict(r) for r in rows], kw)
        real(conn, table, rows, **kw)

    with pytest.MonkeyPatch.context() as patch:
        for module in (sql, decisions, processed):
            patch.setattr(module, "bulk_insert", record)
        yield captured


def prepare(engine: Engine, preload: int) -> dict[str, Captured]:
    """Stores `preload` objects, then captures an updating batch and a fresh one (whose
    objects and processed ids are then deleted, so its rows are new again)."""
    processor = BatchProcessor(
        engine, SharingContext(sc.GLOBAL), "p.out", max_body_bytes=1 << 20, max_attempts=5
    )
    processor.process([sc.delivery(e) for e in connected_targets(1)])
    for start in range(0, max(preload, BATCH), BATCH):
        processor.process([sc.delivery(e) for e in _products("p", start, 1)])
    with _capturing() as update:
        processor.process([sc.delivery(e) for e in _products("p", 0, 2)])
    fresh_events = _products("f", 0, 1)
    with _capturing() as fresh:
        processor.process([sc.delivery(e) for e in fresh_events])
    with engine.begin() as conn:
        conn.execute(t.source_objects.delete().where(t.source_objects.c.object_id.like("f-%")))
        copies = t.target_copies.c
        conn.execute(t.target_copies.delete().where(copies.source_object_id.like("f-%")))
        ids = [body["event_id"] for _, body in fresh_events]
        conn.execute(t.processed_events.delete().where(t.processed_events.c.event_id.in_(ids)))
    _vacuum(engine)
    # Stored at version 2 by the capture; one version newer, as the next update would be.
    upserts = {
        k: ([{**r, "version": r["version"] + 1} for r in v[0]], v[1])
        for k, v in update.items()
        if k in UPSERTED
    }
    return {"fresh": fresh, "update": upserts}


def _vacuum(engine: Engine) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for name in TABLES:
            conn.execute(sa.text(f'VACUUM ANALYZE "{name}"'))


def _timed(engine: Engine, write: write_paths.Write, table: sa.Table, captured: Any) -> float:
    rows, kw = captured
    with engine.connect() as conn:
        tx = conn.begin()
        start = time.perf_counter()
        write(conn, table, rows, kw.get("on_conflict", "error"), kw.get("newer_only", False))
        elapsed = time.perf_counter() - start
        tx.rollback()
    return elapsed


def explain(engine: Engine, cases: dict[str, Captured], rounds: int) -> None:
    """Where a write's time goes: PostgreSQL's planning and execution (EXPLAIN ANALYZE of
    the same statement), medians; the rest of the write's time is the client and the wire."""
    plans: list[dict[str, Any]] = []

    def prefix(_c: Any, _cur: Any, statement: str, params: Any, *_: Any) -> tuple[str, Any]:
        return f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", params

    def fetch(_c: Any, cursor: Any, *_: Any) -> None:
        plans.append(cursor.fetchone()[0][0])

    print("PostgreSQL's own time, median ms (planning / execution), EXPLAIN ANALYZE:")
    sa.event.listen(engine, "before_cursor_execute", prefix, retval=True)
    sa.event.listen(engine, "after_cursor_execute", fetch)
    try:
        for case, captured in cases.items():
            for name, (rows, kw) in captured.items():
                cells = []
                for path in ("recordset", "unnest %b"):
                    plans.clear()
                    for _ in range(rounds):
                        write = write_paths.PATHS[path]
                        _timed(engine, write, t.metadata.tables[name], (rows, kw))
                    planning = statistics.median(p["Planning Time"] for p in plans)
                    execution = statistics.median(p["Execution Time"] for p in plans)
                    cells.append(f"{path} {planning:5.2f} / {execution:6.2f}")
                print(f"{case:<7} {name:<17} " + "   ".join(cells))
    finally:
        sa.event.remove(engine, "before_cursor_execute", prefix)
        sa.event.remove(engine, "after_cursor_execute", fetch)


def _paths(kw: dict[str, Any]) -> list[str]:
    plain = kw.get("on_conflict", "error") == "error"
    return [p for p in write_paths.PATHS if p != "copy" or plain]


def measure(engine: Engine, cases: dict[str, Captured], rounds: int, warmup: int) -> Any:
    """{case: {table: {path: [seconds per round]}}}"""
    times: dict[str, dict[str, dict[str, list[float]]]] = {}
    for n in range(warmup + rounds):
        if n and n % 50 == 0:
            _vacuum(engine)
        for case, captured in cases.items():
            for name, (rows, kw) in captured.items():
                paths = _paths(kw)
                shift = n % len(paths)  # rotate the order: no path always runs first
                for path in paths[shift:] + paths[:shift]:
                    write = write_paths.PATHS[path]
                    took = _timed(engine, write, t.metadata.tables[name], (rows, kw))
                    if n >= warmup:
                        times.setdefault(case, {}).setdefault(name, {}).setdefault(path, [])
                        times[case][name][path].append(took)
    return times


def report(times: dict[str, dict[str, dict[str, list[float]]]], cases: Any) -> None:
    names = list(write_paths.PATHS)
    print(f"{'case':<7} {'table':<17} {'rows':>5} " + " ".join(f"{p:>18}" for p in names))
    for case, tables in times.items():
        totals = dict.fromkeys(names, 0.0)
        for name, by_path in tables.items():
            base = statistics.median(by_path["recordset"])
            cells = []
            for path in names:
                if path not in by_path:
                    # copy cannot resolve conflicts: its total takes unnest's time here
                    totals[path] += statistics.median(by_path["unnest %b"])
                    cells.append(f"{'-':>18}")
                    continue
                med = statistics.median(by_path[path])
                totals[path] += med
                cells.append(f"{med * 1e3:7.2f} ms ({med / base:5.1%})")
            rows = len(cases[case][name][0])
            print(f"{case:<7} {name:<17} {rows:>5} " + " ".join(cells))
        base = totals["recordset"]
        summed = [f"{v * 1e3:7.2f} ms ({v / base:5.1%})" for v in totals.values()]
        print(f"{case:<7} {'all':<17} {'':>5} " + " ".join(f"{c:>18}" for c in summed))
    print("('all' of copy: copy where it applies, unnest elsewhere)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200, help="median of this many writes")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--preload", type=int, default=10_000, help="objects stored before")
    parser.add_argument("--explain", type=int, default=30, help="EXPLAIN ANALYZE rounds (0: none)")
    service_args(parser)
    args = parser.parse_args()
    logs.configure("warning", "json")
    print(
        f"batch of {BATCH} product events at 1 target, {args.preload} objects stored before; "
        f"median of {args.rounds} writes after {args.warmup} warm-up rounds, each in a "
        "transaction rolled back"
    )
    print("machine: 2 cores shared with RabbitMQ and PostgreSQL (and other work)")
    with fresh_run(args.broker, args.database) as (_prefix, db_url):
        engine = create_engine(db_url)
        migrate.upgrade(engine)
        cases = prepare(engine, args.preload)
        _check(cases)
        report(measure(engine, cases, args.rounds, args.warmup), cases)
        if args.explain:
            explain(engine, cases, args.explain)
        engine.dispose()


def _check(cases: dict[str, Captured]) -> None:
    missing = [n for n in TABLES if n not in cases["fresh"]]
    if missing:
        raise SystemExit(f"the batch wrote no rows to {missing}")


if __name__ == "__main__":
    main()
