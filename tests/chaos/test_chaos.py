"""Chaos: the real `entity-sync run` killed, its broker restarted, its database stopped.

Every scenario publishes object-shared events to three connected targets with poison messages
mixed in, disturbs the run, waits (by condition, with a deadline) until the work is done, and
then checks against an independent model of the events: every target holds the final version
of every product with the final source-controlled values, every final update was published
(duplicates only with the same event id), every poison message is in its DLQ with its reason
and nothing else is. Each prints: events, kills, duplicates, lost (must be 0).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pika
import pytest
import sqlalchemy as sa

from tests.chaos.conftest import AmqpBroker, PrivatePostgres, PrivateRabbit
from tests.support.amqp import pika_params
from tests.support.waiting import wait_for

pytestmark = pytest.mark.chaos

TARGETS = ("t-a", "t-b", "t-c")
T = "2026-11-20T09:00:00Z"
ENTITY_SYNC = str(Path(sys.executable).with_name("entity-sync"))


def _eid() -> str:
    return str(uuid.uuid4())


def _admin() -> list[tuple[str, dict[str, Any]]]:
    def entity(entity_id: str) -> tuple[str, dict[str, Any]]:
        return (
            "entity.upserted",
            {
                "event_id": _eid(),
                "occurred_at": T,
                "entity_id": entity_id,
                "name": entity_id,
                "display_name": entity_id,
                "parent_id": None if entity_id == "global" else "global",
                "is_global": entity_id == "global",
                "earliest_activity_date": "2027-01-01",
                "has_own_accounting_periods": False,
                "active_currencies": ["USD"],
            },
        )

    events = [entity("global"), *[entity(t) for t in TARGETS]]
    for target in TARGETS:
        for action in ("request", "accept"):
            events.append(
                (
                    "entity.connection",
                    {
                        "event_id": _eid(),
                        "occurred_at": T,
                        "connection_id": f"c-{target}",
                        "source_entity": "global",
                        "target_entity": target,
                        "action": action,
                    },
                )
            )
    return events


def _product(object_id: str, version: int, sku: str, **kw: Any) -> dict[str, Any]:
    return {
        "event_id": _eid(),
        "occurred_at": T,
        "source_entity": kw.get("source", "global"),
        "object_type": "product",
        "object_id": object_id,
        "parent_id": None,
        "version": version,
        "action": "upsert",
        "data": {"name": f"name of {object_id}", "sku": sku},
    }


@dataclass
class Plan:
    """Published messages and what an independent model says must come out of them."""

    messages: list[tuple[str, bytes, str]] = field(default_factory=list)  # rk, body, id
    final: dict[str, tuple[int, str]] = field(default_factory=dict)  # product -> version, sku
    valid_ids: set[str] = field(default_factory=set)
    poison: dict[str, str] = field(default_factory=dict)  # message id -> x-error-type


def plan(events: int, seed: int) -> Plan:
    """`events` object-shared events: creates, later version-2 changes, poison mixed in.

    The model (rules 3 and 6, docs/design.md §4): a target copy ends at the highest version of its
    product; `sku` is source-controlled by default and `name` never changes, so the copy's data
    is the final version's whatever order versions arrive in.
    """
    rng = random.Random(seed)
    out = Plan()
    updates = events // 5
    creates = events - updates
    pending: list[str] = []
    for i in range(creates):
        pid = f"p-{seed}-{i}"
        body = _product(pid, 1, f"{pid}-v1")
        out.messages.append(("object.shared.product", orjson.dumps(body), body["event_id"]))
        out.final[pid] = (1, f"{pid}-v1")
        pending.append(pid)
        if i % 4 == 3 and len(out.messages) < events:
            target = pending.pop(rng.randrange(len(pending)))
            body = _product(target, 2, f"{target}-v2")
            out.messages.append(("object.shared.product", orjson.dumps(body), body["event_id"]))
            out.final[target] = (2, f"{target}-v2")
    out.valid_ids = {m[2] for m in out.messages}
    # Poison, mixed in at random places: undecodable, schema-invalid, rejected by rule 1.
    for n in range(max(3, events // 400)):
        kind = n % 3
        if kind == 0:
            msg = ("object.shared.product", b'{"event_id": broken', f"poison-{seed}-{n}", "")
            reason = "invalid_json"
        elif kind == 1:
            body = _product(f"bad-{n}", 1, "s") | {"version": "one"}
            msg = ("object.shared.product", orjson.dumps(body), body["event_id"], "")
            reason = "schema_invalid"
        else:
            body = _product(f"foreign-{n}", 1, "s", source="t-a")
            msg = ("object.shared.product", orjson.dumps(body), body["event_id"], "")
            reason = "not_global_source"
        out.messages.insert(rng.randrange(len(out.messages)), msg[:3])
        out.poison[msg[2]] = reason
    return out


class Publisher:
    """An upstream system: pika, publisher confirms, persistent messages."""

    def __init__(self, url: str, exchange: str) -> None:
        self.conn = pika.BlockingConnection(pika_params(url))
        self.channel = self.conn.channel()
        self.channel.confirm_delivery()
        self.exchange = exchange

    def publish(self, routing_key: str, body: bytes, message_id: str) -> None:
        self.channel.basic_publish(
            self.exchange,
            routing_key,
            body,
            pika.BasicProperties(
                content_type="application/json", delivery_mode=2, message_id=message_id
            ),
            mandatory=True,
        )

    def close(self) -> None:
        self.conn.close()


def publish_paced(
    url: str, exchange: str, messages: list[tuple[str, bytes, str]], per_second: float = 0
) -> None:
    """Publish (routing key, body, message id) as an upstream would, at most `per_second`."""
    pub = Publisher(url, exchange)
    try:
        for i, (rk, body, mid) in enumerate(messages):
            pub.publish(rk, body, mid)
            if per_second and i % 100 == 99:
                time.sleep(100 / per_second)  # pacing the upstream, not synchronisation
    finally:
        pub.close()


class WorkerProcess:
    """`entity-sync run` as a subprocess, restartable after kill -9."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [ENTITY_SYNC, "run"], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


@dataclass
class Run:
    name: str
    rabbit: AmqpBroker
    database_url: str
    prefix: str
    worker: WorkerProcess
    engine: sa.Engine
    plan: Plan | None = None

    def count(self, table: str) -> int | None:
        try:
            with self.engine.connect() as conn:
                return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())
        except sa.exc.SQLAlchemyError:
            return None  # the database is down or not migrated yet

    def depth(self, queue: str) -> int | None:
        try:
            with pika.BlockingConnection(pika_params(self.rabbit.url)) as conn:
                ok = conn.channel().queue_declare(queue, passive=True)
                return int(ok.method.message_count)
        except Exception:  # noqa: BLE001 - broker restarting or queue not declared yet
            return None

    def processed(self) -> int:
        return self.count("processed_events") or 0

    def publish(self, messages: list[tuple[str, bytes, str]], per_second: float = 0) -> None:
        publish_paced(self.rabbit.url, f"{self.prefix}.in", messages, per_second)


@contextmanager
def chaos_run(name: str, rabbit: AmqpBroker, pg: PrivatePostgres, tmp_path: Path) -> Iterator[Run]:
    prefix = f"chaos-{name}-{uuid.uuid4().hex[:6]}"
    database_url = pg.new_database()
    env = dict(os.environ)
    for key in list(env):
        if key.startswith("ENTITY_SYNC_"):
            del env[key]
    env.update(
        {
            "ENTITY_SYNC_BROKER_URL": rabbit.url,
            "ENTITY_SYNC_DATABASE_URL": database_url,
            "ENTITY_SYNC_PREFIX": prefix,
            "ENTITY_SYNC_DATA_DIR": str(tmp_path / "data"),
            "ENTITY_SYNC_LOG_LEVEL": "warning",
            "ENTITY_SYNC_LOG_FORMAT": "json",
            "ENTITY_SYNC_HEARTBEAT_SECONDS": "10",
            "ENTITY_SYNC_OUTBOX_RELAY_AGE_SECONDS": "1",
            "ENTITY_SYNC_DB_RETRY_MAX_SECONDS": "2",
            "ENTITY_SYNC_RETRY_DELAYS": "1",
        }
    )
    worker = WorkerProcess(env, tmp_path / f"{name}-worker.log")
    engine = sa.create_engine(database_url, pool_pre_ping=True, poolclass=sa.pool.NullPool)
    run = Run(name, rabbit, database_url, prefix, worker, engine)
    worker.start()
    try:
        wait_for(
            lambda: run.depth(f"{prefix}.entity-admin") is not None,
            60,
            "the worker's topology",
            lambda: print(worker.log.read_text()[-3000:]),  # noqa: T201
        )
        with pika.BlockingConnection(pika_params(rabbit.url)) as conn:
            ch = conn.channel()
            quorum = {"x-queue-type": "quorum"}
            ch.queue_declare(f"{prefix}.test-out", durable=True, arguments=quorum)
            ch.queue_bind(f"{prefix}.test-out", f"{prefix}.out", "#")
            # The worker binds it too; the same binding again makes sure it exists already.
            ch.queue_bind(f"{prefix}.entity-admin", f"{prefix}.in", "entity.*")
        admin = _admin()
        run.publish([(rk, orjson.dumps(b), b["event_id"]) for rk, b in admin])
        wait_for(lambda: run.processed() == len(admin), 60, "the admin events applied")
        yield run
    finally:
        if worker.proc is not None and worker.proc.poll() is None:
            worker.kill9()
        engine.dispose()


def _drain(url: str, queue: str) -> list[tuple[dict[str, Any], str | None, bytes]]:
    out: list[tuple[dict[str, Any], str | None, bytes]] = []
    with pika.BlockingConnection(pika_params(url)) as conn:
        ch = conn.channel()
        ch.basic_qos(prefetch_count=2000)
        for method, props, body in ch.consume(queue, auto_ack=True, inactivity_timeout=2):
            if method is None:
                break
            out.append((dict(props.headers or {}), props.message_id, body))
        ch.cancel()
    return out


def _peek(url: str, queue: str) -> list[tuple[dict[str, Any], str | None]] | None:
    """(headers, message id) of every message in `queue`, all left in place; None if down."""
    try:
        with pika.BlockingConnection(pika_params(url)) as conn:
            ch = conn.channel()
            total = ch.queue_declare(queue, passive=True).method.message_count
            out: list[tuple[dict[str, Any], str | None]] = []
            while len(out) < total:
                method, props, _ = ch.basic_get(queue, auto_ack=False)
                if method is None:
                    break
                out.append((dict(props.headers or {}), props.message_id))
            return out  # unacked: back in the queue when the channel closes
    except Exception:  # noqa: BLE001 - broker restarting or queue not declared yet
        return None


def dlq_report(letters: list[tuple[dict[str, Any], str | None]], poison: dict[str, str]) -> str:
    """The DLQ by message id: reason, attempts and copies of each, and what should not be there."""
    copies = Counter(mid for _, mid in letters)
    lines = [f"dlq: {len(letters)} message(s), {len(copies)} id(s)"]
    for headers, mid in letters:
        mark = "" if mid in poison else "  <- not poison"
        if copies[mid] > 1 or mid not in poison:
            lines.append(
                f"  {mid} x-error-type={headers.get('x-error-type')} "
                f"x-attempts={headers.get('x-attempts')} x-error-pid={headers.get('x-error-pid')} "
                f"copies={copies[mid]}{mark}"
            )
    missing = sorted(set(poison) - set(copies))
    if missing:
        lines.append(f"  poison not dead-lettered: {missing}")
    return "\n".join(lines)


def _wait_until_done(run: Run, plan: Plan, dlq: str, timeout: float) -> None:
    """All events handled, the outbox and the queue empty, exactly the poison in the DLQ."""
    prefix = run.prefix

    def done() -> bool:
        if not (
            run.processed() == len(_admin()) + len(plan.valid_ids)
            and run.count("outbox") == 0
            and run.depth(f"{prefix}.object-shared") == 0
        ):
            return False
        letters = _peek(run.rabbit.url, dlq)
        return letters is not None and {mid for _, mid in letters} == set(plan.poison)

    def seen() -> None:
        letters = _peek(run.rabbit.url, dlq)
        print(  # noqa: T201 - what the test saw, on timeout
            f"processed {run.processed()} of {len(_admin()) + len(plan.valid_ids)}, "
            f"outbox {run.count('outbox')}, queue {run.depth(f'{prefix}.object-shared')}\n"
            + (dlq_report(letters, plan.poison) if letters is not None else "dlq: unreadable")
            + "\n"
            + run.worker.log.read_text()[-3000:]
        )

    wait_for(done, timeout, f"{run.name}: all events handled", on_timeout=seen)


def _drain_outputs(run: Run) -> tuple[int, dict[tuple[str, str, int], set[str | None]]]:
    """The duplicate deliveries on the out queue and the event ids per (target, object, version)."""
    outputs = _drain(run.rabbit.url, f"{run.prefix}.test-out")
    ids = Counter(mid for _, mid, _ in outputs)
    duplicates = sum(n - 1 for n in ids.values())
    by_key: dict[tuple[str, str, int], set[str | None]] = defaultdict(set)
    for _, mid, body in outputs:
        data = orjson.loads(body)
        by_key[(data["target_entity"], data["source_object_id"], data["version"])].add(mid)
    assert all(len(v) == 1 for v in by_key.values()), "a repeated update has the same event id"
    return duplicates, by_key


def _lost_final_updates(
    run: Run, plan: Plan, by_key: dict[tuple[str, str, int], set[str | None]]
) -> int:
    """Final versions that did not reach a target's consumers or its stored copy."""
    lost = 0
    with run.engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT target_entity, source_object_id, version, data FROM target_copies")
        ).all()
    held = {(r[0], r[1]): (r[2], r[3]) for r in rows}
    for pid, (version, sku) in plan.final.items():
        for target in TARGETS:
            if (target, pid, version) not in by_key:
                lost += 1  # the final update never reached the target's consumers
            copy = held.get((target, pid))
            expected = {"sku": sku, "name": f"name of {pid}"}
            if copy is None or copy[0] != version or not expected.items() <= copy[1].items():
                lost += 1
    assert len(held) == len(plan.final) * len(TARGETS), "no copies beyond the model"
    return lost


def finish_and_check(
    run: Run, kills: int, capsys: pytest.CaptureFixture[str], timeout: float = 240
) -> None:
    """Wait for the work to be done, stop the worker, compare with the model, print the line."""
    plan = run.plan
    assert plan is not None
    prefix = run.prefix
    dlq = f"{prefix}.object-shared.dlq"

    _wait_until_done(run, plan, dlq, timeout)
    dlq_letters = _peek(run.rabbit.url, dlq) or []
    dlq_copies = len(dlq_letters) - len({mid for _, mid in dlq_letters})
    if dlq_copies:
        with capsys.disabled():
            print("\n" + dlq_report(dlq_letters, plan.poison), flush=True)  # noqa: T201
    assert run.worker.stop() == 0, "SIGTERM ends the worker cleanly"

    duplicates, by_key = _drain_outputs(run)
    lost = _lost_final_updates(run, plan, by_key)

    dead = _drain(run.rabbit.url, dlq)
    got = {mid: h.get("x-error-type") for h, mid, _ in dead}
    missing_poison = len(set(plan.poison) - set(got))
    lost += missing_poison
    events = len(plan.valid_ids) + len(plan.poison)
    with capsys.disabled():
        print(  # noqa: T201 - the summary line CI logs show
            f"\nchaos {run.name}: events={events} kills={kills} duplicates={duplicates} "
            f"dlq_copies={dlq_copies} lost={lost}",
            flush=True,
        )
    assert got == plan.poison, "exactly the poison messages are dead-lettered, each with its reason"
    for queue in ("entity-admin.dlq", "unrouted"):
        assert _drain(run.rabbit.url, f"{prefix}.{queue}") == []
    assert lost == 0


def test_kill_minus_9_at_random_moments(
    private_rabbit: PrivateRabbit,
    private_pg: PrivatePostgres,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rng = random.Random(os.environ.get("CHAOS_SEED", "4"))
    with chaos_run("kill9", private_rabbit, private_pg, tmp_path) as run:
        run.plan = plan(10_000, seed=rng.randrange(10**6))
        publisher = threading.Thread(
            target=run.publish,
            args=(run.plan.messages, float(os.environ.get("CHAOS_PUBLISH_RATE", "500"))),
            daemon=True,
        )
        publisher.start()
        total = len(_admin()) + len(run.plan.valid_ids)
        kills = 0
        while run.processed() < total and kills < 8:
            time.sleep(rng.uniform(1.5, 3.5))  # pacing chaos, not synchronisation
            if run.processed() >= total:
                break
            run.worker.kill9()
            kills += 1
            run.worker.start()
        publisher.join(timeout=120)
        assert not publisher.is_alive()
        assert kills >= 5, f"only {kills} kills happened before the work was done"
        finish_and_check(run, kills, capsys)


def test_rabbitmq_restart_in_the_middle(
    private_rabbit: PrivateRabbit,
    private_pg: PrivatePostgres,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with chaos_run("rabbit-restart", private_rabbit, private_pg, tmp_path) as run:
        run.plan = plan(4_000, seed=11)
        run.publish(run.plan.messages)
        total = len(_admin()) + len(run.plan.valid_ids)
        wait_for(lambda: run.processed() > total // 5, 120, "a fifth processed")
        assert run.processed() < total, "the restart happens in the middle of the run"
        private_rabbit.restart()
        finish_and_check(run, 0, capsys)


def test_postgresql_stopped_for_10_seconds(
    private_rabbit: PrivateRabbit,
    private_pg: PrivatePostgres,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with chaos_run("pg-outage", private_rabbit, private_pg, tmp_path) as run:
        run.plan = plan(4_000, seed=12)
        run.publish(run.plan.messages)
        total = len(_admin()) + len(run.plan.valid_ids)
        wait_for(lambda: run.processed() > total // 5, 120, "a fifth processed")
        assert run.processed() < total, "the outage happens in the middle of the run"
        private_pg.stop()
        time.sleep(10)  # the outage itself
        private_pg.start()
        finish_and_check(run, 0, capsys)
