"""What every benchmark needs: service options, a fresh prefix and database, worker settings."""

from __future__ import annotations

import argparse
import contextlib
import os
import uuid
from collections.abc import Iterator

import sqlalchemy as sa

from tests.support import scenario as sc
from tests.support.services import delete_topology


def service_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--broker",
        default=os.environ.get(
            "ENTITY_SYNC_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//"
        ),
    )
    parser.add_argument(
        "--database",
        default=os.environ.get(
            "ENTITY_SYNC_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
    )


@contextlib.contextmanager
def fresh_run(broker: str, database: str) -> Iterator[tuple[str, str]]:
    """(queue prefix, database URL) of a new run; queues and database removed after."""
    admin = sa.create_engine(database, isolation_level="AUTOCOMMIT")
    prefix = f"es-bench-{uuid.uuid4().hex[:8]}"
    dbname = f"es_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{dbname}"'))
    try:
        yield prefix, sa.engine.make_url(database).set(database=dbname).render_as_string(False)
    finally:
        with contextlib.suppress(Exception):
            delete_topology(broker, prefix)
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
        admin.dispose()


def connected_targets(targets: int) -> list[sc.Event]:
    """The global entity and `targets` connected target entities."""
    admin = [sc.entity(sc.GLOBAL, ["USD", "EUR"])]
    for i in range(targets):
        admin += [
            sc.entity(f"t{i}", ["USD"]),
            sc.connection(f"c{i}", f"t{i}", "request"),
            sc.connection(f"c{i}", f"t{i}", "accept"),
        ]
    return admin


def worker_env(broker: str, database: str, prefix: str, **extra: str) -> dict[str, str]:
    """The environment of an `entity-sync run` process: sharing only, quiet logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENTITY_SYNC_")}
    env.update(
        ENTITY_SYNC_BROKER_URL=broker,
        ENTITY_SYNC_DATABASE_URL=database,
        ENTITY_SYNC_PREFIX=prefix,
        ENTITY_SYNC_SYNC_ENABLED="false",
        ENTITY_SYNC_LOG_LEVEL="warning",
        ENTITY_SYNC_LOG_FORMAT="json",
        **extra,
    )
    return env
