"""Throughput of the sharing worker against the raw kombu consume-and-ack rate.

All three figures come from one run against the same RabbitMQ and PostgreSQL:
  raw      kombu consumer, prefetch as configured, one ack per message, nothing else
  1 target the worker end to end: decode, rules, one transaction per batch, outbox,
           confirmed publish of one update per event, ack
  10 targets the same with every event fanned out to 10 connected targets

Usage: python benchmarks/bench_throughput.py [--events N] [--broker URL] [--database URL]
Queues use a fresh prefix and the state a fresh PostgreSQL database; both are removed after.
"""

from __future__ import annotations

import argparse
import functools
import gc
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from kombu.connection import Connection
from kombu.entity import Queue
from kombu.messaging import Consumer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import connected_targets, fresh_run, service_args
from benchmarks.publishing import publish
from entity_sync import logs as wlog
from entity_sync.bootstrap import build
from entity_sync.config import Settings
from entity_sync.runtime import retry
from entity_sync.runtime.consumer import Worker
from entity_sync.runtime.topology import DELIVERY_LIMIT, Names, declare, input_queues
from entity_sync.store import tables as t
from entity_sync.store.jobs import running_jobs
from tests.support import scenario as sc


def raw_rate(url: str, prefix: str, n: int, prefetch: int) -> float:
    names = Names(prefix)
    queue = input_queues(names, rabbit=True)[1]  # same arguments as object-shared
    raw = Queue(f"{prefix}.raw", durable=True, queue_arguments=queue.queue_arguments)  # type: ignore[attr-defined]
    with Connection(url) as conn:
        raw(conn.default_channel).declare()
    body = orjson.dumps(sc.obj("product", "p-0", 1, {"name": "x", "sku": "s"})[1])
    publish(url, "", [(raw.name, body)] * n)
    got = 0
    with Connection(url) as conn:
        channel = conn.channel()

        def on_message(message: object) -> None:
            nonlocal got
            message.ack()  # type: ignore[attr-defined]
            got += 1

        consumer = Consumer(
            channel,
            queues=[raw],
            on_message=on_message,
            prefetch_count=prefetch,
            auto_declare=False,
        )
        consumer.consume()
        start = time.perf_counter()
        while got < n:
            conn.drain_events(timeout=10)
        elapsed = time.perf_counter() - start
        channel.queue_delete(raw.name)
    return n / elapsed


def worker_rate(args: argparse.Namespace, db_url: str, prefix: str, targets: int) -> float:
    url, n, prefetch, batch = args.broker, args.events, args.prefetch, args.batch
    settings = Settings(
        prefix=prefix,
        broker_url=url,
        database_url=db_url,
        prefetch=prefetch,
        batch_size=batch,
        log_level="warning",
        log_format="json",
    )
    app = build(settings)
    app.upgrade_database()
    with Connection(url) as conn:
        declare(conn, app.names, retry.delay_queues(settings))
    admin = connected_targets(targets)
    events = [
        sc.obj("product", f"p-{i}", 1, {"name": f"Product {i}", "sku": f"S{i}"}) for i in range(n)
    ]
    publish(url, app.names.in_exchange, [(rk, orjson.dumps(b)) for rk, b in admin])
    setup = app.sharing_worker()
    _run_until(setup, lambda: setup.stats.fates["applied"] >= len(admin), app.engine)
    # Like the raw baseline: the events wait in the queue, and the clock runs from the moment
    # the worker consumes to its last ack. (Timing from the end of publishing while the worker
    # already consumed during it overstated the rate.)
    publish(url, app.names.in_exchange, [(rk, orjson.dumps(b)) for rk, b in events])
    worker = app.sharing_worker()
    gc.collect()
    gc.freeze()  # as `entity-sync run` does before consuming
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 600
    while not worker.ready.is_set() and time.monotonic() < deadline:
        time.sleep(0.001)
    assert thread.ident is not None
    clock = time.pthread_getcpuclockid(thread.ident)  # the worker thread's own CPU time
    cpu = time.clock_gettime(clock)
    while worker.stats.fates["applied"] < n and time.monotonic() < deadline:
        time.sleep(0.01)
    start, end = worker.stats.consuming_since, worker.stats.last_batch_at
    cpu = time.clock_gettime(clock) - cpu
    worker.stop()
    thread.join(timeout=60)
    with app.engine.connect() as conn:
        copies = conn.execute(sa.select(sa.func.count()).select_from(t.target_copies)).scalar()
    if copies != n * targets or worker.stats.fates["applied"] != n:
        _diagnose(app, settings, worker, events)
        app.close()
        raise SystemExit(
            f"expected {n * targets} copies, found {copies}; "
            f"{worker.stats.fates['applied']} of {n} events applied"
        )
    app.close()
    # Less sensitive than the rate to what else runs on the cores: CPU, not wall-clock time.
    print(f"    worker thread CPU {cpu / n * 1e6:,.0f} ms per 1,000 events", flush=True)
    return float(n / (end - start))


def _diagnose(app: Any, settings: Settings, worker: Worker, events: list[sc.Event]) -> None:
    """Where did the events go? Fates, queue depths, input events kept in `unrouted`, and the
    event ids the worker recorded as processed against those published."""
    names = app.names
    st = worker.stats
    fates = {str(k): v for k, v in st.fates.items()}
    print(
        f"    DIAGNOSIS fates {fates}, reconnects {st.reconnects} (each returns the "
        f"unacked deliveries: x-delivery-limit dead-letters after {DELIVERY_LIMIT}), "
        f"db_waits {st.db_waits}, contention_retries {st.contention_retries}",
        flush=True,
    )
    queue = names.object_shared
    depth: dict[str, object] = {}
    with Connection(settings.broker_url) as conn:
        watched = [queue, names.dlq(queue), names.unrouted]
        watched += [names.retry_queue(queue, d) for d in retry.delay_queues(settings)[queue]]
        for name in watched:
            try:
                with conn.channel() as ch:
                    _, count, consumers = ch.queue_declare(name, passive=True)
                depth[name] = (count, consumers)
            except Exception as exc:  # noqa: BLE001 - a diagnostic
                depth[name] = f"absent: {exc!r}"
        print(f"    DIAGNOSIS queue depths (ready, consumers) {depth}", flush=True)
        # Input events in unrouted (it also holds every output to an unbound target): browse
        # without acking; closing the channel requeues them.
        kept: Counter[str] = Counter()
        with conn.channel() as ch:
            ch.basic_qos(0, 5000, False)

            def on_message(msg: Any) -> None:
                kept[msg.delivery_info["routing_key"].split(".")[0]] += 1

            ch.basic_consume(names.unrouted, callback=on_message)
            while True:
                try:
                    conn.drain_events(timeout=2)
                except TimeoutError:
                    break
        print(f"    DIAGNOSIS unrouted by routing key head {dict(kept)}", flush=True)
    published = {body["event_id"] for _, body in events}
    with app.engine.connect() as c:
        rows = c.execute(sa.select(t.processed_events.c.event_id, t.processed_events.c.queue))
        seen = {eid for eid, q in rows if q == queue}
        failed = c.execute(sa.select(sa.func.count()).select_from(t.failed_messages)).scalar()
    missing = published - seen
    print(
        f"    DIAGNOSIS published {len(published)} distinct event ids, "
        f"processed {len(seen & published)}, missing {len(missing)} "
        f"(e.g. {sorted(missing)[:3]}), failed_messages rows {failed}",
        flush=True,
    )


def _run_until(worker: Worker, done: Callable[[], bool], engine: sa.engine.Engine) -> None:
    """Set-up: the worker handles the admin events and their (empty) backfills, then stops."""
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not done() and time.monotonic() < deadline:
        time.sleep(0.05)
    _wait_for_bulk_jobs(engine, deadline)
    worker.stop()
    thread.join(timeout=60)


def _wait_for_bulk_jobs(engine: sa.engine.Engine, deadline: float) -> None:
    """The accepts' backfills (of an empty catalog) finish before the stream starts: run
    during it, they fanned out the stream's own objects again, a varying share of the run."""
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if not running_jobs(conn):
                return
        time.sleep(0.05)


def _median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--trials", type=int, default=3, help="median of this many runs")
    service_args(parser)
    parser.add_argument("--prefetch", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument(
        "--modes", default="raw,1,10", help="which runs, e.g. '10' alone under a profiler"
    )
    args = parser.parse_args()
    wlog.configure("warning", "json")

    print(
        f"events per run: {args.events}, prefetch {args.prefetch}, batch {args.batch}, "
        f"median of {args.trials} trials"
    )

    def fresh(kind: str, run: Callable[[str, str], float]) -> float:
        with fresh_run(args.broker, args.database) as (prefix, db_url):
            rate = run(prefix, db_url)
        print(f"  {kind:<12} {rate:10,.0f}/s", flush=True)
        return rate

    modes = args.modes.split(",")
    rates: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(args.trials):
        for mode in modes:
            run = (
                functools.partial(_raw_run, args)
                if mode == "raw"
                else functools.partial(_worker_run, args, int(mode))
            )
            rates[mode].append(fresh(_LABELS.get(mode, f"{mode} targets"), run))
    _report({m: _median(r) for m, r in rates.items()})


_LABELS = {"raw": "raw", "1": "1 target", "10": "10 targets"}


def _raw_run(args: argparse.Namespace, prefix: str, _db_url: str) -> float:
    return raw_rate(args.broker, prefix, args.events, args.prefetch)


def _worker_run(args: argparse.Namespace, targets: int, prefix: str, db_url: str) -> float:
    return worker_rate(args, db_url, prefix, targets)


def _report(median: dict[str, float]) -> None:
    raw, one, ten = median.get("raw"), median.get("1"), median.get("10")
    if raw is not None:
        print(f"raw kombu consume+ack      {raw:10,.0f} msg/s")
    if one is not None:
        ratio = f"   ratio to raw {one / raw:6.1%}" if raw else ""
        print(
            f"worker, 1 target           {one:10,.0f} events/s{ratio}"
            f"  ({one:,.0f} target updates/s)"
        )
    if ten is not None:
        ratio = f"   ratio to raw {ten / raw:6.1%}" if raw else ""
        print(
            f"worker, 10 targets         {ten:10,.0f} events/s{ratio}"
            f"  ({ten * 10:,.0f} target updates/s)"
        )
        if raw:
            print(f"10 targets: target updates / raw rate: {ten * 10 / raw:.2f}x")
    if one and ten:
        print(f"ratio 10 targets / 1 target: {ten / one:.2f}")


if __name__ == "__main__":
    main()
