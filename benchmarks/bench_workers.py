"""Throughput by worker count: 1, 2 and 4 `entity-sync run` processes on one backlog.

Each run: a fresh queue prefix and PostgreSQL database; the admin events (global entity,
`--targets` connected targets) applied first; then a backlog of `--events` object-shared product
events published with confirms; then N worker processes started together. The rate is events
over the time from the first to the last event applied (so process start-up is not counted).
While they run, pg_stat_activity is sampled every 20 ms: of the samples in which a worker's
backend was inside a transaction, the share waiting on a lock is printed beside the rate.

This machine has 2 cores shared with RabbitMQ and PostgreSQL: more processes than cores cannot
add CPU, so read the ratios with docs/scaling.md's capacity model beside them.

Usage: python benchmarks/bench_workers.py [--events N] [--targets T] [--workers 1,2,4]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
import sqlalchemy as sa
from kombu.connection import Connection

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import connected_targets, fresh_run, service_args, worker_env
from benchmarks.publishing import publish
from entity_sync.bootstrap import build
from entity_sync.config import Settings
from entity_sync.runtime import retry
from entity_sync.runtime.topology import declare
from tests.support import scenario as sc

ENTITY_SYNC = str(Path(sys.executable).with_name("entity-sync"))


@dataclass
class Result:
    workers: int
    rate: float
    lock_share: float
    in_tx_samples: int
    cpu_ms: dict[str, float]  # CPU milliseconds per event: worker, postgres, rabbitmq


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (from /proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime in clock ticks
    return total / os.sysconf("SC_CLK_TCK")


def _pids(name: str) -> list[int]:
    """Processes whose command line starts with `name` (the broker and the database)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "cmdline").read_bytes().split(b"\0")[0].endswith(name.encode()):
                    out.append(int(entry.name))
    return out


def _service_pids() -> dict[str, list[int]]:
    postgres = [
        int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit() and _comm(e) == "postgres"
    ]
    return {"postgres": postgres, "rabbitmq": _pids("beam.smp")}


def _comm(entry: Path) -> str:
    try:
        return (entry / "comm").read_text().strip()
    except OSError:
        return ""


def _processed(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM processed_events")).scalar_one())


class LockSampler:
    """Samples pg_stat_activity: backends of the database in a transaction, and waiting."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.in_tx = 0
        self.waiting = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        sql = sa.text(
            "SELECT count(*) FILTER (WHERE xact_start IS NOT NULL),"
            " count(*) FILTER (WHERE xact_start IS NOT NULL AND wait_event_type = 'Lock')"
            " FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        with self.engine.connect() as conn:
            while not self._stop.wait(0.02):
                in_tx, waiting = conn.execute(sql).one()
                self.in_tx += int(in_tx)
                self.waiting += int(waiting)
                conn.commit()

    def __enter__(self) -> LockSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_workers(broker: str, db_url: str, prefix: str, n: int, events: int, targets: int) -> Result:
    settings = Settings(prefix=prefix, broker_url=broker, database_url=db_url)
    app = build(settings)
    app.upgrade_database()
    with contextlib.closing(app):
        with Connection(broker) as conn:
            declare(conn, app.names, retry.delay_queues(settings))
        admin = connected_targets(targets)
        body = [
            sc.obj("product", f"p-{i}", 1, {"name": f"Product {i}", "sku": f"S{i}"})
            for i in range(events)
        ]
        env = worker_env(broker, db_url, prefix)
        publish(broker, app.names.in_exchange, [(rk, orjson.dumps(b)) for rk, b in admin])
        first = subprocess.Popen([ENTITY_SYNC, "run"], env=env)
        deadline = time.monotonic() + 120
        while _processed(app.engine) < len(admin) and time.monotonic() < deadline:
            time.sleep(0.05)
        first.terminate()
        first.wait(60)
        publish(broker, app.names.in_exchange, [(rk, orjson.dumps(b)) for rk, b in body])
        total = len(admin) + events
        procs = [subprocess.Popen([ENTITY_SYNC, "run"], env=env) for _ in range(n)]
        try:
            with LockSampler(app.engine) as sampler:
                while _processed(app.engine) == len(admin):
                    time.sleep(0.005)
                start = time.monotonic()
                services = _service_pids()  # now: the workers' database backends exist
                cpu_before = {
                    "worker": _cpu_seconds([p.pid for p in procs]),
                    **{k: _cpu_seconds(v) for k, v in services.items()},
                }
                deadline = start + 900
                while _processed(app.engine) < total and time.monotonic() < deadline:
                    time.sleep(0.01)
                elapsed = time.monotonic() - start
                cpu_after = {
                    "worker": _cpu_seconds([p.pid for p in procs]),
                    **{k: _cpu_seconds(v) for k, v in services.items()},
                }
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(60)
        with app.engine.connect() as conn:
            copies = conn.execute(sa.text("SELECT count(*) FROM target_copies")).scalar_one()
        if copies != events * targets:
            raise SystemExit(f"{n} workers: expected {events * targets} copies, found {copies}")
    share = sampler.waiting / sampler.in_tx if sampler.in_tx else 0.0
    cpu_ms = {k: 1000 * (cpu_after[k] - cpu_before[k]) / events for k in cpu_before}
    return Result(n, events / elapsed, share, sampler.in_tx, cpu_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--targets", type=int, default=3)
    parser.add_argument("--workers", default="1,2,4")
    service_args(parser)
    args = parser.parse_args()
    counts = [int(x) for x in args.workers.split(",")]
    print(
        f"{args.events} product events to {args.targets} targets, processes "
        f"{counts}, on {os.cpu_count()} cores shared with RabbitMQ and PostgreSQL"
    )
    results: list[Result] = []
    for n in counts:
        with fresh_run(args.broker, args.database) as (prefix, db_url):
            result = run_workers(args.broker, db_url, prefix, n, args.events, args.targets)
        results.append(result)
        print(
            f"  {n} worker(s): {result.rate:8,.0f} events/s "
            f"({result.rate * args.targets:,.0f} target updates/s), "
            f"lock waits {result.lock_share:5.1%} of {result.in_tx_samples} in-transaction samples",
            flush=True,
        )
    base = results[0].rate
    print("workers  events/s  ratio to 1  lock-wait share  CPU ms/event: worker postgres rabbitmq")
    for r in results:
        cpu = r.cpu_ms
        print(
            f"{r.workers:>7}  {r.rate:8,.0f}  {r.rate / base:10.2f}  {r.lock_share:15.1%}"
            f"  {cpu['worker']:27.3f} {cpu['postgres']:8.3f} {cpu['rabbitmq']:8.3f}"
        )
    one = results[0].cpu_ms
    print(
        "capacity model (events/s one core of each gives, from the 1-worker CPU cost): "
        + ", ".join(f"{k} {1000 / v:,.0f}" for k, v in one.items() if v > 0)
    )


if __name__ == "__main__":
    main()
