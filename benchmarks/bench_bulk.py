"""Bulk fan-outs against the steady stream, in one run: backfill and currency release.

For each catalog size N (objects: N/4 products, each with a rate plan and two charges priced in
USD and EUR), one `entity-sync run` process against a fresh queue prefix and PostgreSQL database:
  stream    N object-shared events to one connected target (events/s)
  backfill  a second target accepted: every object offered to it (objects/s)
  release   EUR activated on the first target: withheld prices sent on N/2 charges (charges/s)
and the worker's peak RSS during each phase (VmHWM, reset before the phase).

This machine has 2 cores shared with RabbitMQ and PostgreSQL: compare the rows of one run.

Usage: python benchmarks/bench_bulk.py [--objects 10000,100000] [--chunk 1000] [--trials 3]
Each trial prints its rows; then the median of the trials (the ratio of each trial to its own
stream, then the median of those) and the highest peak RSS.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import orjson
import sqlalchemy as sa
from kombu.connection import Connection

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import fresh_run, service_args, worker_env
from benchmarks.publishing import publish
from entity_sync.bootstrap import build
from entity_sync.config import Settings
from entity_sync.runtime import retry
from entity_sync.runtime.topology import declare
from tests.support import scenario as sc

ENTITY_SYNC = str(Path(sys.executable).with_name("entity-sync"))
Phases = dict[str, tuple[float, float, float, float]]  # seconds, per s, vs stream, RSS MiB


def _catalog(objects: int) -> list[sc.Event]:
    charge = {"charge_model": "flat_fee", "billing_timing": "in_advance"}
    out: list[sc.Event] = []
    for k in range(objects // 4):
        out.append(sc.obj("product", f"P{k}", 1, {"name": f"Product {k}", "sku": f"S{k}"}))
        out.append(sc.obj("product_rate_plan", f"R{k}", 1, {"name": f"Plan {k}"}, f"P{k}"))
        for c in "ab":
            prices = {"USD": f"{k}.00", "EUR": f"{k}.50"}
            data = {"name": f"Charge {k}{c}", **charge, "prices": prices}
            out.append(sc.obj("product_rate_plan_charge", f"C{k}{c}", 1, data, f"R{k}"))
    return out


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS


def _scalar(engine: sa.Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(sql)).scalar_one() or 0)


def _wait(what: str, done: object, limit: float = 1800) -> float:
    start = time.monotonic()
    while not done():  # type: ignore[operator]
        if time.monotonic() - start > limit:
            raise SystemExit(f"{what}: not done after {limit} s")
        time.sleep(0.02)
    return time.monotonic() - start


def run_size(broker: str, db_url: str, prefix: str, objects: int, chunk: int) -> dict[str, float]:
    settings = Settings(prefix=prefix, broker_url=broker, database_url=db_url)
    app = build(settings)
    app.upgrade_database()
    engine = app.engine
    with Connection(broker) as conn:
        declare(conn, app.names, retry.delay_queues(settings))
    env = worker_env(broker, db_url, prefix, ENTITY_SYNC_BULK_CHUNK_SIZE=str(chunk))
    worker = subprocess.Popen([ENTITY_SYNC, "run"], env=env)
    out: dict[str, float] = {}
    try:
        admin = [
            sc.entity(sc.GLOBAL, ["USD", "EUR"]),
            sc.entity("t-1", ["USD"]),
            sc.entity("t-2", ["USD"]),
            sc.connection("c-1", "t-1", "request"),
            sc.connection("c-1", "t-1", "accept"),
            sc.connection("c-2", "t-2", "request"),
        ]
        events = [(rk, orjson.dumps(b)) for rk, b in _catalog(objects)]

        def finished() -> bool:
            return _scalar(engine, "SELECT count(*) FROM bulk_jobs WHERE status = 'running'") == 0

        publish(broker, app.names.in_exchange, [(rk, orjson.dumps(b)) for rk, b in admin])
        _wait(
            "admin",
            lambda: _scalar(engine, "SELECT count(*) FROM processed_events") == 6 and finished(),
        )
        total = len(admin) + len(events)
        out["stream_s"] = _stream(broker, app.names.in_exchange, events, worker, engine, total)
        out["stream_rss"] = _peak_rss_mib(worker.pid)

        for phase, event in (
            ("backfill", sc.connection("c-2", "t-2", "accept")),
            ("release", sc.entity("t-1", ["USD", "EUR"])),
        ):
            _wait("jobs", finished)
            _reset_peak(worker.pid)
            publish(broker, app.names.in_exchange, [(event[0], orjson.dumps(event[1]))])
            out[f"{phase}_s"] = _wait(phase, lambda e=event: _applied(engine, e) and finished())
            out[f"{phase}_rss"] = _peak_rss_mib(worker.pid)
        copies = _scalar(engine, "SELECT count(*) FROM target_copies WHERE target_entity='t-2'")
        if copies != objects:
            raise SystemExit(f"backfill: expected {objects} copies in t-2, found {copies}")
    finally:
        worker.terminate()
        worker.wait(60)
        app.close()
    return out


def _stream(
    broker: str,
    exchange: str,
    events: list[tuple[str, bytes]],
    worker: subprocess.Popen[bytes],
    engine: sa.Engine,
    total: int,
) -> float:
    """Seconds to apply `events`, timed as bench_throughput times the stream: they wait in the
    queue (the worker paused meanwhile, well within its heartbeat timeout) and the clock runs
    from the moment it goes on. Timed from the end of publishing while it already consumed,
    the stream looked faster than it is, and the bulk phases slower next to it."""
    worker.send_signal(signal.SIGSTOP)
    try:
        publish(broker, exchange, events)
    finally:
        worker.send_signal(signal.SIGCONT)
    _reset_peak(worker.pid)
    return _wait(
        "stream", lambda: _scalar(engine, "SELECT count(*) FROM processed_events") == total
    )


def _applied(engine: sa.Engine, event: sc.Event) -> bool:
    sql = f"SELECT count(*) FROM processed_events WHERE event_id = '{event[1]['event_id']}'"
    return _scalar(engine, sql) == 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", default="10000,100000")
    parser.add_argument("--chunk", type=int, default=1000)
    parser.add_argument("--trials", type=int, default=3, help="median of this many runs per N")
    service_args(parser)
    args = parser.parse_args()
    print(
        f"chunk {args.chunk}; {os.cpu_count()} cores shared with RabbitMQ and PostgreSQL; "
        "rates per object, peak RSS of the worker during each phase"
    )
    print(
        f"{'objects':>13}  {'phase':<9} {'seconds':>8} {'per s':>8} {'vs stream':>9} {'RSS MiB':>8}"
    )
    for objects in [int(x) for x in args.objects.split(",")]:
        trials: list[Phases] = []
        for _ in range(args.trials):
            with fresh_run(args.broker, args.database) as (prefix, db_url):
                r = run_size(args.broker, db_url, prefix, objects, args.chunk)
                trials.append(_phases(objects, r))
            _print_rows(str(objects), trials[-1])
        if args.trials > 1:
            _print_rows(f"median {objects}", _median(trials))


def _median(trials: list[Phases]) -> Phases:
    """Median seconds, rate and ratio (each trial's ratio is to its own stream: the host's
    speed moves between runs), and the highest peak RSS."""
    out: Phases = {}
    for phase in trials[0]:
        seconds, rate, ratio = (statistics.median(t[phase][i] for t in trials) for i in range(3))
        out[phase] = (seconds, rate, ratio, max(t[phase][3] for t in trials))
    return out


def _phases(objects: int, r: dict[str, float]) -> Phases:
    """Per phase: seconds, objects per second, ratio to the stream, peak RSS."""
    stream = objects / r["stream_s"]
    out: Phases = {}
    for phase, count in (("stream", objects), ("backfill", objects), ("release", objects // 2)):
        rate = count / r[f"{phase}_s"]
        out[phase] = (r[f"{phase}_s"], rate, rate / stream, r[f"{phase}_rss"])
    return out


def _print_rows(label: str, phases: Phases) -> None:
    for phase, (seconds, rate, ratio, rss) in phases.items():
        print(
            f"{label:>13}  {phase:<9} {seconds:8.1f} {rate:8,.0f} {ratio:9.2f} {rss:8.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
