"""The chaos runs' workload and harness: the model of the events (Plan), the publisher, the
`entity-sync run` process, and a Run tying them to a private broker and database."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pika
import sqlalchemy as sa

from tests.chaos.servers import AmqpBroker, PrivatePostgres
from tests.support.amqp import pika_params
from tests.support.waiting import wait_for

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
