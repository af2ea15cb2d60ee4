"""What every operation needs: settings, the database, the topology's names, and who acts.

Built by bootstrap (`operations_for`) for the CLI (actor: the OS user) and the console (actor:
the token's role). Front ends call the functions of this package and never open a broker
connection or a database transaction themselves.
"""

from __future__ import annotations

import contextlib
import getpass
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kombu.connection import Connection
from kombu.exceptions import OperationalError as KombuOperationalError
from sqlalchemy.engine import Engine

from entity_sync.config import Settings
from entity_sync.handlers.errors import EntitySyncError
from entity_sync.runtime import retry
from entity_sync.runtime.broker import connect, ensure_connected
from entity_sync.runtime.topology import Names, declare, is_rabbitmq
from entity_sync.store import migrate


class Unavailable(EntitySyncError):
    reason = "unavailable"


class DlqError(EntitySyncError):
    reason = "dlq"


def close_channel(channel: Any) -> None:
    """Close a channel, and on the embedded broker its database session too: kombu's SQLAlchemy
    transport keeps one per channel, holding a pooled connection until garbage collection, so a
    console on the embedded broker would run out of connections after a few pages."""
    with contextlib.suppress(Exception):
        channel.close()  # returns unacked messages first, through the session
    session = getattr(channel, "_session", None)
    if session is not None:
        with contextlib.suppress(Exception):
            session.close()


def os_user() -> str:
    with contextlib.suppress(Exception):
        return getpass.getuser()
    return "unknown"


@dataclass(frozen=True)
class Operations:
    settings: Settings
    engine: Engine
    names: Names
    actor: str  # recorded in history and in x-replayed-by
    via: str  # cli | console

    @contextlib.contextmanager
    def broker(self, retries: int = 2) -> Iterator[Connection]:
        """A connection to the first broker of ENTITY_SYNC_BROKER_URL that answers.

        Every URL of a failover list is tried (`retries + 1` rounds). An unreachable broker is
        one `unavailable` error naming every URL, passwords masked.
        """
        if self.settings.embedded_broker:
            self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        conn = connect(self.settings)
        try:
            try:
                ensure_connected(conn, retries)
            except (*conn.connection_errors, KombuOperationalError) as exc:
                raise Unavailable(
                    f"broker {self.settings.safe_broker_url()} unavailable: {exc}"
                ) from None
            if not is_rabbitmq(conn):
                declare(
                    conn, self.names, retry.delay_queues(self.settings)
                )  # the embedded broker knows queues only once declared
            yield conn
        finally:
            if not is_rabbitmq(conn) and conn._default_channel is not None:
                close_channel(conn._default_channel)
            conn.release()

    def ensure_schema(self) -> None:
        """Failed messages live in the state database: bring its schema to head first, as
        `run` does (idempotent, and safe beside starting workers)."""
        if not migrate.is_current(self.engine):
            migrate.upgrade(self.engine)

    def dlqs(self, queue: str | None = None) -> list[str]:
        """`object-shared`, `entity-sync.object-shared` or `...object-shared.dlq` -> the DLQ."""
        known = [Names.dlq(q) for q in self.names.bindings()]
        if not queue:
            return known
        full = f"{self.names.prefix}.{queue}"
        for candidate in (queue, f"{queue}.dlq", full, f"{full}.dlq"):
            if candidate in known:
                return [candidate]
        raise DlqError(
            f"{queue!r} is not a dead-letter queue; one of: {', '.join(known)}",
            reason="unknown_queue",
        )
