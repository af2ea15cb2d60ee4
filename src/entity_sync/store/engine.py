"""Engine construction for PostgreSQL (psycopg 3) and SQLite, and the state locks.

No lock is shared by all object-shared work (docs/scaling.md): batches of object events take
the *admin* lock in shared mode and run in parallel, their writes to the same rows fenced by
version-guarded upserts; batches holding an admin event take it exclusively, so no object event
slips past a connection, setting, control or currency change. Accounting periods are judged
against every other period (rule 5), so batches holding one also take the *periods* lock.
Locks are transaction-scoped advisory locks, always taken in this order: admin, then periods.
SQLite has one writer at a time (`BEGIN IMMEDIATE`) and needs none of them.
"""

from __future__ import annotations

import time
from enum import Enum
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url

_MIGRATION_LOCK_KEY = 0x656E7469747973  # "entitys": migrations, one starting worker at a time
_ADMIN_LOCK_KEY = 0x656E7469747961  # "entitya"
_PERIODS_LOCK_KEY = 0x656E7469747970  # "entityp"


class StateLock(Enum):
    """What a batch transaction locks before it reads the state."""

    OBJECTS = "objects"  # admin lock shared: object batches run in parallel
    PERIODS = "periods"  # admin lock shared, periods lock exclusive
    ADMIN = "admin"  # admin lock exclusive: alone


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def create_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url,
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
            connect_args={"timeout": 30},
        )
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling would defer BEGIN; we issue BEGIN IMMEDIATE.
        sa.event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return sa.create_engine(
        parsed,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
        pool_pre_ping=True,
        pool_size=5,
        # prepare_threshold=None: no server-side prepared statements. A prepared `= ANY($1)`
        # soon gets PostgreSQL's generic plan, which cannot see the array's size and scans the
        # table; planned each time, the batch lookups use their indexes.
        connect_args={"connect_timeout": 10, "prepare_threshold": None},
    )


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # let the "begin" listener control transactions
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_begin_immediate(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def lock_migrations(conn: Connection) -> None:
    """Two workers starting together migrate one after the other."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})


def lock_state(conn: Connection, mode: StateLock) -> float:
    """Take the batch's state locks (module doc); returns the seconds spent waiting for them."""
    if conn.dialect.name != "postgresql":
        return 0.0
    started = time.perf_counter()
    admin = "pg_advisory_xact_lock" if mode is StateLock.ADMIN else "pg_advisory_xact_lock_shared"
    conn.execute(sa.text(f"SELECT {admin}(:k)"), {"k": _ADMIN_LOCK_KEY})
    if mode is StateLock.PERIODS:
        lock_periods(conn)
    return time.perf_counter() - started


def lock_periods(conn: Connection) -> None:
    """The periods lock alone, for a transaction that already holds the admin lock shared."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PERIODS_LOCK_KEY})


def ping(engine: Engine) -> None:
    """One round trip: raises SQLAlchemyError when the database does not answer."""
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
